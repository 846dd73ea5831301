"""One prep job per set folder: a lock file that a job holds while it writes the set.

The lock is `<set>/.prep-lock.json`, created with O_EXCL (atomic on local disks and on NFS v3+
and the usual cluster filesystems), holding the job's host, pid, start time and a token. The
holder touches it every HEARTBEAT_S. A second job waits with one line naming the holder (or,
with --no-wait, refuses in one line). A lock is stale, and taken over, when its holder's pid is
gone on this host, or when it has not been touched for STALE_S (a job killed on another host).

Object stores (s3://, gs://) have no exclusive create through PyArrow: no lock is taken there.
Two jobs on one set then both code every shard; the set stays consistent (a shard appears only
whole, under its final name) but the work is done twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from foundation import storage
from foundation.storage import Location

LOCK = ".prep-lock.json"
HEARTBEAT_S = 5.0
STALE_S = 60.0  # no heartbeat for this long: the holder is gone (12 missed beats)
POLL_S = 1.0


class Busy(RuntimeError):
    """The set is being written by another job (--no-wait)."""


def describe(holder: dict, path: Path) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return (f"prep job pid {holder.get('pid')} on {holder.get('host')} (started {started}; "
            f"lock {path})")


def _read(path: Path) -> dict | None:
    """The holder's record; None when the lock is gone. A half-written one reads as {}."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {}


def _is_stale(holder: dict, path: Path) -> bool:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False  # released meanwhile: simply try again
    if age > STALE_S:
        return True
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
    return False


def _take_over(path: Path, holder: dict) -> None:
    """Remove a stale lock, unless another job replaced it meanwhile (then it is put back)."""
    aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)  # atomic: of two jobs taking over, one gets it
    except FileNotFoundError:
        return
    if (_read(aside) or {}).get("token") != holder.get("token"):  # a fresh lock: restore it
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


class _Held:
    def __init__(self, path: Path, token: str):
        self.path, self.token, self.stop = path, token, threading.Event()
        self.thread = threading.Thread(target=self._beat, name="prep-lock", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self.stop.set()
        if (_read(self.path) or {}).get("token") == self.token:
            self.path.unlink(missing_ok=True)


def _acquire(set_dir: Path, wait: bool, say) -> _Held:
    path = set_dir / LOCK
    token = uuid.uuid4().hex
    record = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                         "started": time.time(), "token": token}).encode()
    waiting = False
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None:
                continue
            if _is_stale(holder, path):
                say(f"{set_dir}: taking over the lock of a {describe(holder, path)}, which is "
                    f"gone")
                _take_over(path, holder)
                continue
            if not wait:
                raise Busy(f"{set_dir} is being written by {describe(holder, path)}: run again "
                           f"when it has finished, or without --no-wait to wait for it") from None
            if not waiting:
                say(f"{set_dir} is being written by {describe(holder, path)}: waiting for it "
                    f"to finish")
                waiting = True
            time.sleep(POLL_S)
            continue
        with os.fdopen(fd, "wb") as file:
            file.write(record)
        return _Held(path, token)


@contextlib.contextmanager
def hold(set_dirs: list[Location], wait: bool = True, say=print) -> Iterator[None]:
    """Hold the lock of every local set folder (in name order: two jobs cannot deadlock)."""
    held = []
    try:
        for set_dir in sorted({str(d) for d in set_dirs}):
            if storage.is_remote(set_dir):
                continue
            Path(set_dir).mkdir(parents=True, exist_ok=True)
            held.append(_acquire(Path(set_dir), wait, say))
        yield
    finally:
        for lock in reversed(held):
            lock.release()
