"""The registry across processes: a supervisor with 2 workers, two instances, the CLI.

Real services (``python -m service serve``) on real ports, over SQLite and
PostgreSQL. Which worker answered a Check is read from its SpendLogs row.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from guardrail.v1 import guardrail_pb2 as pb

from tests.procs import ServiceProcess, running_service, wait_for
from tests.registry.conftest import fresh_pg_url, orders, read_rows

WORKERS = 2


@pytest.fixture
def instance(tmp_path: Path, database_url: str) -> Iterator[ServiceProcess]:
    env = {"GUARDRAIL_DATABASE_URL": database_url, "GUARDRAIL_METRICS_ENABLED": "false"}
    with running_service(tmp_path / "a", workers=WORKERS, env=env) as running:
        yield running


def _register(service: ServiceProcess, *guardrails: pb.Guardrail) -> list[pb.RegisterResponse]:
    requests = [pb.RegisterRequest(guardrail=g) for g in guardrails]
    return list(service.stub().Register(iter(requests), timeout=60))


def _check(service: ServiceProcess, text: str, name: str) -> pb.CheckResponse:
    request = pb.CheckRequest(
        payload=pb.Payload(text=text), guardrails=[name], client_request_id=text
    )
    return service.stub().Check(request, timeout=10)


def _on_every_worker(service: ServiceProcess, url: str, text: str, name: str) -> list[pb.CheckResponse]:
    """Check on fresh connections until every worker has answered (per its row)."""
    answers = []
    deadline = time.monotonic() + 60
    while True:
        answers.append(_check(service, text, name))
        rows = read_rows(
            url, f"SELECT worker FROM spend_logs WHERE client_request_id = '{text}'"
        )
        if {r["worker"] for r in rows} == set(range(WORKERS)):
            return answers
        assert time.monotonic() < deadline, "a worker never answered"
        time.sleep(0.05)


def test_register_update_delete_reach_every_worker(instance, database_url):
    """Right after each answer, every worker enforces it: v1 blocks, v2 changes it, delete → NOT_FOUND."""
    [v1] = _register(instance, orders())
    assert v1.accepted.version == 1
    answers = _on_every_worker(instance, database_url, "v1 ZX-1001", "orders")
    assert {a.decision for a in answers} == {pb.DECISION_BLOCK}
    assert {a.registry_generation for a in answers} == {v1.accepted.registry_generation}

    [v2] = _register(instance, orders(pattern=r"\bYY-\d{4}\b", sample="YY-1234"))
    assert v2.accepted.version == 2
    answers = _on_every_worker(instance, database_url, "v2 ZX-1002", "orders")
    assert {a.decision for a in answers} == {pb.DECISION_ALLOW}
    answers = _on_every_worker(instance, database_url, "v2 YY-1003", "orders")
    assert {a.decision for a in answers} == {pb.DECISION_BLOCK}

    instance.stub().DeleteGuardrail(pb.DeleteGuardrailRequest(name="orders"), timeout=60)
    deadline = time.monotonic() + 60
    while True:
        with pytest.raises(grpc.RpcError) as raised:
            _check(instance, "deleted YY-1004", "orders")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        rows = read_rows(
            database_url,
            "SELECT worker FROM spend_logs WHERE client_request_id = 'deleted YY-1004'",
        )
        if {r["worker"] for r in rows} == set(range(WORKERS)):
            break
        assert time.monotonic() < deadline, "a worker never answered"
        time.sleep(0.05)


def test_mid_stream_error_and_restart(instance, database_url, tmp_path):
    """A bad item between two good ones; the good ones survive a full restart."""
    answers = _register(
        instance, orders("keep-a"), orders("broken", pattern="(?<=x)y", sample="xy"),
        orders("keep-b"),
    )  # fmt: skip
    assert [a.WhichOneof("result") for a in answers] == ["accepted", "error", "accepted"]

    assert instance.terminate() == 0
    env = {"GUARDRAIL_DATABASE_URL": database_url, "GUARDRAIL_METRICS_ENABLED": "false"}
    with running_service(tmp_path / "again", workers=WORKERS, env=env) as again:
        for name in ("keep-a", "keep-b"):
            assert _check(again, "ZX-7777", name).decision == pb.DECISION_BLOCK
        with pytest.raises(grpc.RpcError) as raised:
            _check(again, "xy", "broken")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.postgres
def test_two_instances_sharing_postgres_converge_within_a_second(tmp_path):
    """Register, update and delete on A; B enforces each within one second."""
    for url in fresh_pg_url():
        env = {"GUARDRAIL_DATABASE_URL": url, "GUARDRAIL_METRICS_ENABLED": "false"}
        with (
            running_service(tmp_path / "a", workers=1, env=env) as a,
            running_service(tmp_path / "b", workers=1, env=env) as b,
        ):
            _register(a, orders("shared"))
            registered = time.monotonic()
            wait_for(lambda: _blocks(b, "ZX-1234", "shared"), 5, "B enforcing")
            assert time.monotonic() - registered < 1.0

            _register(a, orders("shared", r"\bYY-\d{4}\b", "YY-1234"))
            updated = time.monotonic()
            wait_for(lambda: _blocks(b, "YY-1234", "shared"), 5, "B enforcing v2")
            assert time.monotonic() - updated < 1.0

            a.stub().DeleteGuardrail(pb.DeleteGuardrailRequest(name="shared"), timeout=30)
            deleted = time.monotonic()
            wait_for(lambda: _not_found(b, "shared"), 5, "B forgetting")
            assert time.monotonic() - deleted < 1.0


def _blocks(service: ServiceProcess, text: str, name: str) -> bool:
    try:
        return _check(service, text, name).decision == pb.DECISION_BLOCK
    except grpc.RpcError:
        return False


def _not_found(service: ServiceProcess, name: str) -> bool:
    try:
        _check(service, "x", name)
    except grpc.RpcError as error:
        return error.code() == grpc.StatusCode.NOT_FOUND
    return False


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args], capture_output=True, text=True, timeout=120
    )


def test_validate_command(tmp_path):
    """Exit 1 listing each violation for a bad file; 0 for a good one."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "guardrails:\n"
        "  - name: Bad Name\n"
        "    action: explode\n"
        "    rules:\n"
        "      - {id: a, category: c, pattern: '(?=x)abc', must_match: [abc]}\n"
        "      - {id: b, category: c, pattern: 'ZX', must_match: [nope], must_not_match: [ZX]}\n"
        "  - {name: dup, action: block, rules: [{id: r, category: c, pattern: q, must_match: [q]}]}\n"
        "  - {name: dup, action: block, rules: [{id: r, category: c, pattern: q, must_match: [q]}]}\n"
    )
    good = tmp_path / "good.json"
    good.write_text(
        '{"guardrails": [{"name": "ok", "action": "mask", "disabled": false, "rules":'
        ' [{"id": "r", "category": "c", "pattern": "QQ-\\\\d+", "must_match": ["QQ-1"]}]}]}'
    )

    failed = _cli("validate", str(bad))
    passed = _cli("validate", str(good))

    assert failed.returncode == 1
    lines = failed.stderr.splitlines()
    for expected in (
        "guardrails[0] (Bad Name): name:",
        "guardrails[0] (Bad Name): action:",
        "guardrails[0] (Bad Name): rules[0].pattern:",
        "guardrails[0] (Bad Name): rules[1].must_match[0]:",
        "guardrails[0] (Bad Name): rules[1].must_not_match[0]:",
        "guardrails[2] (dup): name: already defined by guardrails[1]",
    ):
        assert sum(expected in line for line in lines) == 1, (expected, failed.stderr)
    assert passed.returncode == 0, passed.stderr
    assert "1 guardrail(s) valid" in passed.stdout


def test_admin_commands(instance, database_url):
    """guardrail guardrails list|get|history|delete against the running service."""
    _register(instance, orders("admin-cli"))
    target = ["--target", instance.target]

    listed = _cli("guardrails", "list", *target)
    got = _cli("guardrails", "get", "admin-cli", "--json", *target)
    deleted = _cli("guardrails", "delete", "admin-cli", *target)
    history = _cli("guardrails", "history", "admin-cli", *target)
    missing = _cli("guardrails", "get", "admin-cli", *target)

    assert listed.returncode == 0 and "admin-cli" in listed.stdout and "pii" in listed.stdout
    assert got.returncode == 0 and '"source": "api"' in got.stdout
    assert deleted.returncode == 0 and "deleted" in deleted.stdout
    assert history.returncode == 0
    assert ["delete", "create"] == [
        word for line in history.stdout.splitlines() for word in line.split()
        if word in ("create", "delete")
    ]  # fmt: skip
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stderr
