"""Per-API-key rate limit: one token bucket per key.

Each RPC (a whole CheckStream counts once) takes one token from its key's
bucket; an empty bucket is RESOURCE_EXHAUSTED with QuotaFailure (subject
``api_key:<hash prefix>``) and RetryInfo (when the next token is due).

Workers of one instance share their buckets (``shared_buckets``: a mapped
file in the instance's runtime directory), so the configured rate
(GUARDRAIL_RATE_LIMIT_PER_S, or a key's own ``rate_per_s``) holds for the
instance whichever worker a connection lands on. A server started without a
supervisor keeps its buckets in memory. Chosen over a shared bucket in Redis
because the service must not depend on Redis, and because a shared bucket
costs a network round trip on every call; the price is that across pods
each pod enforces the whole rate on its own.

Anonymous calls (no keys configured) and certificate peers (Envoy over
mutual TLS, which carries many users' calls) are not rate limited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from service.auth.shared_buckets import SharedBuckets
from service.errors import RateLimitedError

__all__ = ["RateLimiter"]

MAX_BUCKETS = 100_000  # bounded by the keys file in practice; a guard regardless


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by key id; ``take`` raises when one is empty."""

    def __init__(
        self, rate_per_s: float, burst: float, *, shared: SharedBuckets | None = None
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._shared = shared
        self._buckets: dict[str, _Bucket] = {}

    def _limits(self, rate_per_s: float | None) -> tuple[float, float]:
        rate = self.rate_per_s if rate_per_s is None else rate_per_s
        return rate, max(self.burst or rate, 1.0)

    def take(self, key_id: str, rate_per_s: float | None = None) -> None:
        rate, capacity = self._limits(rate_per_s)
        if rate <= 0:
            return  # 0 means no limit
        now = time.monotonic()
        if self._shared is not None:
            wait = self._shared.take(key_id, rate, capacity, now)
            if wait:
                self._refuse(key_id, rate, wait)
            return
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._buckets.clear()
            bucket = self._buckets[key_id] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        self._refuse(key_id, rate, (1.0 - bucket.tokens) / rate)

    @staticmethod
    def _refuse(key_id: str, rate: float, wait: float) -> None:
        raise RateLimitedError(
            f"API key {key_id} is over its rate of {rate:g} calls/s",
            subject=f"api_key:{key_id}",
            retry_after_s=wait,
        )
