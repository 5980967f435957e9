"""A real server on a real socket, with each backend: one row per call, no secrets."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.app import start_server
from tests.conftest import make_settings
from tests.tokens import aws_access_key_id, email

BENIGN = "Could you summarise the plot of Pride and Prejudice in three sentences?"


def _request_id(metadata) -> str:
    return dict(metadata or ())["x-request-id"]


async def _unary(method, request, **kwargs) -> tuple[str, str]:
    """(request id, status code name) of one unary call, whatever it returned."""
    call = method(request, **kwargs)
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return _request_id(exc.trailing_metadata()), exc.code().name
    return _request_id(await call.trailing_metadata()), "OK"


async def _stream(stub, *texts: str) -> tuple[str, str]:
    call = stub.CheckStream()
    await call.write(pb.CheckStreamRequest(open=pb.StreamOpen()))
    for text in texts:
        await call.write(pb.CheckStreamRequest(chunk=pb.StreamChunk(text=text)))
    await call.done_writing()
    async for _ in call:
        pass
    return _request_id(await call.trailing_metadata()), (await call.code()).name


async def _cancelled_stream(stub) -> None:
    call = stub.CheckStream()
    await call.write(pb.CheckStreamRequest(open=pb.StreamOpen()))
    await call.write(pb.CheckStreamRequest(chunk=pb.StreamChunk(text="partial answer ")))
    await asyncio.sleep(0.1)  # the server has the stream open
    call.cancel()


async def _deadline_stream(stub) -> None:
    call = stub.CheckStream(timeout=0.3)
    await call.write(pb.CheckStreamRequest(open=pb.StreamOpen()))
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in call:
            pass


async def _all_calls(stub, secret: str, mail: str) -> tuple[list[tuple[str, str]], int]:
    """Every kind of call; the (id, code) pairs we can see, and how many we cannot."""
    text = pb.Payload(text=f"key {secret} and mail {mail}")
    args = json.dumps({"env": {"AWS_KEY": secret}})
    tool_call = pb.Message(role="assistant", tool_calls=[pb.ToolCall(id="c", name="deploy", arguments_json=args)])
    seen = [
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text=BENIGN))),
        await _unary(stub.Check, pb.CheckRequest(payload=text)),
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text=f"write to {mail}"))),
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(messages=[tool_call]), direction=pb.DIRECTION_OUTPUT)),
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload())),
        await _unary(stub.Check, pb.CheckRequest(payload=text, guardrails=["no-such-guardrail"])),
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text=secret + "x" * 300))),
        await _unary(stub.DeleteGuardrail, pb.DeleteGuardrailRequest(name="secrets")),
        await _unary(stub.GetGuardrail, pb.GetGuardrailRequest(name="secrets")),
        await _unary(stub.ListGuardrails, pb.ListGuardrailsRequest()),
        # the same client request id twice, and none at all: still one row per call
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text=BENIGN), client_request_id="dup-1"),
                     metadata=(("x-request-id", "dup-1"),)),
        await _unary(stub.Check, pb.CheckRequest(payload=pb.Payload(text=BENIGN), client_request_id="dup-1"),
                     metadata=(("x-request-id", "dup-1"),)),
        await _stream(stub, "The answer is ", f"{secret} right there."),
        await _stream(stub, "plain streamed ", "text"),
    ]  # fmt: skip
    await _cancelled_stream(stub)
    await _deadline_stream(stub)
    return seen, 2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'spend.db'}"
    return request.getfixturevalue("pg_url")


@pytest.mark.parametrize("store_content", [False, True])
async def test_rows_equal_calls_and_hold_no_secret(backend_url, tmp_path, read_rows, store_content):
    """Every call (allow, block, mask, each error, cancelled and expired streams) is one row; no raw secret anywhere."""
    secret, mail = aws_access_key_id(seed=11), email(seed=11)
    settings = make_settings(
        tmp_path, database_url=backend_url, max_text_chars=200,
        spend_log_journal_path=tmp_path / "journal", spend_log_store_content=store_content,
    )  # fmt: skip
    running = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            seen, unseen = await _all_calls(pb_grpc.GuardrailServiceStub(channel), secret, mail)
    finally:
        await running.stop(grace=2.0)  # drains RPCs, then flushes the writer

    rows = await read_rows(backend_url)
    by_id = {r["request_id"]: r for r in rows}
    assert len(rows) == len(seen) + unseen
    assert len(by_id) == len(rows)
    assert {rid: by_id[rid]["grpc_code"] for rid, _ in seen} == dict(seen)
    codes = sorted(code for _, code in seen)
    assert {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION"} <= set(codes)
    decisions = {r["decision"] for r in rows}
    assert {"ALLOW", "BLOCK", "MASK"} <= decisions
    ends = {r["grpc_code"] for r in rows if r["call_type"] == "check_stream"}
    assert {"CANCELLED", "DEADLINE_EXCEEDED", "OK"} <= ends
    assert sum(r["client_request_id"] == "dup-1" for r in rows) == 2
    everything = json.dumps(rows, default=str)
    assert secret not in everything
    assert mail not in everything
    stored = [r["messages"] for r in rows if r["messages"] not in ("{}", {})]
    assert bool(stored) == store_content
    if store_content:
        assert any("[EMAIL]" in str(m) for m in stored)
