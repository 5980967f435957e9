"""Decide whether one call may run: key → principal → scope → rate.

Transport-free: callers hand in the ``authorization`` value and the call
record; gRPC and HTTP share it. Only a hash prefix of a presented key is
ever put on the record, also for keys that are not known.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from service.auth.keys import KeyStore, bearer_token, hash_key, key_id, load_keys
from service.auth.rate_limit import RateLimiter
from service.auth.shared_buckets import FILE_NAME as SHARED_BUCKETS_FILE
from service.auth.shared_buckets import SharedBuckets
from service.errors import PermissionDeniedError, UnauthenticatedError
from service.settings import Settings
from service.types import CallRecord, Principal

__all__ = ["Authenticator", "build_authenticator"]


class Authenticator:
    """The configured keys and their rate limiter; disabled without keys."""

    def __init__(
        self, keys: KeyStore | None, limiter: RateLimiter | None = None
    ) -> None:
        self.keys = keys
        self.limiter = limiter

    @property
    def enabled(self) -> bool:
        return self.keys is not None

    def authorize(
        self,
        scope: str,
        authorization: str,
        record: CallRecord | None,
        *,
        fallback: Callable[[], Principal | None] | None = None,
    ) -> Principal | None:
        """The caller's principal, or raise UNAUTHENTICATED / PERMISSION_DENIED /
        RESOURCE_EXHAUSTED. ``fallback`` names a caller without a key (an mTLS
        peer). None when authentication is off."""
        if self.keys is None:
            return None
        token = bearer_token(authorization)
        entry = self.keys.find(token)
        principal = entry.principal if entry is not None else None
        if principal is None and not token and fallback is not None:
            principal = fallback()
        if record is not None:
            record.api_key_hash = key_id(hash_key(token)) if token else ""
        if principal is None:
            raise UnauthenticatedError(
                "the API key is not valid"
                if token
                else "a valid API key is required: send 'authorization: Bearer <key>'"
            )
        if record is not None:
            record.principal = principal
            record.api_key_hash = principal.key_id
        if scope not in principal.scopes:
            raise PermissionDeniedError(
                f"API key {principal.key_id} lacks the {scope!r} scope this call needs"
            )
        # A certificate peer (Envoy) carries many users' calls: keys only.
        if self.limiter is not None and entry is not None:
            self.limiter.take(principal.key_id, entry.rate_per_s)
        return principal


def build_authenticator(
    settings: Settings, runtime_dir: Path | None = None
) -> Authenticator:
    """Keys from GUARDRAIL_API_KEYS_FILE (SettingsError when unreadable).

    ``runtime_dir``: the instance's directory that all its workers share; the
    rate buckets live there so the rate holds across workers.
    """
    if settings.api_keys_file is None:
        return Authenticator(None)
    shared = None
    if runtime_dir is not None:
        shared = SharedBuckets(runtime_dir / SHARED_BUCKETS_FILE)
    limiter = RateLimiter(
        settings.rate_limit_per_s, settings.rate_limit_burst, shared=shared
    )
    return Authenticator(load_keys(settings.api_keys_file), limiter)
