"""Register / List / Get / Delete / History on a real in-process server and database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.app import RunningServer, start_server
from tests.conftest import make_settings
from tests.registry.conftest import orders, read_rows


async def _started(tmp_path: Path, url: str, **overrides: object) -> RunningServer:
    return await start_server(make_settings(tmp_path, database_url=url, **overrides))


@pytest.fixture
async def server(tmp_path: Path, database_url: str) -> AsyncIterator[RunningServer]:
    running = await _started(tmp_path, database_url)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def stub(server: RunningServer) -> AsyncIterator[pb_grpc.GuardrailServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.GuardrailServiceStub(channel)


async def _register(stub, *guardrails: pb.Guardrail, validate_only: bool = False):
    requests = [pb.RegisterRequest(guardrail=g, validate_only=validate_only) for g in guardrails]
    return [answer async for answer in stub.Register(iter(requests))]


def _violations(answer: pb.RegisterResponse) -> list[tuple[str, str]]:
    assert answer.HasField("error"), answer
    status: status_pb2.Status = answer.error
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.extend((v.field, v.description) for v in bad.field_violations)
    return found


async def _decision(stub, text: str, *names: str) -> int:
    request = pb.CheckRequest(payload=pb.Payload(text=text), guardrails=names)
    return (await stub.Check(request, timeout=5)).decision


async def test_invalid_item_mid_stream_gets_its_own_error(stub):
    """good, bad, good: two accepted, the bad one answered with its own error, in order."""
    bad = orders("bad-one", pattern="(unclosed")
    answers = await _register(stub, orders("first-ok"), bad, orders("third-ok"))

    assert [a.WhichOneof("result") for a in answers] == ["accepted", "error", "accepted"]
    assert answers[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [f for f, _ in _violations(answers[1])] == ["rules[0].pattern"]
    assert await _decision(stub, "ZX-1234", "first-ok") == pb.DECISION_BLOCK
    assert await _decision(stub, "ZX-1234", "third-ok") == pb.DECISION_BLOCK
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _decision(stub, "ZX-1234", "bad-one")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_register_row_lists_each_item_and_how_it_was_answered(
    server, stub, database_url
):
    """One row for the stream, naming every item: accepted (with version) or refused (why)."""
    await _register(stub, orders("listed-ok"), orders("listed-bad", pattern="(unclosed"))
    await _register(stub, orders("listed-dry"), validate_only=True)
    await server.writer.flush()

    rows = read_rows(database_url, "SELECT metadata FROM spend_logs WHERE call_type = 'register'")
    items = [json.loads(r["metadata"])["register_items"] for r in rows]
    assert [
        {"name": "listed-ok", "result": "accepted", "version": 1, "validate_only": False},
        {"name": "listed-bad", "result": "refused", "reason": "INVALID_GUARDRAIL"},
    ] in items
    assert [
        {"name": "listed-dry", "result": "accepted", "version": 1, "validate_only": True}
    ] in items


async def test_every_problem_of_an_item_is_listed_once(stub):
    """Bad name, bad action, lookahead, empty category, duplicate id, both sample kinds."""
    rules = [
        pb.Rule(id="a", category="", pattern="(?=x)abc", must_match=["abc"]),
        pb.Rule(
            id="a", category="c", pattern=r"\bZX-\d{4}\b",
            must_match=["nothing here"], must_not_match=["ZX-1234"],
        ),
        pb.Rule(id="b", category="c", keywords=["secret"], must_match=["a secret"],
                validator="nope", weight=-1),
    ]  # fmt: skip
    bad = pb.Guardrail(name="Bad Name", action=99, rules=rules, directions=[77])

    [answer] = await _register(stub, bad)

    violations = _violations(answer)
    fields = [f for f, _ in violations]
    assert len(fields) == len(set(fields)), violations  # one violation per problem
    assert set(fields) == {
        "name", "action", "directions[0]",
        "rules[0].category", "rules[0].pattern",
        "rules[1].id", "rules[1].must_match[0]", "rules[1].must_not_match[0]",
        "rules[2].validator", "rules[2].weight",
    }  # fmt: skip
    pattern_problem = dict(violations)["rules[0].pattern"]
    assert "(?=" in pattern_problem  # RE2's message names the construct


async def test_validate_only_stores_nothing(stub, server, database_url):
    [answer] = await _register(stub, orders("dry"), validate_only=True)

    assert answer.accepted.validate_only and answer.accepted.version == 1
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetGuardrail(pb.GetGuardrailRequest(name="dry"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert read_rows(database_url, "SELECT * FROM registry_history") == []


async def test_builtin_override_disable_and_restore(stub):
    """Register under a built-in's name overrides it (version bump); delete brings it back."""
    builtin = (await stub.GetGuardrail(pb.GetGuardrailRequest(name="pii"))).guardrail
    email = "write to jane.doe@example.com"
    assert builtin.builtin and builtin.source == "builtin"
    assert await _decision(stub, email, "pii") != pb.DECISION_ALLOW

    override = orders("pii")
    [answer] = await _register(stub, override)
    assert answer.accepted.version == builtin.version + 1
    got = (await stub.GetGuardrail(pb.GetGuardrailRequest(name="pii"))).guardrail
    assert (got.builtin, got.source, got.version) == (False, "api", builtin.version + 1)
    assert got.updated_at.seconds > 0
    assert await _decision(stub, email, "pii") == pb.DECISION_ALLOW
    assert await _decision(stub, "ZX-1234", "pii") == pb.DECISION_BLOCK

    disabled = pb.Guardrail()
    disabled.CopyFrom(builtin)
    disabled.disabled = True
    [answer] = await _register(stub, disabled)
    assert answer.accepted.version == builtin.version + 2
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _decision(stub, email, "pii")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = await stub.ListGuardrails(pb.ListGuardrailsRequest())
    assert {g.name: g.disabled for g in listed.guardrails}["pii"] is True

    await stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name="pii"))
    back = (await stub.GetGuardrail(pb.GetGuardrailRequest(name="pii"))).guardrail
    assert back == builtin
    assert await _decision(stub, email, "pii") != pb.DECISION_ALLOW
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name="pii"))
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_history_records_who_when_before_and_after(stub):
    await _register(stub, orders("hist"))
    await _register(stub, orders("hist", r"\bYY-\d{4}\b", "YY-1234"))
    await stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name="hist"))

    answer = await stub.GetGuardrailHistory(pb.GetGuardrailHistoryRequest(name="hist"))

    changes = list(answer.changes)
    assert [c.action for c in changes] == [
        pb.GUARDRAIL_CHANGE_ACTION_DELETE,
        pb.GUARDRAIL_CHANGE_ACTION_UPDATE,
        pb.GUARDRAIL_CHANGE_ACTION_CREATE,
    ]
    generations = [c.registry_generation for c in changes]
    assert generations == sorted(generations, reverse=True) and len(set(generations)) == 3
    delete, update, create = changes
    assert not create.HasField("before") and create.after.rules[0].pattern == r"\bZX-\d{4}\b"
    assert update.before.rules[0].pattern == r"\bZX-\d{4}\b"
    assert update.after.rules[0].pattern == r"\bYY-\d{4}\b" and update.version == 2
    assert delete.before.rules[0].pattern == r"\bYY-\d{4}\b" and not delete.HasField("after")
    assert all(c.actor.startswith("ipv4:127.0.0.1") for c in changes)
    assert all(c.changed_at.seconds > 0 and c.source == "api" for c in changes)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetGuardrailHistory(pb.GetGuardrailHistoryRequest(name="never-was"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_restart_keeps_registered_guardrails(tmp_path, database_url):
    first = await _started(tmp_path, database_url)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
            stub = pb_grpc.GuardrailServiceStub(channel)
            await _register(stub, orders("kept"))
            [v2] = await _register(stub, orders("kept", r"\bYY-\d{4}\b", "YY-1234"))
            await _register(stub, orders("gone"))
            await stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name="gone"))
    finally:
        await first.stop(grace=1.0)

    second = await _started(tmp_path, database_url)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            stub = pb_grpc.GuardrailServiceStub(channel)
            kept = (await stub.GetGuardrail(pb.GetGuardrailRequest(name="kept"))).guardrail
            assert kept.version == 2 and kept.rules[0].pattern == r"\bYY-\d{4}\b"
            assert await _decision(stub, "YY-1234", "kept") == pb.DECISION_BLOCK
            answer = await stub.Check(pb.CheckRequest(payload=pb.Payload(text="hi")))
            assert answer.registry_generation == v2.accepted.registry_generation + 2
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _decision(stub, "ZX-1234", "gone")
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await second.stop(grace=1.0)


