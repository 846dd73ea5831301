"""Ray as the pipeline's scheduler (pipeline/schedule.py), for real: steps as Ray tasks after
the steps they need, GPUs of their own, Ray's retry of a killed process, a failure that stops
only what comes after it; and the check that every node shares the runs (pipeline/shared.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import schedule, shared
from pipeline.schedule import Command, Resources, Step

ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> tuple[str, ...]:
    return ("-c", code)


def writes(path: Path, text: str = "x") -> tuple[str, ...]:
    return python(f"import pathlib; pathlib.Path({str(path)!r}).write_text({text!r})")


def test_a_failure_stops_only_what_comes_after_it_and_a_killed_step_runs_again(ray_local,
                                                                                tmp_path):
    marker, seen = tmp_path / "killed-once", tmp_path / "seen.txt"
    # SIGKILL of its own process the first time: Ray runs the task again, which ends well
    kill_once = python(f"import os, pathlib, signal; m = pathlib.Path({str(marker)!r})\n"
                       "if not m.exists(): m.write_text(''); os.kill(os.getpid(), signal.SIGKILL)")
    steps = [
        Step("first", (Command(writes(tmp_path / "first.txt"), "first"),), log=tmp_path / "a.log"),
        Step("bad", (Command(python("import sys; sys.exit(3)"), "bad"),), log=tmp_path / "b.log",
             resume="python -m resume-bad"),
        Step("after bad", (Command(writes(tmp_path / "never.txt"), "after bad"),),
             after=("bad",)),
        Step("after after bad", after=("after bad", "first")),
        Step("killed", (Command(kill_once, "killed"),), log=tmp_path / "k.log",
             wall_time=tmp_path / "wall.json"),
        Step("after first", (Command(python(
            f"import pathlib; pathlib.Path({str(seen)!r}).write_text("
            f"pathlib.Path({str(tmp_path / 'first.txt')!r}).read_text())"), "after first"),),
            after=("first",)),
    ]
    said = []
    done = schedule.run(steps, say=said.append)
    outcomes = {o.what: o for o in done.outcomes}
    assert {w for w, o in outcomes.items() if o.ok} == {"first", "killed", "after first"}
    assert seen.read_text() == "x"  # it ran once the step before it had written its file
    assert outcomes["after bad"].skipped == "bad" and not (tmp_path / "never.txt").exists()
    assert outcomes["after after bad"].skipped == "bad"  # named by the step that failed
    assert marker.exists() and json.loads((tmp_path / "wall.json").read_text()) > 0
    [line] = done.failures()
    assert line == (f"bad failed (exit 3): see {tmp_path / 'b.log'}; resume it alone: python -m "
                    "resume-bad; not run after it: after bad, after after bad")
    assert "==> after bad: not run (bad failed)" in said


def test_a_step_later_than_another_waits_for_its_end_but_runs_when_it_failed(ray_local,
                                                                              tmp_path):
    slow = python("import time, pathlib; time.sleep(2); "
                  f"pathlib.Path({str(tmp_path / 'slow.txt')!r}).write_text('x'); exit(3)")
    steps = [Step("slow and bad", (Command(slow, "slow and bad"),), log=tmp_path / "s.log"),
             Step("later", (Command(python(
                 f"import pathlib; p = pathlib.Path({str(tmp_path / 'slow.txt')!r}); "
                 f"pathlib.Path({str(tmp_path / 'later.txt')!r}).write_text(str(p.exists()))"),
                 "later"),), later_than=("slow and bad",))]
    done = schedule.run(steps, say=lambda _: None)
    assert [(o.what, o.ok) for o in done.outcomes] == [("slow and bad", False), ("later", True)]
    assert (tmp_path / "later.txt").read_text() == "True"  # it started once the other ended
    with pytest.raises(ValueError, match="b comes after a, which is not a step listed before"):
        schedule.run([Step("b", later_than=("a",))], say=lambda _: None)


def test_a_step_after_one_not_listed_is_refused(ray_local):
    with pytest.raises(ValueError, match="b comes after a, which is not a step listed before"):
        schedule.run([Step("b", after=("a",))], say=lambda _: None)
    with pytest.raises(ValueError, match="two steps are named 'a'"):
        schedule.run([Step("a"), Step("a")], say=lambda _: None)


def test_an_exit_code_is_final_but_a_rank_killed_by_a_signal_is_a_kill(tmp_path):
    log = tmp_path / "log"
    assert schedule.launch(python("import sys; sys.exit(1)"), log, None) == (1, None)
    torchrun_said = ("[0]:\n  exitcode  : -9 (pid: 12)\n"
                     "  traceback : Signal 9 (SIGKILL) received by PID 12")
    code, killed = schedule.launch(python(f"import sys; print({torchrun_said!r}); sys.exit(1)"),
                                   log, None)
    assert code == 1 and killed.startswith("a rank was killed (traceback : Signal 9 (SIGKILL)")
    assert schedule.launch(python("import os; os.kill(os.getpid(), 15)"), log, None) == (
        -15, "killed by SIGTERM")
    # a kill in an earlier attempt's part of the log does not make a later exit code a kill
    assert schedule.launch(python("import sys; sys.exit(2)"), log, None) == (2, None)


GPUS = """
import json, sys, time
from pathlib import Path
import ray
from pipeline import schedule
from pipeline.schedule import Command, Resources, Step

