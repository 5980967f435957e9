"""What ext_proc and ext_authz share: headers, the time budget, the fail mode.

Envoy gives each ext_proc message a deadline (``message_timeout``, 200 ms by
default) and each ext_authz call a ``timeout``; past it Envoy applies its own
``failure_mode_allow``. We answer *before* it: a scan that would overrun the
budget is abandoned and the configured failure mode answers instead, so the
outcome is ours to record rather than a timeout on Envoy's side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2
from guardrail.v1 import guardrail_pb2 as pb

from service.api.call_context import current_call
from service.checking import Checker
from service.errors import GuardrailError

__all__ = [
    "BUDGET_SHARE",
    "EnvoyPolicy",
    "ScanFailed",
    "guardrail_names",
    "header_text",
    "headers_of",
    "note_failure",
    "run_check",
]

#: Share of Envoy's deadline we allow ourselves; the rest is transit.
BUDGET_SHARE = 0.8
GUARDRAILS_HEADER = "x-guardrail-names"


@dataclass(frozen=True, slots=True)
class EnvoyPolicy:
    """How the Envoy integrations scan and fail."""

    message_timeout_s: float
    fail_open: bool
    offload_chars: int
    holdback: int

    @property
    def budget_s(self) -> float:
        return self.message_timeout_s * BUDGET_SHARE


class ScanFailed(Exception):
    """The scan could not answer in time or at all; the fail mode decides."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def header_text(header: base_pb2.HeaderValue) -> str:
    # Envoy sends raw_value (bytes) and leaves value empty on current versions.
    if header.raw_value:
        return header.raw_value.decode("utf-8", errors="replace")
    return header.value


def headers_of(header_map: base_pb2.HeaderMap) -> dict[str, str]:
    """Lower-cased name → value; a repeated header keeps its last value."""
    return {h.key.lower(): header_text(h) for h in header_map.headers}


def guardrail_names(headers: dict[str, str]) -> list[str]:
    """Guardrails named by the route (``x-guardrail-names: pii,secrets``)."""
    raw = headers.get(GUARDRAILS_HEADER, "")
    return [name.strip() for name in raw.split(",") if name.strip()]


async def run_check(
    checker: Checker, request: pb.CheckRequest, policy: EnvoyPolicy
) -> pb.CheckResponse:
    """Check within the budget; raises ScanFailed when it cannot."""
    try:
        if request.ByteSize() <= policy.offload_chars:
            return checker.check(request)  # sub-millisecond: no hop worth paying
        # RE2 releases the GIL, so a thread can be abandoned at the deadline.
        work = asyncio.to_thread(checker.check, request)
        return await asyncio.wait_for(work, policy.budget_s)
    except TimeoutError:
        raise ScanFailed(
            "SCAN_TIMEOUT",
            f"scan did not finish within {policy.budget_s * 1000:.0f} ms",
        ) from None
    except GuardrailError as exc:
        raise ScanFailed(exc.reason or exc.code.name, exc.message) from None


def note_failure(failure: ScanFailed, policy: EnvoyPolicy) -> None:
    """Nothing silent: the call's record says the scan failed and how we answered."""
    record = current_call.get(None)
    if record is None:
        return
    mode = "FAILED_OPEN" if policy.fail_open else "FAILED_CLOSED"
    record.error_reason = f"{failure.reason}:{mode}"
    record.error_message = failure.message


def json_headers(
    extra: Iterable[tuple[str, str]] = (),
) -> list[base_pb2.HeaderValueOption]:
    """Header options for an answer we write ourselves."""
    pairs = [("content-type", "application/json"), *extra]
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=key, raw_value=value.encode())
        )
        for key, value in pairs
    ]
