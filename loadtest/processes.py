"""Start and stop the servers under test as subprocesses; read their CPU and RSS.

The service runs as ``guardrail serve`` with its settings in the environment
(ports picked free, SpendLogs in a SQLite file in a temporary directory, JSON
access log to a file there), so nothing but the load tool shares its process.
CPU and RSS are read from /proc and summed over the process and its children,
so a multi-worker service is measured whole.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loadtest.scenarios import REPO_ROOT

__all__ = [
    "ServerProcess",
    "cpu_seconds",
    "exit_on_sigterm",
    "free_port",
    "process_tree",
    "rss_bytes",
    "start_echo",
    "start_service",
    "wait_healthy",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
# Compiling every built-in pack takes seconds, many more on a busy shared machine.
START_TIMEOUT_S = 120.0


@dataclass
class ServerProcess:
    """A server subprocess on 127.0.0.1:port; ``stop()`` sends SIGTERM and waits."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    workdir: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks stop the servers we started."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _guardrail_command() -> list[str]:
    script = Path(sys.executable).with_name("guardrail")
    if script.exists():
        return [str(script), "serve"]
    return [
        sys.executable,
        "-c",
        "import sys; from service.cli import main; sys.exit(main())",
        "serve",
    ]


def wait_healthy(
    target: str, popen: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_S
) -> None:
    """Block until the server at ``target`` answers SERVING (or fail loudly)."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(
                    f"server exited with {popen.returncode} before serving"
                )
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"{target} not SERVING after {timeout}s")


def start_service(
    *, workers: int = 1, extra_env: dict[str, str] | None = None
) -> ServerProcess:
    """``guardrail serve`` on free ports with its records in a temporary directory."""
    tmp = tempfile.TemporaryDirectory(prefix="guardrail-loadtest-")
    workdir = Path(tmp.name)
    port = free_port()
    env = {
        **os.environ,
        "GUARDRAIL_HOST": "127.0.0.1",
        "GUARDRAIL_PORT": str(port),
        "GUARDRAIL_METRICS_PORT": str(free_port()),
        "GUARDRAIL_DATABASE_URL": f"sqlite:///{workdir / 'spend.db'}",
        "GUARDRAIL_WORKERS": str(workers),
        "GUARDRAIL_LOG_FORMAT": "json",
        **(extra_env or {}),
    }
    with (workdir / "service.log").open("wb") as log:  # the child keeps its own copy
        popen = subprocess.Popen(
            _guardrail_command(),
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess("service", popen, port, workdir, tmp)
    try:
        wait_healthy(server.target, popen)
    except (RuntimeError, TimeoutError):
        tail = (workdir / "service.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"guardrail serve did not start:\n{tail}") from None
    except BaseException:  # interrupted while starting: leave no orphan behind
        server.stop()
        raise
    return server


def start_echo() -> ServerProcess:
    """The reference echo server (loadtest/echo_server.py) on a free port."""
    port = free_port()
    script = REPO_ROOT / "loadtest" / "echo_server.py"
    popen = subprocess.Popen(
        [sys.executable, str(script), "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
    )
    server = ServerProcess("echo", popen, port, REPO_ROOT)
    try:
        wait_healthy(server.target, popen)
    except BaseException:  # a failed or interrupted start leaves no orphan behind
        server.stop()
        raise
    return server


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant, from /proc/*/stat parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, ()))
    return found


def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = _stat_fields(member)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/statm").read_text().split()
        except OSError:
            continue
        total += int(fields[1]) * _PAGE
    return total
