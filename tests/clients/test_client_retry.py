"""RetryPolicy: only UNAVAILABLE is retried, with bounded jittered backoff."""

from __future__ import annotations

import grpc
import pytest
from guardrail_client import (
    GuardrailRpcError,
    InvalidArgumentError,
    RetryPolicy,
    UnavailableError,
)

FAST = RetryPolicy(attempts=4, initial_backoff_s=0.001, max_backoff_s=0.002)


def flaky(errors):
    calls = []

    def send():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"

    return send, calls


def test_unavailable_is_retried_until_success():
    """Two UNAVAILABLE answers then success: three calls, the result returned."""
    send, calls = flaky([UnavailableError(grpc.StatusCode.UNAVAILABLE, "busy")] * 2)
    assert FAST.call(send) == "ok" and len(calls) == 3


@pytest.mark.parametrize(
    "error",
    [
        InvalidArgumentError(grpc.StatusCode.INVALID_ARGUMENT, "bad"),
        GuardrailRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "late"),
    ],
)
def test_other_codes_are_never_retried(error):
    """INVALID_ARGUMENT and DEADLINE_EXCEEDED raise after exactly one call."""
    send, calls = flaky([error])
    with pytest.raises(GuardrailRpcError):
        FAST.call(send)
    assert len(calls) == 1


def test_attempts_are_bounded():
    """UNAVAILABLE forever raises after ``attempts`` calls."""
    send, calls = flaky([UnavailableError(grpc.StatusCode.UNAVAILABLE, "down")] * 10)
    with pytest.raises(UnavailableError):
        FAST.call(send)
    assert len(calls) == 4


def test_backoff_is_jittered_under_the_cap_and_retry_info_wins():
    """Delays stay within the exponential ceiling; a RetryInfo delay is used as given (capped)."""
    policy = RetryPolicy(initial_backoff_s=0.1, max_backoff_s=0.3)
    error = UnavailableError(grpc.StatusCode.UNAVAILABLE, "busy")
    delays = [policy.delay(3, error) for _ in range(200)]
    assert all(0 <= d <= 0.3 for d in delays) and len(set(delays)) > 1
    told = UnavailableError(grpc.StatusCode.UNAVAILABLE, "busy", retry_after_s=0.25)
    assert policy.delay(1, told) == 0.25


async def test_async_retry_matches_sync():
    """acall retries UNAVAILABLE like call does."""
    attempts = []

    async def send():
        attempts.append(1)
        if len(attempts) < 3:
            raise UnavailableError(grpc.StatusCode.UNAVAILABLE, "busy")
        return "ok"

    assert await FAST.acall(send) == "ok" and len(attempts) == 3
