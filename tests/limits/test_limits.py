"""Every limit, exceeded on a real server: each answers with its structured error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.app import start_server
from tests.auth.conftest import write_keys
from tests.auth.status import details, reason, rich_status
from tests.conftest import make_settings

LIMITS = {
    "max_messages": 3,
    "max_content_parts": 4,
    "max_tools": 2,
    "max_json_depth": 5,
    "max_rules_per_guardrail": 2,
    "max_pattern_chars": 40,
    "max_pattern_mem_bytes": 64 * 1024,
    "max_guardrails": 1,
    "max_message_bytes": 4096,
    "max_text_chars": 100,
}


@pytest.fixture
async def server(tmp_path: Path):
    running = await start_server(make_settings(tmp_path, workers=1, **LIMITS))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def stub(server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.GuardrailServiceStub(channel)


def _user(*texts: str) -> pb.Message:
    return pb.Message(role="user", content=[pb.ContentPart(text=t) for t in texts])


def _violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    (bad,) = details(error, error_details_pb2.BadRequest)
    return {v.field: v.description for v in bad.field_violations}


async def _check_fails(stub, payload: pb.Payload) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(pb.CheckRequest(payload=payload), timeout=5)
    return caught.value


async def test_counts_over_their_limits_are_each_named(stub):
    """Too many messages, parts and tools: one INVALID_ARGUMENT naming all three."""
    payload = pb.Payload(
        messages=[_user("a", "b"), _user("c"), _user("d"), _user("e")],
        tools=[pb.ToolDefinition(name=f"t{i}") for i in range(3)],
    )
    error = await _check_fails(stub, payload)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason(error) == "LIMIT_EXCEEDED"
    violations = _violations(error)
    assert set(violations) == {
        "payload.messages",
        "payload.messages.content",
        "payload.tools",
    }
    assert "limit is 3" in violations["payload.messages"]


async def test_counts_at_their_limits_pass(stub):
    payload = pb.Payload(messages=[_user("a", "b"), _user("c"), _user("d")])
    answer = await stub.Check(pb.CheckRequest(payload=payload), timeout=5)
    assert answer.decision == pb.DECISION_ALLOW


async def test_json_deeper_than_the_setting_is_refused(stub):
    deep = json.dumps({"a": [[[[["x"]]]]]})  # 6 levels below the top
    call = pb.ToolCall(id="1", name="f", arguments_json=deep)
    payload = pb.Payload(messages=[pb.Message(role="assistant", tool_calls=[call])])
    error = await _check_fails(stub, payload)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason(error) == "JSON_TOO_DEEP"
    assert "5 levels" in rich_status(error).message
    shallow = json.dumps({"a": [["x"]]})
    call = pb.ToolCall(id="1", name="f", arguments_json=shallow)
    ok = pb.Payload(messages=[pb.Message(role="assistant", tool_calls=[call])])
    assert (await stub.Check(pb.CheckRequest(payload=ok), timeout=5)).decision


async def test_text_and_message_size(stub):
    error = await _check_fails(stub, pb.Payload(text="x" * 101))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(error) == "TEXT_TOO_LONG"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(
            pb.CheckRequest(payload=pb.Payload(text="y" * 5000)), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # grpc's own cap


def _rule(i: int, pattern: str, sample: str) -> pb.Rule:
    return pb.Rule(id=f"r{i}", category="test", pattern=pattern, must_match=[sample])


async def _register(stub, guardrail: pb.Guardrail) -> pb.RegisterResponse:
    requests = iter([pb.RegisterRequest(guardrail=guardrail)])
    (answer,) = [a async for a in stub.Register(requests, timeout=10)]
    return answer


def _item_violations(answer: pb.RegisterResponse) -> dict[str, str]:
    assert answer.WhichOneof("result") == "error", answer
    found = {}
    for detail in answer.error.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found.update({v.field: v.description for v in bad.field_violations})
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            assert info.reason == "LIMIT_EXCEEDED"
    return found


def _guardrail(name: str, *rules: pb.Rule) -> pb.Guardrail:
    return pb.Guardrail(name=name, rules=list(rules), action=pb.ACTION_BLOCK)


async def test_register_limits_report_one_violation_each(stub):
    """Too many rules and a too-long pattern: both named in one item error."""
    answer = await _register(
        stub,
        _guardrail(
            "big",
            _rule(0, "a" * 41, "a" * 41),
            _rule(1, "b+", "bb"),
            _rule(2, "c+", "cc"),
        ),
    )
    violations = _item_violations(answer)
    assert set(violations) == {"rules", "rules[0].pattern"}
    assert "limit is 40" in violations["rules[0].pattern"]


async def test_pattern_over_the_re2_memory_budget(stub):
    answer = await _register(
        stub, _guardrail("heavy", _rule(0, r"\w{1,1000}x", "abcx"))
    )
    violations = _item_violations(answer)
    assert "RE2 memory" in violations["rules[0].pattern"]


async def test_guardrails_per_instance(stub):
    first = await _register(stub, _guardrail("one", _rule(0, "zq+z", "zqqz")))
    assert first.WhichOneof("result") == "accepted", first
    replaced = await _register(stub, _guardrail("one", _rule(0, "zqq+z", "zqqz")))
    assert replaced.WhichOneof("result") == "accepted", replaced  # same name replaces
    second = await _register(stub, _guardrail("two", _rule(0, "zw+z", "zwwz")))
    assert "name" in _item_violations(second)


async def test_concurrent_streams_per_connection(tmp_path: Path):
    """Past GUARDRAIL_MAX_CONCURRENT_STREAMS a client that has seen the limit
    holds the call back: with one stream open, a second call on the same
    connection does not start before the first ends. (A burst with streaming
    calls can still be refused: tests/clients/test_client_limits.py.)"""
    running = await start_server(
        make_settings(tmp_path, workers=1, max_concurrent_streams=1)
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.GuardrailServiceStub(channel)
            release = asyncio.Event()

            async def requests():
                yield pb.CheckStreamRequest(open=pb.StreamOpen())
                await release.wait()

            stream = stub.CheckStream(requests(), timeout=10)
            await stream.wait_for_connection()
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Check(
                    pb.CheckRequest(payload=pb.Payload(text="hello")), timeout=1.0
                )
            assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            release.set()
            async for _ in stream:
                pass
            answer = await stub.Check(
                pb.CheckRequest(payload=pb.Payload(text="hi")), timeout=5
            )
            assert answer.decision == pb.DECISION_ALLOW
    finally:
        await running.stop(grace=1.0)


async def test_rate_limit_answers_quota_failure_and_retry_info(tmp_path: Path):
    """A key over its rate: RESOURCE_EXHAUSTED + QuotaFailure + RetryInfo, and a row."""
    keys = write_keys(tmp_path, rate_per_s=2)
    running = await start_server(
        make_settings(tmp_path, workers=1, api_keys_file=keys.path, rate_limit_burst=0)
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.GuardrailServiceStub(channel)
            metadata = (("authorization", f"Bearer {keys.both}"),)
            request = pb.CheckRequest(payload=pb.Payload(text="hello"))
            errors = []
            for _ in range(5):  # bucket holds 2: at least 3 of 5 back-to-back fail
                try:
                    await stub.Check(request, metadata=metadata, timeout=5)
                except grpc.aio.AioRpcError as exc:
                    errors.append(exc)
            assert len(errors) >= 3
            error = errors[0]
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason(error) == "RATE_LIMITED"
            (quota,) = details(error, error_details_pb2.QuotaFailure)
            assert quota.violations[0].subject == f"api_key:{keys.prefix(keys.both)}"
            (retry,) = details(error, error_details_pb2.RetryInfo)
            assert retry.retry_delay.ToNanoseconds() > 0
            # Another key has its own bucket.
            other = (("authorization", f"Bearer {keys.check}"),)
            assert (await stub.Check(request, metadata=other, timeout=5)).decision
    finally:
        await running.stop(grace=1.0)
