"""The MLflow UI on loopback, looked at with headless Chromium (tests and the docs' screenshot).

    python -m evaluation.browser --store mlflow.db --run <run id> --out docs/mlflow-ui.png
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from foundation.tracking import UI_ENV, UI_QUERY

CHROMIUM = "chromium"
# Without the networking flags Chromium keeps trying Google's hosts, which a closed network
# refuses; a fresh profile per call keeps runs independent.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def chromium() -> str | None:
    return shutil.which(CHROMIUM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_ui(store: Path, timeout: float = 90) -> Iterator[str]:
    """`mlflow ui` on 127.0.0.1 over a SQLite store; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", f"sqlite:///{Path(store).resolve()}"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, **UI_ENV})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow ui did not start: "
                                       + server.stderr.read().decode()[-2000:]) from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _chromium(*args: str, wait_ms: int) -> subprocess.CompletedProcess:
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium; "
                                "`make browser` does it)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}",
                               f"--virtual-time-budget={wait_ms}", *args],
                              capture_output=True, timeout=120, check=True)


def page_text(url: str, wait_ms: int = 15000) -> str:
    """The rendered page's visible text (scripts ran for wait_ms of virtual time)."""
    dom = _chromium("--dump-dom", url, wait_ms=wait_ms).stdout.decode()
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text)))


def screenshot(url: str, path: Path, size: tuple[int, int] = (1920, 1200),
               wait_ms: int = 15000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _chromium(f"--screenshot={Path(path).resolve()}", f"--window-size={size[0]},{size[1]}", url,
              wait_ms=wait_ms)
    return path


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}{UI_QUERY}"


def experiment_url(base: str, experiment_id: str) -> str:
    """What a user opens first: the experiment, from the UI's list."""
    return f"{base}/#/experiments/{experiment_id}{UI_QUERY}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluation.browser", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, default=Path("mlflow.db"), help="SQLite store")
    p.add_argument("--experiment", default="classifiers")
    p.add_argument("--run", required=True, help="run id to show (e.g. the report's parent run)")
    p.add_argument("--out", type=Path, default=Path("docs/mlflow-ui.png"))
    args = p.parse_args(argv)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{args.store.resolve()}")
    experiment = client.get_experiment_by_name(args.experiment)
    with mlflow_ui(args.store) as base:
        print(screenshot(run_url(base, experiment.experiment_id, args.run), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
