"""Errors raised by the client: one class per gRPC status, carrying its details.

    GuardrailRpcError              any non-OK status; data from google.rpc.Status
    ├── CancelledError             CANCELLED (the call was cancelled)
    ├── InvalidArgumentError       INVALID_ARGUMENT + BadRequest field violations
    ├── DeadlineExceededError      DEADLINE_EXCEEDED (ours, or a fail-closed scan)
    ├── NotFoundError              NOT_FOUND + ResourceInfo (unknown guardrail)
    ├── AlreadyExistsError         ALREADY_EXISTS
    ├── PermissionDeniedError      PERMISSION_DENIED
    ├── ResourceExhaustedError     RESOURCE_EXHAUSTED (size caps)
    ├── FailedPreconditionError    FAILED_PRECONDITION (e.g. deleting a built-in)
    ├── UnimplementedError         UNIMPLEMENTED
    ├── InternalError              INTERNAL (a server bug; ErrorInfo has request_id)
    ├── UnavailableError           UNAVAILABLE + RetryInfo (retry later)
    └── UnauthenticatedError       UNAUTHENTICATED

A BLOCK verdict is never an error: it is an OK answer with decision BLOCK.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "AlreadyExistsError",
    "CancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "GuardrailRpcError",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "from_rpc_error",
    "from_status_proto",
]

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class GuardrailRpcError(Exception):
    """The service could not evaluate the call; ``code`` says why."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        field_violations: Iterable[tuple[str, str]] = (),
        resource_names: Iterable[str] = (),
        retry_after_s: float | None = None,
        details: Iterable[dict[str, Any]] = (),
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.field_violations = list(field_violations)
        self.resource_names = list(resource_names)
        self.retry_after_s = retry_after_s
        self.details = list(details)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form the CLI prints."""
        details = self.details
        return {"code": self.code.name, "message": self.message, "details": details}


class CancelledError(GuardrailRpcError):
    """Raised when the call was cancelled before it finished."""


class InvalidArgumentError(GuardrailRpcError):
    """Raised when the request is malformed; see ``field_violations``."""


class DeadlineExceededError(GuardrailRpcError):
    """Raised when the deadline passed (ours, or a fail-closed scan's)."""


class NotFoundError(GuardrailRpcError):
    """Raised when a named guardrail does not exist; see ``resource_names``."""


class AlreadyExistsError(GuardrailRpcError):
    """Raised when a guardrail to create already exists."""


class PermissionDeniedError(GuardrailRpcError):
    """Raised when the caller may not perform the call."""


class ResourceExhaustedError(GuardrailRpcError):
    """Raised when the payload exceeds a size cap."""


class FailedPreconditionError(GuardrailRpcError):
    """Raised when the call is valid but not allowed now (e.g. built-in delete)."""


class UnimplementedError(GuardrailRpcError):
    """Raised when the server does not implement the method."""


class InternalError(GuardrailRpcError):
    """Raised on a server bug; ``details`` carry the request_id to report."""


class UnavailableError(GuardrailRpcError):
    """Raised when the service cannot answer now; retry after ``retry_after_s``."""


class UnauthenticatedError(GuardrailRpcError):
    """Raised when the call carries no valid credentials."""


_BY_CODE: dict[grpc.StatusCode, type[GuardrailRpcError]] = {
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def _detail_dict(detail: any_pb2.Any) -> dict[str, Any]:
    try:
        return json_format.MessageToDict(detail)
    except (TypeError, KeyError, json_format.Error):
        # A detail type this client does not know: keep at least its name.
        return {"@type": detail.type_url}


def _unpack(detail: any_pb2.Any, message_type: type[Any]) -> Any | None:
    message = message_type()
    return message if detail.Unpack(message) else None


def _fields(status: status_pb2.Status) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "reason": "",
        "field_violations": [],
        "resource_names": [],
        "retry_after_s": None,
        "details": [_detail_dict(detail) for detail in status.details],
    }
    for detail in status.details:
        _collect(detail, fields)
    return fields


def _collect(detail: any_pb2.Any, fields: dict[str, Any]) -> None:
    if (info := _unpack(detail, error_details_pb2.ErrorInfo)) is not None:
        fields["reason"] = info.reason
    elif (bad := _unpack(detail, error_details_pb2.BadRequest)) is not None:
        fields["field_violations"] += [
            (v.field, v.description) for v in bad.field_violations
        ]
    elif (res := _unpack(detail, error_details_pb2.ResourceInfo)) is not None:
        fields["resource_names"].append(res.resource_name)
    elif (retry := _unpack(detail, error_details_pb2.RetryInfo)) is not None:
        delay = retry.retry_delay
        fields["retry_after_s"] = delay.seconds + delay.nanos / 1e9


def _build(
    code: grpc.StatusCode, message: str, status: status_pb2.Status | None
) -> GuardrailRpcError:
    cls = _BY_CODE.get(code, GuardrailRpcError)
    fields = _fields(status) if status is not None else {}
    return cls(code, message, **fields)


def from_status_proto(status: status_pb2.Status) -> GuardrailRpcError:
    """Build the error for an in-band ``google.rpc.Status`` (Register answers)."""
    code = _BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    return _build(code, status.message, status)


def _status_from_trailers(
    metadata: Iterable[tuple[str, Any]] | None,
) -> status_pb2.Status | None:
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY:
            return status_pb2.Status.FromString(value)
    return None


def from_rpc_error(exc: grpc.RpcError) -> GuardrailRpcError:
    """Build the error for a failed call, sync (``grpc.Call``) or ``AioRpcError``.

    Both kinds expose ``code()``, ``details()`` and ``trailing_metadata()``
    yielding ``(key, value)`` pairs, so one trailer parser serves both.
    """
    code_of = getattr(exc, "code", None)
    if code_of is None:
        # An RpcError that is no Call (rare, e.g. from a channel that closed).
        return GuardrailRpcError(grpc.StatusCode.UNKNOWN, str(exc))

    code: grpc.StatusCode = code_of()
    message: str = exc.details() or ""  # type: ignore[attr-defined]
    trailers = exc.trailing_metadata()  # type: ignore[attr-defined]
    status = _status_from_trailers(trailers)
    return _build(code, message, status)
