"""Large inputs: scanned off the event loop, within the call's deadline."""

from __future__ import annotations

import asyncio
import random
import string

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from guardrail.v1 import guardrail_pb2 as pb

from tests.conftest import spend_rows


def _big_text(chars: int) -> str:
    rng = random.Random(3)
    alphabet = string.ascii_letters + string.digits + "+/= \n"
    return "".join(rng.choices(alphabet, k=chars))


async def test_health_answers_while_a_large_input_is_scanned(server, stub):
    """Health checks complete while a multi-megabyte Check is still being scanned."""
    text = _big_text(3_500_000)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        big = asyncio.ensure_future(
            stub.Check(pb.CheckRequest(payload=pb.Payload(text=text)), timeout=60)
        )
        answered_before_big = 0
        while not big.done():
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            if not big.done():
                answered_before_big += 1
            await asyncio.sleep(0.005)
        response = await big

    assert response.decision in (pb.DECISION_ALLOW, pb.DECISION_MASK, pb.DECISION_BLOCK)
    assert answered_before_big >= 1


async def test_scan_past_the_deadline_is_deadline_exceeded_and_recorded(server, stub):
    """A scan that cannot finish in time ends DEADLINE_EXCEEDED, and the row says so."""
    # Long enough to take far more than the deadline to scan, short enough to
    # arrive well within it, so the server itself sees the deadline pass.
    text = _big_text(4_000_000)

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Check(pb.CheckRequest(payload=pb.Payload(text=text)), timeout=0.08)

    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    rows = []
    for _ in range(200):  # the server notices the deadline on its own clock
        await server.writer.flush()
        if rows := spend_rows(server):
            break
        await asyncio.sleep(0.05)
    assert [r["grpc_code"] for r in rows] == ["DEADLINE_EXCEEDED"]
