"""Run ``python -m service serve`` as an operator does, for tests that need processes.

A ``ServiceProcess`` is the supervisor on a free port with its SpendLogs in a
SQLite file under the test's directory; helpers find its workers, ask its
health service, read its rows and its merged metrics. Everything waits with
generous timeouts: on a busy 2-core machine compiling the packs in a new
worker takes seconds, so no helper assumes every worker is already up.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

__all__ = [
    "START_TIMEOUT_S",
    "ServiceProcess",
    "free_port",
    "health_status",
    "running_service",
    "serving",
    "start_service",
    "wait_for",
]

START_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(
    predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` every 0.1 s until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout} s")


def health_status(target: str, timeout: float = 1.0) -> int | None:
    """The overall health status at ``target``; None when it does not answer."""
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout
            )
        except grpc.RpcError:
            return None
    return int(answer.status)


def serving(target: str) -> bool:
    return health_status(target) == health_pb2.HealthCheckResponse.SERVING


@dataclass
class ServiceProcess:
    """A supervisor process and the files it writes under ``workdir``."""

    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    workdir: Path
    workers: int
    output_path: Path  # stdout and stderr (log lines go to stdout)

    @property
    def db(self) -> Path:
        return self.workdir / "spend.db"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        # A private subchannel pool gives a new connection, so calls spread
        # over the workers the way separate gateway connections do.
        return grpc.insecure_channel(
            self.target, options=[("grpc.use_local_subchannel_pool", 1)]
        )

    def stub(self) -> pb_grpc.GuardrailServiceStub:
        return pb_grpc.GuardrailServiceStub(self.channel())

    def rows(self) -> list[sqlite3.Row]:
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db, timeout=30) as db:
            db.row_factory = sqlite3.Row
            return db.execute("SELECT * FROM spend_logs").fetchall()

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid), "-f", "spawn_main"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]

    def established_connections(self, pid: int) -> int:
        """TCP connections to the service port that process ``pid`` holds open."""
        inodes = set()
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            return 0
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if (
                    local_port == self.port
                    and fields[3] == "01"
                    and fields[9] in inodes
                ):
                    count += 1
        return count

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.read().decode()

    def output_text(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Every worker started and the port answers SERVING."""

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"service exited with {self.process.returncode}:\n"
                    + self.output_text()[-3000:]
                )
            return len(self.worker_pids()) == self.workers and serving(self.target)

        wait_for(ready, timeout, "all workers serving")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; SIGKILL only if it does not exit in ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return int(self.process.returncode)


def start_service(
    workdir: Path,
    *,
    workers: int = 2,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> ServiceProcess:
    """Start the supervisor; returns at once (call ``wait_ready`` to wait)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    metrics_port = free_port()
    environment = {
        **os.environ,
        "GUARDRAIL_WORKERS": str(workers),
        "GUARDRAIL_HOST": "127.0.0.1",
        "GUARDRAIL_PORT": str(port),
        "GUARDRAIL_METRICS_PORT": str(metrics_port),
        "GUARDRAIL_DATABASE_URL": f"sqlite:///{workdir / 'spend.db'}",
        "GUARDRAIL_LOG_LEVEL": "warning",
        **(env or {}),
    }
    output_path = workdir / "output.log"
    with output_path.open("wb") as output:  # the child keeps its own copy
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(process, port, metrics_port, workdir, workers, output_path)


@contextmanager
def running_service(
    workdir: Path, *, workers: int = 2, env: dict[str, str] | None = None
) -> Iterator[ServiceProcess]:
    """A started, ready service that is stopped (SIGTERM, then SIGKILL) on exit."""
    service = start_service(workdir, workers=workers, env=env)
    try:
        service.wait_ready()
        yield service
    finally:
        service.terminate()
