"""The service's exception tree.

    GuardrailError              expected: becomes a gRPC status with details
    ├── InvalidArgumentError    INVALID_ARGUMENT + BadRequest field violations
    │   └── GuardrailDefinitionError  a guardrail (pack file or Register item) is invalid
    ├── NotFoundError           NOT_FOUND + ResourceInfo (unknown guardrail)
    ├── FailedPreconditionError FAILED_PRECONDITION (e.g. deleting a built-in)
    ├── ResourceExhaustedError  RESOURCE_EXHAUSTED (size caps)
    │   └── RateLimitedError    + QuotaFailure and RetryInfo (per-key rate limit)
    ├── UnauthenticatedError    UNAUTHENTICATED (no or unknown API key)
    ├── PermissionDeniedError   PERMISSION_DENIED (the key lacks the scope)
    ├── ScanDeadlineError       DEADLINE_EXCEEDED (a fail-closed scan ran out of time)
    └── UnavailableError        UNAVAILABLE + RetryInfo

    SettingsError               a bad setting; stops start-up (not an RPC error)

Anything else raised inside an RPC is a bug: the error interceptor turns it
into INTERNAL with a fixed message and logs it once, with its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc

__all__ = [
    "FailedPreconditionError",
    "FieldViolation",
    "GuardrailDefinitionError",
    "GuardrailError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "ResourceExhaustedError",
    "ScanDeadlineError",
    "SettingsError",
    "UnauthenticatedError",
    "UnavailableError",
]

ERROR_DOMAIN = "guardrail.v1"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One problem with one request field, e.g. ``rules[1].pattern``."""

    field: str
    description: str


class GuardrailError(Exception):
    """An expected failure with a status code and a message safe to send."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "GUARDRAIL_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgumentError(GuardrailError):
    """Raised when a request is malformed; lists every field that is wrong."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: Sequence[FieldViolation] = (),
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = tuple(violations)


class GuardrailDefinitionError(InvalidArgumentError):
    """Raised when a guardrail definition fails validation or its samples."""

    reason = "INVALID_GUARDRAIL"

    def __init__(self, name: str, violations: Sequence[FieldViolation]) -> None:
        details = "; ".join(f"{v.field}: {v.description}" for v in violations)
        super().__init__(f"guardrail {name!r} is invalid: {details}", violations)
        self.name = name


class NotFoundError(GuardrailError):
    """Raised when a request names a guardrail that is not registered."""

    code = grpc.StatusCode.NOT_FOUND
    reason = "GUARDRAIL_NOT_FOUND"

    def __init__(self, message: str, resource_names: Sequence[str]) -> None:
        super().__init__(message)
        self.resource_names = tuple(resource_names)


class FailedPreconditionError(GuardrailError):
    """Raised when an operation is valid but not allowed in the current state."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class ResourceExhaustedError(GuardrailError):
    """Raised when a request exceeds a configured size limit."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "LIMIT_EXCEEDED"


class RateLimitedError(ResourceExhaustedError):
    """Raised when an API key's calls exceed its rate; says when to retry."""

    reason = "RATE_LIMITED"

    def __init__(self, message: str, *, subject: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.subject = subject  # QuotaFailure subject: "api_key:<hash prefix>"
        self.retry_after_s = retry_after_s


class UnauthenticatedError(GuardrailError):
    """Raised when API keys are configured and a call has none, or an unknown one."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDeniedError(GuardrailError):
    """Raised when a known API key lacks the scope a method needs."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class ScanDeadlineError(GuardrailError):
    """Raised when a fail-closed scan cannot finish before the call deadline."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "SCAN_DEADLINE_EXCEEDED"


class UnavailableError(GuardrailError):
    """Raised when the service cannot evaluate now; the caller may retry."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SettingsError(Exception):
    """Raised at start-up when a setting is invalid; names variable and value."""
