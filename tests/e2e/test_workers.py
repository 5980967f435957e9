"""The supervisor and its worker processes, driven as an operator runs them."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

WORKERS = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Instance:
    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    db: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stub(self) -> pb_grpc.GuardrailServiceStub:
        # A private subchannel pool gives a new connection, so calls spread
        # over the workers the way separate gateway connections do.
        channel = grpc.insecure_channel(
            self.target, options=[("grpc.use_local_subchannel_pool", 1)]
        )
        return pb_grpc.GuardrailServiceStub(channel)

    def rows(self) -> list[sqlite3.Row]:
        with sqlite3.connect(self.db) as db:
            db.row_factory = sqlite3.Row
            return db.execute("SELECT * FROM spend_logs").fetchall()

    def worker_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid), "-f", "spawn_main"],
            capture_output=True,
            text=True,
        ).stdout
        return [int(p) for p in out.split()]


def _serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _start(tmp_path: Path, port: int | None = None) -> Instance:
    port = port or _free_port()
    metrics_port = _free_port()
    db = tmp_path / "spend.db"
    env = {
        **os.environ,
        "GUARDRAIL_WORKERS": str(WORKERS),
        "GUARDRAIL_HOST": "127.0.0.1",
        "GUARDRAIL_PORT": str(port),
        "GUARDRAIL_METRICS_PORT": str(metrics_port),
        "GUARDRAIL_DATABASE_URL": f"sqlite:///{db}",
        "GUARDRAIL_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return Instance(process, port, metrics_port, db)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    running = _start(tmp_path)
    try:
        _wait(lambda: len(running.worker_pids()) == WORKERS and _serving(running.target))
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            running.process.wait(timeout=30)


def _orders(pattern: str = r"\bZX-\d{4}\b", sample: str = "ZX-1234") -> pb.Guardrail:
    rule = pb.Rule(
        id="order", category="internal", pattern=pattern, must_match=[sample]
    )
    return pb.Guardrail(name="orders", action=pb.ACTION_BLOCK, rules=[rule])


def _register(instance: Instance, guardrail: pb.Guardrail) -> pb.RegisterAccepted:
    [answer] = instance.stub().Register(iter([pb.RegisterRequest(guardrail=guardrail)]))
    assert answer.HasField("accepted"), answer
    return answer.accepted


def _check(instance: Instance, text: str, *names: str) -> pb.CheckResponse:
    request = pb.CheckRequest(payload=pb.Payload(text=text), guardrails=names)
    return instance.stub().Check(request, timeout=5)


def _workers_that_blocked(instance: Instance) -> set[int]:
    return {
        r["worker"]
        for r in instance.rows()
        if r["call_type"] == "check" and r["decision"] == "BLOCK"
    }


def test_register_is_enforced_on_every_worker_at_once(instance):
    """Right after Register answers, every worker blocks with the new guardrail."""
    accepted = _register(instance, _orders())

    # Keep calling on fresh connections until both workers have answered
    # (one may still be starting; it must join with the guardrail already in).
    deadline = time.monotonic() + 60
    while _workers_that_blocked(instance) != set(range(WORKERS)):
        assert time.monotonic() < deadline, "a worker never answered"
        answer = _check(instance, "ref ZX-9876", "orders")
        assert answer.decision == pb.DECISION_BLOCK
        assert answer.registry_generation == accepted.registry_generation
        time.sleep(0.05)


def test_update_and_delete_reach_every_worker(instance):
    """v2 changes behaviour everywhere; after Delete every worker says NOT_FOUND."""
    _register(instance, _orders())
    v2 = _register(instance, _orders(r"\bYY-\d{4}\b", "YY-1234"))

    assert v2.version == 2
    assert all(_check(instance, "ZX-1234", "orders").decision == pb.DECISION_ALLOW for _ in range(20))
    instance.stub().DeleteGuardrail(pb.DeleteGuardrailRequest(name="orders"))
    for _ in range(20):
        with pytest.raises(grpc.RpcError) as raised:
            _check(instance, "YY-1234", "orders")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_killed_worker_is_replaced_with_the_current_registry(instance):
    """SIGKILL on a worker: the supervisor starts a new one that knows every guardrail."""
    accepted = _register(instance, _orders())
    victim = instance.worker_pids()[0]

    os.kill(victim, signal.SIGKILL)

    _wait(lambda: victim not in instance.worker_pids() and len(instance.worker_pids()) == WORKERS)
    _wait(lambda: _serving(instance.target))
    answers = [_check(instance, "ZX-4321", "orders") for _ in range(30)]
    assert {a.registry_generation for a in answers} == {accepted.registry_generation}
    assert {a.decision for a in answers} == {pb.DECISION_BLOCK}


def test_sigterm_drains_and_keeps_every_row(instance):
    """SIGTERM: the supervisor and its workers exit 0 and every answered call has its row."""
    calls = 40
    for i in range(calls):
        _check(instance, f"hello number {i}")

    instance.process.send_signal(signal.SIGTERM)

    code = instance.process.wait(timeout=30)
    assert code == 0, instance.process.stderr.read().decode()[-3000:]
    assert len(instance.rows()) == calls


def test_second_instance_on_the_same_port_is_refused(instance, tmp_path):
    """SO_REUSEPORT must not let a second instance silently share a port."""
    other = _start(tmp_path / "other", port=instance.port)

    code = other.process.wait(timeout=30)

    assert code != 0
    assert b"already serves" in other.process.stderr.read()
