"""Ray is the pipeline's one scheduler: every step of a run (a prep job, a fit of a start, a
trainer, the report) is a Ray task on the run's one Ray session, local or a cluster.

A step names the steps it comes after; its task takes their results (ObjectRefs) as arguments,
so Ray starts it once they are over and its resources are free, on any node that has them, as
many at once as their resources allow (no loop, no polling, no thread arithmetic of ours). Ray
starts ready tasks in the order they became ready and has no priorities (ray-project/ray#52865):
a step that should yield its place to others names them in `later_than`, an order, not a need.

- Resources: what a step asks Ray for (`Resources`). A trainer's CPUs are its share of a node
  (`lanes` trainers to a CPU node) and its processes' threads that share split among them; a
  GPU trainer asks for `nproc` GPUs and Ray gives it its own (CUDA_VISIBLE_DEVICES, which the
  `torchrun --nproc_per_node` it launches inherits).
- Faults: a step whose worker or node dies, or whose process is killed by a signal (`Killed`),
  is run again by Ray (`RETRIES`, on any node with the resources); a trainer resumes from its
  checkpoint and a fit whose file is there is not redone. A step that fails for good (an exit
  code, an error) ends as an `Outcome` with its error: the others go on, the steps after it are
  skipped, and `failures` gives a line for each with the command that resumes it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RETRIES = 2  # a task again, after its worker, its node or its process died
# torchrun's report of a rank that died of a signal (its own exit code is then 1)
RANK_SIGNAL = "received by PID"


class Killed(Exception):
    """A step's process died of a signal (the OOM killer, a node going away, SIGKILL): not the
    step's fault, so Ray runs it again (retry_exceptions), where an exit code is final."""


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: int = 0
    threads: int | None = None  # OMP_NUM_THREADS of its processes (None: theirs)


@dataclass(frozen=True)
class Command:
    """A process of a step: `python <argv>`, in the task's folder (the job's working directory
    on a cluster); done already where `creates` exists (a fitted start, when a task runs
    again)."""

    argv: tuple[str, ...]
    what: str
    creates: Path | None = None

    @property
    def line(self) -> str:
        return " ".join(["python", *self.argv])


@dataclass(frozen=True)
class Step:
    """Work for one Ray task: its commands in order, or a Python call (a prep job, the report;
    it returns what to print), after the steps named in `after`, with its resources. Its
    processes write to `log`; its wall time goes to `wall_time` (a trainer's WALL_TIME)."""

    what: str
    commands: tuple[Command, ...] = ()
    call: Callable[[], str] | None = None
    after: tuple[str, ...] = ()
    # steps it starts after, failed or not (an order: it runs unless Ray gave up on one of them)
    later_than: tuple[str, ...] = ()
    resources: Resources = Resources()
    log: Path | None = None
    wall_time: Path | None = None
    resume: str = ""  # the command that resumes it alone (a trainer's own command)


@dataclass(frozen=True)
class Outcome:
    what: str
    stages: tuple[tuple[str, float], ...] = ()  # (what, wall seconds) of each part that ran
    error: str | None = None  # it failed: why, in one line
    skipped: str | None = None  # it did not run: the step before it that failed
    note: str = ""  # its result line
    node: str = ""  # the Ray node it ran on

    @property
    def ok(self) -> bool:
        return self.error is None and self.skipped is None


@dataclass
class Schedule:
    """What a run did: an outcome per step, in the order they ended."""

    outcomes: list[Outcome] = field(default_factory=list)
    steps: dict[str, Step] = field(default_factory=dict)

    def failures(self) -> list[str]:
        """One line per step that failed for good, with the command that resumes it and the
        steps skipped after it."""
        lines = []
        for o in self.outcomes:
            if o.error is None:
                continue
            skipped = [s.what for s in self.outcomes if s.skipped == o.what]
            resume = self.steps[o.what].resume
            lines.append(o.error + (f"; resume it alone: {resume}" if resume else "")
                         + (f"; not run after it: {', '.join(skipped)}" if skipped else ""))
        return lines


def run(steps: list[Step], closing: Step | None = None,
        say: Callable[[str], None] = print) -> Schedule:
    """Every step as a Ray task (Ray must be up), each after the steps it names (listed before
    it), then `closing` (the report) once every one is over, failed or not; returns when all
    are over, saying each as it ends."""
    schedule = _run(steps, say)
    if closing is not None:
        ended = _run([closing], say)
        schedule.outcomes += ended.outcomes
        schedule.steps |= ended.steps
    return schedule


