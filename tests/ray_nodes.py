"""A real two-node Ray cluster on this machine: `ray start --head` and `ray start --address`,
each with its own CPU, ports on 127.0.0.1 and a token of its own; stopped by process id."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_ports() -> list[str]:
    """Ports every node opens; the defaults would collide between two nodes on one host."""
    ports = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")
    return [arg for name in ports for arg in (name, str(free_port()))]


@dataclass
class RayNodes:
    dashboard: str  # http://127.0.0.1:<port>: jobs and the state API
    env: dict  # what a client of this cluster needs (its token)
    temp_dir: Path
    processes: list = field(default_factory=list)

    def ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """The `ray` CLI against this cluster."""
        return subprocess.run([RAY, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def alive_nodes(self) -> list[dict]:
        result = self.ray("list", "nodes", "--address", self.dashboard, "--format", "json",
                          "--filter", "state=ALIVE")
        if result.returncode != 0 or not result.stdout.lstrip().startswith("["):
            return []  # not up yet, or "No resource in the cluster"
        return json.loads(result.stdout)

    def stop(self) -> None:
        """SIGTERM to each `ray start --block` (it stops its node), then SIGKILL to what is
        left of that process group."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.time() + 20
        for process in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # its own group (start_new_session)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start(cpus_per_node: int = 1, nodes: int = 2, timeout: float = 120) -> RayNodes:
    """Start a head (with the dashboard and job API) and `nodes - 1` more nodes."""
    temp_dir = Path(tempfile.mkdtemp(prefix="cdmr-ray-", dir="/tmp"))  # short socket paths
    token = temp_dir / "token"
    token.write_text(uuid.uuid4().hex)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    gcs, dashboard = free_port(), free_port()
    cluster = RayNodes(f"http://127.0.0.1:{dashboard}", env, temp_dir)
    common = ["--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus_per_node),
              "--disable-usage-stats"]
    head = [RAY, "start", "--head", "--port", str(gcs), "--temp-dir", str(temp_dir),
            "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
            "--ray-client-server-port", str(free_port()), *common, *_node_ports()]
    try:
        for i in range(nodes):
            command = head if i == 0 else [RAY, "start", "--address", f"127.0.0.1:{gcs}",
                                           *common, *_node_ports()]
            log = open(temp_dir / f"node{i}.log", "w")
            cluster.processes.append(subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            _wait(lambda n=i: len(cluster.alive_nodes()) == n + 1 or _died(cluster), timeout)
            if _died(cluster):
                logs = "\n".join((temp_dir / f"node{j}.log").read_text()[-2000:]
                                 for j in range(i + 1))
                raise RuntimeError(f"a Ray node did not start:\n{logs}")
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _died(cluster: RayNodes) -> bool:
    return any(p.poll() is not None for p in cluster.processes)


def _wait(condition, timeout: float) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError(f"the Ray cluster was not up within {timeout:.0f} s")
        time.sleep(0.5)
