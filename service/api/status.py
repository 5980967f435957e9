"""One table from our exceptions to ``google.rpc.Status`` with details.

Every status carries exactly one ``ErrorInfo`` (reason in UPPER_SNAKE, domain
``guardrail.v1``) plus the detail its code calls for: ``BadRequest`` field
violations, ``ResourceInfo`` for unknown guardrails, ``RetryInfo`` for
``UNAVAILABLE``.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from service.errors import (
    ERROR_DOMAIN,
    GuardrailError,
    InvalidArgumentError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)

__all__ = ["INTERNAL_MESSAGE", "internal_status", "to_grpc_status", "to_status_proto"]

INTERNAL_MESSAGE = "internal error; the failure was logged with this call's request_id"


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def _error_info(reason: str, metadata: dict[str, str]) -> any_pb2.Any:
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=ERROR_DOMAIN, metadata=metadata
    )
    return _pack(info)


def _specific_details(error: GuardrailError) -> list[any_pb2.Any]:
    if isinstance(error, InvalidArgumentError) and error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        return [_pack(bad)]
    if isinstance(error, NotFoundError):
        return [
            _pack(
                error_details_pb2.ResourceInfo(
                    resource_type="guardrail.v1.Guardrail",
                    resource_name=name,
                    description="no guardrail with this name is registered",
                )
            )
            for name in error.resource_names
        ]
    if isinstance(error, RateLimitedError):
        quota = error_details_pb2.QuotaFailure(
            violations=[
                error_details_pb2.QuotaFailure.Violation(
                    subject=error.subject, description=error.message
                )
            ]
        )
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_s * 1e9))
        return [_pack(quota), _pack(error_details_pb2.RetryInfo(retry_delay=delay))]
    if isinstance(error, UnavailableError):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_s * 1e9))
        return [_pack(error_details_pb2.RetryInfo(retry_delay=delay))]
    return []


def to_status_proto(
    error: GuardrailError, metadata: dict[str, str] | None = None
) -> status_pb2.Status:
    """The in-band form, as Register answers carry it."""
    details = [_error_info(error.reason, metadata or {}), *_specific_details(error)]
    code = getattr(code_pb2, error.code.name)
    return status_pb2.Status(code=code, message=error.message, details=details)


def to_grpc_status(
    error: GuardrailError, metadata: dict[str, str] | None = None
) -> grpc.Status:
    """The trailer form, for ``context.abort_with_status``."""
    return rpc_status.to_status(to_status_proto(error, metadata))


def internal_status(request_id: str) -> grpc.Status:
    """The fixed answer for a bug: nothing about internals leaks."""
    status = status_pb2.Status(
        code=code_pb2.INTERNAL,
        message=INTERNAL_MESSAGE,
        details=[_error_info("INTERNAL", {"request_id": request_id})],
    )
    return rpc_status.to_status(status)