def _run(steps: list[Step], say: Callable[[str], None]) -> Schedule:
    import ray

    named: set[str] = set()
    for step in steps:  # checked before any task starts
        if step.what in named:
            raise ValueError(f"two steps are named {step.what!r}: each needs a name of its own")
        if unknown := [a for a in (*step.after, *step.later_than) if a not in named]:
            raise ValueError(f"{step.what} comes after {', '.join(unknown)}, which is not a step "
                             f"listed before it")
        named.add(step.what)
    task = ray.remote(_execute)
    refs: dict[str, object] = {}
    for step in steps:
        r = step.resources
        refs[step.what] = task.options(
            num_cpus=r.cpus, num_gpus=r.gpus, max_retries=RETRIES, retry_exceptions=[Killed],
            name=step.what[:100]).remote(step, *(refs[a] for a in (*step.after,
                                                                   *step.later_than)))
        say(f"==> {step.what}" + (f" (after {', '.join(step.after)})" if step.after else "")
            + "".join(f"\n    {c.line}" for c in step.commands))
    schedule = Schedule(steps={s.what: s for s in steps})
    pending = {ref: step for step, ref in zip(steps, refs.values(), strict=True)}
    over: dict[str, Outcome] = {}
    raised: set[str] = set()  # the steps Ray gave up on: their error reaches the tasks after them
    while pending:
        [ready], _ = ray.wait(list(pending), num_returns=1)
        step = pending.pop(ready)
        try:
            outcome = ray.get(ready)
        except ray.exceptions.RayError as err:  # retries spent, or a step before it raised so
            waiting = {s.what for s in pending.values()}
            before = [over[a].skipped or a if a in over else a
                      for a in (*step.after, *step.later_than) if a in raised | waiting]
            raised.add(step.what)
            outcome = Outcome(step.what, skipped=before[0]) if before else \
                Outcome(step.what, error=f"{step.what} failed: {_first_line(err)}")
        over[step.what] = outcome
        schedule.outcomes.append(outcome)
        say(_describe(outcome))
    return schedule


def _describe(o: Outcome) -> str:
    if o.skipped:
        return f"==> {o.what}: not run ({o.skipped} failed)"
    if o.error:
        return f"==> {o.error}"
    seconds = sum(s for _, s in o.stages)
    return f"==> {o.what}: done in {seconds:.0f} s. {o.note}".rstrip()


def _first_line(err: BaseException) -> str:
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def _execute(step: Step, *before: Outcome) -> Outcome:
    """The task: nothing where a step it comes after failed (not one it is only later than);
    else the call or the commands."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    failed = [b.skipped or b.what for b in before[:len(step.after)] if not b.ok]
    if failed:  # named by the step that failed, not by one skipped after it
        return Outcome(step.what, skipped=failed[0], node=node)
    start = time.perf_counter()
    if step.call is not None:
        try:
            note = step.call()
        except (OSError, ValueError, RuntimeError) as err:  # foundation.cli's expected errors
            return Outcome(step.what, error=f"{step.what}: {err}", node=node)
        return Outcome(step.what, ((step.what, time.perf_counter() - start),), note=note,
                       node=node)
    stages = []
    for command in step.commands:
        if command.creates is not None and command.creates.is_file():
            continue
        begun = time.perf_counter()
        code, killed = launch(command.argv, step.log, step.resources.threads)
        stages.append((command.what, time.perf_counter() - begun))
        if killed:
            raise Killed(f"{command.what}: {killed}; see {step.log}")
        if code:
            return Outcome(step.what, tuple(stages), node=node,
                           error=f"{command.what} failed (exit {code}): see {step.log}")
    if step.wall_time is not None:
        step.wall_time.write_text(json.dumps(time.perf_counter() - start))
    return Outcome(step.what, tuple(stages), note=_result_line(step.log), node=node)


def launch(argv: tuple[str, ...], log: Path | None, threads: int | None
           ) -> tuple[int, str | None]:
    """`python <argv>` with this task's environment (Ray's CUDA_VISIBLE_DEVICES for its GPUs)
    and `threads` as OMP_NUM_THREADS, its output appended to `log`: (exit code, how it was
    killed or None). It gets SIGTERM if this worker dies (a worker killed with SIGKILL cannot
    stop its children itself), so that no torchrun outlives its task: torchrun stops its ranks
    on SIGTERM."""
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    log = Path(os.devnull) if log is None else log
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        start = sink.tell()
        code = subprocess.run([sys.executable, *argv], stdout=sink, stderr=subprocess.STDOUT,
                              env=env, preexec_fn=_term_with_parent).returncode
    if code < 0:
        return code, f"killed by {signal.Signals(-code).name}"
    if code and log.name != os.devnull:
        with log.open("rb") as text:
            text.seek(start)
            died = [ln for ln in text.read().decode(errors="replace").splitlines()
                    if RANK_SIGNAL in ln and "Signal" in ln]
        if died:
            return code, f"a rank was killed ({died[-1].strip()})"
    return code, None


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _term_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent (the Ray worker) dies
    (PR_SET_PDEATHSIG, as Ray does for its own processes); resolved before the fork."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM, 0, 0, 0)


def _result_line(log: Path | None) -> str:
    """A log's last result line: a trainer's test result, a fit's file and hint error."""
    if log is None or not log.is_file():
        return ""
    lines = log.read_text(errors="replace").splitlines()
    return next((ln for ln in reversed(lines) if ln.startswith(("test:", "wrote "))), "")
