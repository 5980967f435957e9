"""The trace ids of the RPC in flight, for log lines, without OTel's context.

Log lines must carry the caller's trace id even when nothing is exported.
Attaching an OpenTelemetry context costs a few µs per call (plus the span
the SDK would build); instead the recording interceptor parses the W3C
``traceparent`` itself (a few string slices) and puts the ids in one
context variable that the log processor reads.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple

__all__ = ["LOW_64_BITS", "TraceIds", "current_ids", "parse_traceparent"]

LOW_64_BITS = 0xFFFF_FFFF_FFFF_FFFF
_HEX = frozenset("0123456789abcdef")
_TRACEPARENT_LENGTH = 55  # version 00: "00-" 32 hex "-" 16 hex "-" 2 hex


class TraceIds(NamedTuple):
    """The ids a log line names, as OTel hex and Datadog decimal strings."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    dd_trace_id: str  # low 64 bits of the trace id, decimal (Datadog)
    dd_span_id: str

    @classmethod
    def of(cls, trace_id: int, span_id: int) -> TraceIds:
        return cls(
            format(trace_id, "032x"),
            format(span_id, "016x"),
            str(trace_id & LOW_64_BITS),
            str(span_id),
        )


#: Set by the recording interceptor at RPC entry (None: no trace to name).
current_ids: ContextVar[TraceIds | None] = ContextVar("guardrail_trace_ids", default=None)


def parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """``(trace_id, span_id, flags)`` of a W3C traceparent, or None if invalid.

    Accepts future versions' longer values the way the W3C spec asks: the
    first four fields are read and the rest ignored; version ``ff`` is
    invalid, and so are all-zero ids.
    """
    if len(value) < _TRACEPARENT_LENGTH or value[2] != "-" or value[35] != "-":
        return None
    if value[52] != "-" or value[:2] == "ff":
        return None
    if value[:2] == "00" and len(value) != _TRACEPARENT_LENGTH:
        return None
    if not _HEX.issuperset(value[3:35]) or not _HEX.issuperset(value[36:52]):
        return None  # int(x, 16) alone would take "0x", "_", "+" and capitals
    if not _HEX.issuperset(value[53:55]):
        return None
    trace_id = int(value[3:35], 16)
    span_id = int(value[36:52], 16)
    if not trace_id or not span_id:
        return None
    flags = int(value[53:55], 16)

    return trace_id, span_id, flags
