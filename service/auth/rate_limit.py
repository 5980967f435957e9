"""Per-API-key rate limit: one token bucket per key, per worker process.

Each RPC (a whole CheckStream counts once) takes one token from its key's
bucket; an empty bucket is RESOURCE_EXHAUSTED with QuotaFailure (subject
``api_key:<hash prefix>``) and RetryInfo (when the next token is due).

Several workers: the configured rate (GUARDRAIL_RATE_LIMIT_PER_S, or a key's
own ``rate_per_s``) is divided by the number of worker processes, and each
worker keeps its own buckets. Chosen over a shared bucket in Redis because
the service must not depend on Redis, and because a shared bucket costs a
network round trip on every call.

Trade-off, plainly: the kernel spreads *connections* over the workers
(SO_REUSEPORT), and a gRPC client keeps one connection, so a client with a
single connection gets only rate / workers. Many connections (or many
gateway replicas) reach the full rate, never more. Operators who want one
long-lived connection per key to get the full rate should run one worker per
pod and scale pods. The instance-wide limit is exact only across worker
processes; across pods each pod enforces its own share.

Anonymous calls (no keys configured) and certificate peers (Envoy over
mutual TLS, which carries many users' calls) are not rate limited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from service.errors import RateLimitedError

__all__ = ["RateLimiter"]

MAX_BUCKETS = 100_000  # bounded by the keys file in practice; a guard regardless


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by key id; ``take`` raises when one is empty."""

    def __init__(self, rate_per_s: float, burst: float, *, workers: int = 1) -> None:
        self._workers = max(1, workers)
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def _share(self, rate_per_s: float | None) -> tuple[float, float]:
        rate = (self.rate_per_s if rate_per_s is None else rate_per_s) / self._workers
        burst = (self.burst / self._workers) if self.burst else rate
        return rate, max(burst, 1.0)

    def take(self, key_id: str, rate_per_s: float | None = None) -> None:
        rate, capacity = self._share(rate_per_s)
        if rate <= 0:
            return  # 0 means no limit
        now = time.monotonic()
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
        wait = (1.0 - bucket.tokens) / rate
        raise RateLimitedError(
            f"API key {key_id} is over its rate of {rate:g} calls/s on this worker",
            subject=f"api_key:{key_id}",
            retry_after_s=wait,
        )
