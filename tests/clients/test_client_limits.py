"""The client's own limits against a real server: calls in flight, timeouts.

One client, more concurrent calls than the server's streams per connection:
the server refuses HTTP/2 streams past GUARDRAIL_MAX_CONCURRENT_STREAMS on a
connection, and grpc's client does not reliably queue them (they fail as
UNAVAILABLE, which fail-open turns into ALLOW). The client bounds its own
calls in flight so that they queue instead.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from guardrail_client import AsyncGuardrailClient, Decision, GuardrailClient, StreamVerdict
from service.app import start_server
from tests.conftest import make_settings
from tests.tokens import aws_access_key_id

STREAMS = 4  # the server's streams per connection
IN_FLIGHT = STREAMS // 2  # headroom: the server frees a stream a little after the client sees its end
CALLS = 120


@pytest.fixture
async def narrow_server(tmp_path):
    running = await start_server(make_settings(tmp_path, max_concurrent_streams=STREAMS))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def test_blocking_client_queues_calls_past_the_server_limit(narrow_server):
    text = f"deploy with {aws_access_key_id()}"
    target = f"127.0.0.1:{narrow_server.port}"
    with GuardrailClient(target, fail_open=True, max_in_flight=IN_FLIGHT) as client:

        def one(i: int):
            if i % 4:
                return client.check(text, guardrails=["secrets"])
            return list(client.check_stream(["say ", text], guardrails=["secrets"]))[-1]

        with ThreadPoolExecutor(max_workers=40) as pool:
            results = await asyncio.to_thread(lambda: list(pool.map(one, range(CALLS))))

    checks = [r for r in results if not isinstance(r, StreamVerdict)]
    verdicts = [r for r in results if isinstance(r, StreamVerdict)]
    assert len(verdicts) == CALLS // 4
    assert [r.failed_open for r in checks].count(True) == 0
    assert {r.decision for r in checks} == {Decision.BLOCK}
    assert {v.decision for v in verdicts} == {Decision.BLOCK}


async def test_async_client_queues_calls_past_the_server_limit(narrow_server):
    text = f"deploy with {aws_access_key_id()}"
    target = f"127.0.0.1:{narrow_server.port}"
    async with AsyncGuardrailClient(target, fail_open=True, max_in_flight=IN_FLIGHT) as client:

        async def streamed():
            events = [e async for e in client.check_stream(["say ", text], guardrails=["secrets"])]
            return events[-1]

        results = await asyncio.gather(
            *(
                client.check(text, guardrails=["secrets"]) if i % 4 else streamed()
                for i in range(CALLS)
            )
        )

    checks = [r for r in results if not isinstance(r, StreamVerdict)]
    verdicts = [r for r in results if isinstance(r, StreamVerdict)]
    assert len(verdicts) == CALLS // 4
    assert [r.failed_open for r in checks].count(True) == 0
    assert {r.decision for r in checks} == {Decision.BLOCK}
    assert {v.decision for v in verdicts} == {Decision.BLOCK}


def test_max_in_flight_must_be_positive():
    with pytest.raises(ValueError, match="max_in_flight"):
        GuardrailClient("127.0.0.1:1", max_in_flight=0)


@pytest.mark.parametrize("timeout", [0, -1.0])
async def test_a_timeout_that_is_not_positive_is_refused(narrow_server, timeout):
    """timeout=0 used to mean 'the default' silently."""
    target = f"127.0.0.1:{narrow_server.port}"
    async with AsyncGuardrailClient(target) as client:
        with pytest.raises(ValueError, match="timeout"):
            await client.check("hello", timeout=timeout)
    with GuardrailClient(target) as client, pytest.raises(ValueError, match="timeout"):
        client.check("hello", timeout=timeout)
