"""The supervisor and its worker processes, driven as an operator runs them."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from guardrail.v1 import guardrail_pb2 as pb

from tests.procs import (
    ServiceProcess,
    running_service,
    serving,
    start_service,
    wait_for,
)

WORKERS = 2


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[ServiceProcess]:
    with running_service(tmp_path, workers=WORKERS) as running:
        yield running


def _wait(predicate, timeout: float = 30.0) -> None:
    wait_for(predicate, timeout)


def _orders(pattern: str = r"\bZX-\d{4}\b", sample: str = "ZX-1234") -> pb.Guardrail:
    rule = pb.Rule(
        id="order", category="internal", pattern=pattern, must_match=[sample]
    )
    return pb.Guardrail(name="orders", action=pb.ACTION_BLOCK, rules=[rule])


def _register(instance: ServiceProcess, guardrail: pb.Guardrail) -> pb.RegisterAccepted:
    [answer] = instance.stub().Register(iter([pb.RegisterRequest(guardrail=guardrail)]))
    assert answer.HasField("accepted"), answer
    return answer.accepted


def _check(instance: ServiceProcess, text: str, *names: str) -> pb.CheckResponse:
    request = pb.CheckRequest(payload=pb.Payload(text=text), guardrails=names)
    return instance.stub().Check(request, timeout=5)


def _workers_that_blocked(instance: ServiceProcess) -> set[int]:
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
    assert all(
        _check(instance, "ZX-1234", "orders").decision == pb.DECISION_ALLOW
        for _ in range(20)
    )
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

    _wait(
        lambda: (
            victim not in instance.worker_pids()
            and len(instance.worker_pids()) == WORKERS
        )
    )
    _wait(lambda: serving(instance.target))
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
    assert code == 0, instance.output_text()[-3000:]
    assert len(instance.rows()) == calls


def test_second_instance_on_the_same_port_is_refused(instance, tmp_path):
    """SO_REUSEPORT must not let a second instance silently share a port."""
    other = start_service(tmp_path / "other", workers=WORKERS, port=instance.port)

    code = other.process.wait(timeout=30)

    assert code != 0
    assert "already serves" in other.output_text()


def test_metrics_port_in_use_stops_start_up_with_a_message(tmp_path):
    """A taken metrics port once left a traceback and a process that never exited."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        metrics_port = taken.getsockname()[1]
        service = start_service(
            tmp_path, workers=1, env={"GUARDRAIL_METRICS_PORT": str(metrics_port)}
        )
        try:
            code = service.process.wait(timeout=30)
        finally:
            service.terminate(timeout=5)

    assert code != 0
    output = service.output_text()
    assert f"cannot serve metrics on 127.0.0.1:{metrics_port}" in output
    assert "Traceback" not in output


def test_grpc_port_held_by_another_program_stops_start_up(tmp_path):
    """A port another program listens on once left the workers crash-looping forever."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = start_service(tmp_path, workers=1, port=port)
        try:
            code = service.process.wait(timeout=30)
        finally:
            service.terminate(timeout=5)

    assert code != 0
    output = service.output_text()
    assert f"cannot serve gRPC on 127.0.0.1:{port}" in output
    assert "Traceback" not in output
