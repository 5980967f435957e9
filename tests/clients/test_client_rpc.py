"""GuardrailClient and AsyncGuardrailClient over real gRPC to a fake service."""

from __future__ import annotations

import grpc
import pytest

from guardrail_client import (
    AsyncGuardrailClient,
    Decision,
    FailedPreconditionError,
    GuardrailClient,
    GuardrailRpcError,
    InvalidArgumentError,
    NotFoundError,
    StreamRelease,
    StreamVerdict,
    UnavailableError,
)

SECRET_TEXT = "key AKIAABCDEFGHIJKLMNOP here"
GOOD = {"name": "acme", "rules": [{"id": "r", "pattern": "ACME"}]}
BAD = {"name": "empty"}


def test_sync_check_returns_the_verdict(fake_target):
    """A sync check converts the answer: decision, findings, offsets."""
    with GuardrailClient(fake_target) as client:
        result = client.check(SECRET_TEXT, guardrails=["secrets"])
    assert result.blocked and result.decision is Decision.BLOCK
    assert (result.findings[0].start, result.findings[0].end) == (4, 24)
    assert result.applied_guardrails == ("secrets",)


def test_sync_check_unknown_guardrail_raises_not_found(fake_target):
    """NOT_FOUND arrives as NotFoundError with the names from ResourceInfo."""
    with GuardrailClient(fake_target) as client, pytest.raises(NotFoundError) as caught:
        client.check("x", guardrails=["nope"])
    assert caught.value.resource_names == ["nope"]
    assert caught.value.reason == "GUARDRAIL_NOT_FOUND"


def test_sync_unavailable_carries_retry_info(fake_target):
    """UNAVAILABLE arrives with RetryInfo's delay."""
    with GuardrailClient(fake_target) as client, pytest.raises(UnavailableError) as caught:
        client.check("overload")
    assert caught.value.retry_after_s == pytest.approx(0.5)


def test_sync_status_without_details(fake_target):
    """A status without rich details still maps to its subclass and message."""
    with GuardrailClient(fake_target) as client, pytest.raises(FailedPreconditionError) as caught:
        client.delete_guardrail("secrets")
    assert caught.value.message == "built-in guardrails stay"
    assert caught.value.details == []


def test_sync_deadline_is_applied():
    """A call to an address nobody answers fails within the client's deadline."""
    with GuardrailClient("127.0.0.1:1", timeout=0.2) as client, pytest.raises(GuardrailRpcError) as caught:
        client.check("x")
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_sync_stream_yields_releases_then_verdict(fake_target):
    """check_stream yields one release per chunk and ends with the verdict."""
    with GuardrailClient(fake_target) as client:
        events = list(client.check_stream(["ab", "cd"], guardrails=["pii"]))
    assert [e.text for e in events if isinstance(e, StreamRelease)] == ["AB", "CD"]
    verdict = events[-1]
    assert isinstance(verdict, StreamVerdict)
    assert verdict.chunk_count == 2 and verdict.applied_guardrails == ("pii",)


def test_sync_register_reports_each_item(fake_target):
    """Register answers per item: a bad one carries its own error, the rest pass."""
    with GuardrailClient(fake_target) as client:
        results = client.register([GOOD, BAD, GOOD], validate_only=True)
    assert [r.accepted for r in results] == [True, False, True]
    assert results[0].validate_only
    assert isinstance(results[1].error, InvalidArgumentError)
    assert results[1].error.field_violations == [("rules", "at least one rule")]
    assert results[1].name == "empty"


def test_sync_registry_reads(fake_target):
    """list, get and delete return the guardrails and generation."""
    with GuardrailClient(fake_target) as client:
        assert [g.name for g in client.list_guardrails()] == ["pii", "secrets"]
        assert client.get_guardrail("pii").name == "pii"
        assert client.delete_guardrail("pii") == 8
        with pytest.raises(NotFoundError):
            client.get_guardrail("nope")


def test_passed_channel_is_not_closed(fake_target):
    """A channel handed in stays open after the client closes."""
    channel = grpc.insecure_channel(fake_target)
    with GuardrailClient(channel=channel) as client:
        client.check("hello")
    with GuardrailClient(channel=channel) as client:
        assert client.check("hello").allowed
    channel.close()


async def test_async_check_and_errors(fake_target):
    """The asyncio client returns verdicts and raises the same error classes."""
    async with AsyncGuardrailClient(fake_target) as client:
        result = await client.check(SECRET_TEXT)
        assert result.blocked
        with pytest.raises(NotFoundError) as caught:
            await client.check("x", guardrails=["nope"])
    assert caught.value.resource_names == ["nope"]


async def test_async_stream_accepts_async_chunks(fake_target):
    """check_stream takes an async iterable and yields releases then the verdict."""

    async def chunks():
        yield "x"
        yield "y"

    async with AsyncGuardrailClient(fake_target) as client:
        events = [event async for event in client.check_stream(chunks())]
    assert [e.text for e in events[:-1]] == ["X", "Y"]
    assert isinstance(events[-1], StreamVerdict)


async def test_async_register_and_reads(fake_target):
    """Async register, list, get and delete match the sync client."""
    async with AsyncGuardrailClient(fake_target) as client:
        results = await client.register([BAD, GOOD])
        assert [r.accepted for r in results] == [False, True]
        assert len(await client.list_guardrails()) == 2
        assert (await client.get_guardrail("secrets")).name == "secrets"
        assert await client.delete_guardrail("pii") == 8
        with pytest.raises(FailedPreconditionError):
            await client.delete_guardrail("secrets")
