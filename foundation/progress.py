"""Progress bars that suit where they are read: redrawn in a terminal, a line every
LOG_SECONDS in a log file, under nohup or in CI (a redraw per step there is a wall of
carriage returns: the demo's log once held 300 KB of them)."""

from __future__ import annotations

import sys

from tqdm import tqdm

tqdm.monitor_interval = 0  # no monitor thread: trainer and evaluation processes fork workers
LOG_SECONDS = 15.0


class _Lines:
    """tqdm's refreshes as whole lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.strip("\r\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(**kwargs) -> tqdm:
    """tqdm with `kwargs`; outside a terminal, one line per LOG_SECONDS and at the end."""
    stream = kwargs.pop("file", sys.stderr)
    if stream.isatty():
        return tqdm(file=stream, dynamic_ncols=True, **kwargs)
    kwargs.pop("leave", None)  # in a log, the last line of each bar stays
    kwargs["position"] = 0  # stacked bars (tqdm numbers them itself) would move the cursor
    return tqdm(file=_Lines(stream), mininterval=LOG_SECONDS, maxinterval=LOG_SECONDS * 4,
                ncols=110, leave=True, **kwargs)
