"""Tracking that cannot stop a run: every MLflow record goes to a journal first.

A run's params, metrics, tags and end are appended to a JSON-lines journal in its folder and
delivered in order by a background thread; the training loop never waits for the server. When
the server does not answer, or refuses the caller's credentials (HTTP 401/403: check
MLFLOW_TRACKING_USERNAME/PASSWORD), the thread says so once, keeps the records (on disk and in
memory) and retries with back-off until it takes them. At the end of the run it waits a little
(WAIT_S) for what is left; what still could not be delivered is one line naming the journal
and the command that delivers it later (`python -m foundation.journal <journal>`).

Why not MLflow's own asynchronous logging (`synchronous=False`, 3.17.2): its queue logs a failed
batch as an error and drops it, and keeps nothing on disk; an outage longer than the HTTP
retries loses the metrics. MLflow's HTTP retries (7, exponential back-off, 120 s timeouts) are
what stalled the trainer: this module turns them down for its process (HTTP_DEFAULTS, unless
set) and retries itself, without blocking anyone.

The journal holds records, never code: each line is one JSON object with a sequence number;
`<journal>.state` holds the last delivered number and the run id. Records are bounded
(MAX_BYTES); a journal whose records are all delivered is removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path

from foundation.cli import stage_main
from foundation.storage import write_atomic
from foundation.tracking import experiment_id, refusal, tracking_uri

log = logging.getLogger(__name__)

JOURNAL = "tracking-journal.jsonl"
# fail fast and retry here, in the background, rather than in urllib3 in the caller's thread
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
WAIT_S = float(os.environ.get("CDMR_TRACKING_WAIT_S", 30))  # at the end, for a late server
RETRY_S = (0.5, 30.0)  # first and longest wait between tries while the server is away
MAX_BYTES = 64 << 20  # ~300 k epochs of metrics; beyond, new records are dropped with a warning


def fail_fast() -> None:
    """MLflow's HTTP calls in this process give up at once (unless the user set otherwise)."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def is_refusal(err: Exception) -> bool:
    """The server answered and refused the record (4xx): trying again cannot help. A refused
    caller (401, 403: its credentials) is not: its records are kept, as in an outage."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, LookupError):  # a record whose run could not be started
        return True
    return (isinstance(err, MlflowException) and 400 <= err.get_http_status_code() < 500
            and refusal(err) is None)


def make_experiment(name: str) -> str | None:
    """The experiment made now, before the writers that would race to make it (and a new
    SQLite store's migrations); a server that does not answer or refuses the caller is one
    line to say (the writers' journals keep their records until it takes them), else None."""
    fail_fast()
    try:
        experiment_id(name)
    except Exception as err:  # noqa: BLE001 -- MLflow raises what its transport raises
        return (f"warning: MLflow at {tracking_uri()}: {refusal(err) or first_line(err)}; "
                f"the runs keep their records in their folders' {JOURNAL} until it takes them")
    return None


def first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:200]


def deliver_command(path: Path) -> str:
    return f"python -m foundation.journal {path}"


class Journal:
    """One run's records, delivered in order to the tracking server (MLFLOW_TRACKING_URI)."""

    def __init__(self, path: Path, wait_s: float = WAIT_S):
        fail_fast()
        self.path = Path(path).absolute()  # named in messages
        self.state_path = Path(f"{self.path}.state")
        self.uri, self.wait_s = tracking_uri(), wait_s
        state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        self.delivered, self.current = state.get("delivered", 0), state.get("run_id")
        self.mine: int | None = None  # the sequence number of this process's start record
        self.pending = deque(r for r in read_records(self.path) if r["seq"] > self.delivered)
        self.seq = self.pending[-1]["seq"] if self.pending else self.delivered
        self.down = self.dropped = False
        self.lock, self.wake, self.stop = threading.Lock(), threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._deliver_all, name="tracking", daemon=True)
        self.thread.start()

    # --- what a run records (never blocks on the server) ---

    def start(self, experiment: str, name: str, tags: dict, run_id: str | None = None,
              resume: bool = False) -> bool:
        """A new run, or run_id's again; `resume` continues the journal's own run when the
        caller has no id (a run restarted before the server ever answered). True: a new run."""
        if resume and run_id is None:
            if self.current or any(r["op"] == "start" for r in self.pending):
                return False
        self.mine = self._append({"op": "start", "experiment": experiment, "name": name,
                                  "tags": tags, "run_id": run_id})
        return run_id is None

    @property
    def run_id(self) -> str | None:
        """The id of this process's run once the server has created it, else None."""
        return self.current if self.mine is None or self.delivered >= self.mine else None

    def log_params(self, params: dict) -> None:
        self._append({"op": "params", "params": {k: str(v) for k, v in params.items()}})

    def log_metrics(self, metrics: dict, step: int = 0) -> None:
        self._append({"op": "metrics", "metrics": {k: float(v) for k, v in metrics.items()},
                      "step": step, "time": int(time.time() * 1000)})

    def set_tags(self, tags: dict) -> None:
        self._append({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def finish(self, status: str = "FINISHED") -> int:
        """End the run; see close."""
        self._append({"op": "end", "status": status, "time": int(time.time() * 1000)})
        return self.close()

    def close(self) -> int:
        """Wait up to wait_s for the records left, stop delivering. Returns how many are not
        delivered (said in one line, with the command that delivers them)."""
        deadline = time.monotonic() + self.wait_s
        while self.pending and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.1)
        self.stop.set()
        self.wake.set()
        with self.lock:
            left = len(self.pending)
        if left:
            log.warning("tracking: %d record(s) not delivered to %s; kept in %s; deliver them "
                        "with `%s`", left, self.uri, self.path, deliver_command(self.path))
        return left

    def _append(self, record: dict) -> int | None:
        with self.lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size > MAX_BYTES:
                if not self.dropped:
                    log.warning("tracking: %s is over %d MiB: new records are dropped",
                                self.path, MAX_BYTES >> 20)
                self.dropped = True
                return None
            self.seq += 1
            record = {"seq": self.seq, **record}
            with open(self.path, "a") as journal:
                journal.write(json.dumps(record) + "\n")
            self.pending.append(record)
        self.wake.set()
        return self.seq

    # --- delivery (the background thread) ---

    def _deliver_all(self) -> None:
        from mlflow.tracking import MlflowClient

        logging.getLogger("alembic").setLevel(logging.WARNING)  # a new SQLite store's set-up
        client, delay = MlflowClient(self.uri), RETRY_S[0]
        while not self.stop.is_set():
            with self.lock:
                record = self.pending[0] if self.pending else None
            if record is None:
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            try:
                current = deliver(client, record, self.current)
            except Exception as err:  # any failure here must stay here, away from the run
                if not is_refusal(err):
                    if not self.down:
                        log.warning("tracking: %s %s; records are kept in %s and delivered when "
                                    "it takes them", self.uri, refusal(err)
                                    or f"does not answer ({first_line(err)})", self.path)
                    self.down = True
                    self.stop.wait(delay)
                    delay = min(delay * 2, RETRY_S[1])
                    continue
                log.warning("tracking: %s refused record %d (%s), skipped", self.uri,
                            record["seq"], first_line(err))
            if self.down:
                log.info("tracking: %s answers again; delivering the kept records", self.uri)
            self.down, delay = False, RETRY_S[0]
            with self.lock:
                self.pending.popleft()
                self.current, self.delivered = current, record["seq"]
                self._save_state()

    def _save_state(self) -> None:
        if not self.pending:  # all delivered: nothing to keep but the run id
            self.path.unlink(missing_ok=True)
        write_atomic(self.state_path, json.dumps({"delivered": self.delivered,
                                                  "run_id": self.current}).encode())


def read_records(path: Path) -> list[dict]:
    """The journal's records; a line cut short by a crash is left out."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return records


def deliver(client, record: dict, run_id: str | None) -> str | None:
    """Send one record; returns the run id that the following records belong to."""
    from mlflow.entities import Metric, Param, RunTag

    op = record["op"]
    if op == "start":
        if record["run_id"]:
            try:
                client.update_run(record["run_id"], status="RUNNING")
            except Exception as err:
                if not is_refusal(err):
                    raise
                log.warning("tracking: run %s is not on the server; starting a new run",
                            record["run_id"])
            else:
                client.log_batch(record["run_id"],
                                 tags=[RunTag(k, v) for k, v in record["tags"].items()])
                return record["run_id"]
        return client.create_run(experiment_id(record["experiment"]), run_name=record["name"],
                                 tags=record["tags"]).info.run_id
    if run_id is None:  # records of a run whose start is lost: nowhere to send them
        raise LookupError(f"record {record['seq']} has no run (its start was refused)")
    if op == "params":
        client.log_batch(run_id, params=[Param(k, v) for k, v in record["params"].items()])
    elif op == "metrics":
        client.log_batch(run_id, metrics=[Metric(k, v, record["time"], record["step"])
                                          for k, v in record["metrics"].items()])
    elif op == "tags":
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in record["tags"].items()])
    elif op == "end":
        client.set_terminated(run_id, record["status"], end_time=record["time"])
    return run_id


@stage_main
def main(argv: list[str] | None = None) -> int:
    """Deliver what a run's journal kept (MLFLOW_TRACKING_URI names the server)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="python -m foundation.journal", description=main.__doc__)
    p.add_argument("journal", type=Path, help=f"a run's {JOURNAL}")
    p.add_argument("--wait", type=float, default=WAIT_S, help="seconds to keep trying")
    args = p.parse_args(argv)
    if not args.journal.is_file():
        print(f"error: {args.journal} does not exist (nothing left to deliver?)", file=sys.stderr)
        return 2
    journal = Journal(args.journal, args.wait)
    if journal.close():  # said in one line
        return 1
    print(f"delivered {args.journal} to {journal.uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
