"""Progress in a log file: whole lines, no carriage returns or cursor moves."""

import io

from foundation.progress import progress


def test_outside_a_terminal_progress_is_a_few_plain_lines():
    log = io.StringIO()  # not a terminal, like a log file, nohup or CI
    other = progress(total=10, desc="q1", file=log)  # two bars at once, as prep shows sets
    with progress(total=500, desc="epoch 1", unit="step", file=log, position=1,
                  leave=False) as bar:
        for step in range(500):
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{1 / (step + 1):.3f}", refresh=False)
    other.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = [line for line in text.splitlines() if line.startswith("epoch 1")]
    assert 1 <= len(lines) <= 3, lines  # a line per 15 s and the last one, not one per step
    assert lines[-1].startswith("epoch 1: 100%") and "500/500" in lines[-1]