async def test_config_file_is_loaded_as_source_config(tmp_path, database_url):
    config = tmp_path / "guardrails.yaml"
    config.write_text(
        "guardrails:\n"
        "  - name: from-file\n"
        "    action: block\n"
        "    rules:\n"
        "      - {id: r, category: c, pattern: '\\bQQ-\\d{4}\\b', must_match: ['QQ-1234']}\n"
        "  - name: secrets\n"
        "    disabled: true\n"
        "    action: block\n"
        "    rules:\n"
        "      - {id: r, category: c, pattern: 'zzz', must_match: ['zzz']}\n"
    )
    running = await _started(tmp_path, database_url, config_path=config)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.GuardrailServiceStub(channel)
            got = (await stub.GetGuardrail(pb.GetGuardrailRequest(name="from-file"))).guardrail
            assert (got.source, got.version) == ("config", 1)
            assert await _decision(stub, "QQ-1234", "from-file") == pb.DECISION_BLOCK
            secrets = (await stub.GetGuardrail(pb.GetGuardrailRequest(name="secrets"))).guardrail
            assert secrets.disabled and secrets.source == "config"
    finally:
        await running.stop(grace=1.0)

    # Unchanged file, second start: nothing new is stored (no version bump).
    again = await _started(tmp_path, database_url, config_path=config)
    await again.stop(grace=1.0)
    history = read_rows(database_url, "SELECT name, version FROM registry_history")
    assert sorted((r["name"], r["version"]) for r in history) == [
        ("from-file", 1), ("secrets", 2),
    ]  # fmt: skip


async def test_history_names_the_api_key_of_an_authenticated_caller(tmp_path):
    """With API keys configured the actor is the key id, never the key itself."""
    from tests.auth.conftest import Keys, write_keys

    keys = write_keys(tmp_path)
    running = await start_server(make_settings(tmp_path, api_keys_file=keys.path))
    metadata = (("authorization", f"Bearer {keys.admin}"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.GuardrailServiceStub(channel)
            request = pb.RegisterRequest(guardrail=orders("keyed"))
            answers = [a async for a in stub.Register(iter([request]), metadata=metadata)]
            assert answers[0].HasField("accepted"), answers
            history = await stub.GetGuardrailHistory(
                pb.GetGuardrailHistoryRequest(name="keyed"), metadata=metadata
            )
    finally:
        await running.stop(grace=1.0)

    [change] = history.changes
    assert change.actor == f"key:{Keys.prefix(keys.admin)}"
    assert keys.admin not in str(history)