out = Path(sys.argv[1])
ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
# each 1-GPU step writes what it was given and waits for the other: they run at once
wait = ("import os, pathlib, sys, time; d = pathlib.Path(sys.argv[1]); "
        "(d / sys.argv[2]).write_text(os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')); "
        "t = time.time()\\nwhile len(list(d.glob('one-*'))) < 2 and time.time() - t < 60: "
        "time.sleep(0.1)")
both = ("import os, pathlib, sys; "
        "pathlib.Path(sys.argv[1], 'two').write_text(os.environ['CUDA_VISIBLE_DEVICES'])")
steps = [Step(f"one-{i}", (Command(("-c", wait, str(out), f"one-{i}"), "one"),),
              resources=Resources(cpus=1, gpus=1)) for i in (1, 2)]
steps.append(Step("two", (Command(("-c", both, str(out)), "two"),),
                  resources=Resources(cpus=1, gpus=2), after=("one-1", "one-2")))
done = schedule.run(steps)
assert all(o.ok for o in done.outcomes), done.outcomes
"""


def test_gpu_trainers_get_their_own_gpus(tmp_path):
    """A CPU machine that declares 2 GPUs to Ray: two 1-GPU steps at once get one each, a
    2-GPU step both, in the environment of the process the step launches."""
    result = subprocess.run([sys.executable, "-c", GPUS, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    ones = sorted((tmp_path / f"one-{i}").read_text() for i in (1, 2))
    assert ones == ["0", "1"]
    assert sorted((tmp_path / "two").read_text().split(",")) == ["0", "1"]


def test_a_folder_a_node_does_not_see_fails_at_once_naming_it(ray_local, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    checked = shared.check([runs, "s3://bucket/shards"], f"sqlite:///{tmp_path / 'm' / 'x.db'}",
                           [tmp_path, "s3://bucket/data"], min_nodes=1)
    assert checked == f"shared by the 1 nodes: {runs}, {tmp_path / 'm'}"
    assert not list(runs.iterdir())  # the marker is removed
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'data'} is not on the Ray node at "
                       r"[\d.]+: the dataset must be at the same path on every node"):
        shared.check([runs], "http://127.0.0.1:5000", [tmp_path / "data"], min_nodes=1)
    # the driver's marker never reaches the node: as a folder the node mounts elsewhere
    monkeypatch.setattr(shared, "_mark", lambda folder, token: folder / "written-elsewhere")
    with pytest.raises(ValueError, match=rf"^{runs} is not shared: the Ray node at [\d.]+ "
                       "does not see what this driver wrote there; give an absolute path"):
        shared.check([runs], "http://127.0.0.1:5000", min_nodes=1)


def test_a_trainer_asks_for_its_share_of_a_node(ray_local):
    from dataclasses import replace

    from pipeline.experiment import load
    from pipeline.run import trainer_resources

    demo = load("demo")  # 2 lanes of 1 process on 2 cores: 1 core, 1 thread each
    assert trainer_resources(replace(demo, device="cpu")) == Resources(cpus=1, threads=1)
    assert trainer_resources(replace(demo, device="cpu", lanes=1, nproc=2)) == \
        Resources(cpus=2, threads=1)
    assert trainer_resources(replace(demo, device="cpu", lanes=1, nproc=1)) == \
        Resources(cpus=2, threads=2)
    with pytest.raises(RuntimeError, match="the Ray cluster has no CUDA GPU"):
        trainer_resources(replace(demo, device="cuda"))


def test_a_step_whose_worker_dies_runs_again_and_its_process_does_not_outlive_it(ray_local,
                                                                                   tmp_path):
    """The Ray worker of a step killed (SIGKILL) while its process runs: the process goes
    with it (Ray's cleanup of a dead worker's children, and the SIGTERM its parent's death sends
    it), so that no torchrun outlives its task, and Ray runs the step again."""
    import os
    import signal
    import threading
    import time

    pids = tmp_path / "pids"
    # the first attempt writes its pid and its worker's and sleeps; the next one ends at once
    code = (f"import os, pathlib, time; p = pathlib.Path({str(pids)!r})\n"
            "if not p.exists():\n"
            "    p.write_text(f'{os.getpid()} {os.getppid()}'); time.sleep(120)")
    done = {}
    runner = threading.Thread(target=lambda: done.update(s=schedule.run(
        [Step("sleeper", (Command(python(code), "sleeper"),))], say=lambda _: None)))
    runner.start()
    deadline = time.time() + 60
    while not (pids.exists() and " " in pids.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child, worker = map(int, pids.read_text().split())
    os.kill(worker, signal.SIGKILL)
    runner.join(timeout=120)
    [outcome] = done["s"].outcomes
    assert outcome.ok  # run again, by Ray
    deadline = time.time() + 15
    while running(child) and time.time() < deadline:
        time.sleep(0.2)
    assert not running(child)  # gone with its worker, not sleeping its 120 s


def running(pid: int) -> bool:
    """Whether a process runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
