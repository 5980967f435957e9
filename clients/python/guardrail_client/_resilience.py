"""Retries on UNAVAILABLE (backoff with full jitter) and the fail-open result.

Only ``UNAVAILABLE`` is retried: the service did not evaluate and says so. A
BLOCK is a result and is never retried; ``INVALID_ARGUMENT``, ``NOT_FOUND``
and the like are the caller's to fix, and ``DEADLINE_EXCEEDED`` already spent
the caller's time. A server's ``RetryInfo`` delay wins over the backoff.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from guardrail_client._errors import GuardrailRpcError
from guardrail_client._models import CheckResult, Decision

__all__ = ["FAIL_OPEN_CODES", "RetryPolicy", "failed_open_result"]

T = TypeVar("T")

#: Codes meaning "could not evaluate", which fail-open turns into an ALLOW.
FAIL_OPEN_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``attempts=1`` turns retries off."""

    attempts: int = 3
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    multiplier: float = 2.0

    def delay(self, retry: int, error: GuardrailRpcError) -> float:
        """Seconds before retry number ``retry`` (1-based)."""
        if error.retry_after_s is not None:
            return min(error.retry_after_s, self.max_backoff_s)
        ceiling = min(
            self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retry - 1)
        )
        return random.uniform(0, ceiling)

    def retryable(self, error: GuardrailRpcError, attempt: int) -> bool:
        return error.code is grpc.StatusCode.UNAVAILABLE and attempt < self.attempts

    def call(self, send: Callable[[], T]) -> T:
        attempt = 1
        while True:
            try:
                return send()
            except GuardrailRpcError as error:
                if not self.retryable(error, attempt):
                    raise
                time.sleep(self.delay(attempt, error))
                attempt += 1

    async def acall(self, send: Callable[[], Awaitable[T]]) -> T:
        attempt = 1
        while True:
            try:
                return await send()
            except GuardrailRpcError as error:
                if not self.retryable(error, attempt):
                    raise
                await asyncio.sleep(self.delay(attempt, error))
                attempt += 1


def failed_open_result(error: GuardrailRpcError) -> CheckResult:
    """An ALLOW that says it was not evaluated: ``failed_open`` and the error."""
    return CheckResult(
        request_id="",
        decision=Decision.ALLOW,
        findings=(),
        guardrail_results=(),
        masked_text=None,
        masked_payload=None,
        registry_generation=0,
        scan_duration_s=0.0,
        applied_guardrails=(),
        failed_open=True,
        error=error,
    )
