"""The pytest fixture shipped with the client starts a real service."""

from __future__ import annotations

import grpc
from guardrail_client import AsyncGuardrailClient, GuardrailClient, RetryPolicy
from guardrail_client.testing import guardrail_server, guardrail_target  # noqa: F401

from tests.tokens import aws_access_key_id, email


def test_sync_client_against_fixture(guardrail_target):  # noqa: F811
    """A plain test gets a live service: a secret is blocked, an e-mail masked."""
    with GuardrailClient(guardrail_target) as client:
        assert client.check(f"key {aws_access_key_id()}").blocked
        assert client.check(f"mail {email()}").masked_text == "mail [EMAIL]"


async def test_async_client_against_fixture(guardrail_target):  # noqa: F811
    """An asyncio test uses the same fixture with the asyncio client."""
    async with AsyncGuardrailClient(guardrail_target) as client:
        result = await client.check("hello")
    assert result.allowed and not result.failed_open


def test_fail_open_against_a_dead_port_is_marked_and_retried():
    """With nothing listening, fail-open returns ALLOW marked failed_open after the retries."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    policy = RetryPolicy(attempts=3, initial_backoff_s=0.01, max_backoff_s=0.02)
    with GuardrailClient(dead, timeout=1.0, retry=policy, fail_open=True) as client:
        result = client.check("anything")

    assert result.allowed and result.failed_open
    assert result.error is not None and result.error.code is grpc.StatusCode.UNAVAILABLE
