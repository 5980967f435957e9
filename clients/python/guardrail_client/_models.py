"""Plain, frozen results of the service's answers, and their conversions.

Gateway code reads these instead of protobuf messages; only ``masked_payload``
stays a proto, because chat-shaped payloads are forwarded as they are.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from guardrail.v1 import guardrail_pb2 as pb

from guardrail_client._errors import GuardrailRpcError, from_status_proto

__all__ = [
    "Action",
    "CheckResult",
    "Decision",
    "Finding",
    "GuardrailResult",
    "GuardrailStatus",
    "RegisterResult",
    "Severity",
    "StreamDelta",
    "StreamEvent",
    "StreamRelease",
    "StreamToolCall",
    "StreamVerdict",
    "ToolCallDelta",
    "check_result_from_proto",
    "finding_from_proto",
    "guardrail_result_from_proto",
    "register_result_from_proto",
    "stream_event_from_proto",
]


class Decision(enum.StrEnum):
    """The verdict for a whole payload."""

    UNSPECIFIED = "UNSPECIFIED"
    ALLOW = "ALLOW"
    MASK = "MASK"
    BLOCK = "BLOCK"
    FLAG = "FLAG"


class Action(enum.StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    BLOCK = "BLOCK"
    MASK = "MASK"
    FLAG = "FLAG"


class Severity(enum.StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class GuardrailStatus(enum.StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    PASSED = "PASSED"
    INTERVENED = "INTERVENED"
    FAILED_OPEN = "FAILED_OPEN"
    NOT_RUN = "NOT_RUN"


@dataclass(frozen=True, slots=True)
class Finding:
    """One match; ``start``/``end`` are code-point offsets into ``path``."""

    guardrail: str
    rule_id: str
    category: str
    severity: Severity
    action: Action
    path: str
    json_pointer: str
    start: int
    end: int
    redacted_preview: str
    decoded: bool


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """The outcome of one guardrail on one call."""

    name: str
    version: int
    status: GuardrailStatus
    reason: str
    finding_count: int
    action: Action
    score: float


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict of ``check``; forward ``masked_text``/``masked_payload`` on MASK."""

    request_id: str
    decision: Decision
    findings: tuple[Finding, ...]
    guardrail_results: tuple[GuardrailResult, ...]
    masked_text: str | None
    masked_payload: pb.Payload | None
    registry_generation: int
    scan_duration_s: float
    applied_guardrails: tuple[str, ...]
    #: True when the service could not evaluate and the client's fail-open
    #: option let the payload through; ``error`` says why.
    failed_open: bool = False
    error: GuardrailRpcError | None = field(default=None, compare=False)

    @property
    def blocked(self) -> bool:
        """Do not forward the payload."""
        return self.decision is Decision.BLOCK

    @property
    def allowed(self) -> bool:
        """The payload may be forwarded unchanged (ALLOW, or monitor-only FLAG)."""
        return self.decision in (Decision.ALLOW, Decision.FLAG)


@dataclass(frozen=True, slots=True)
class StreamRelease:
    """Text of one choice that is safe to emit now (possibly masked)."""

    choice_index: int
    text: str
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class StreamVerdict:
    """The last event of a stream: the verdict on the whole answer."""

    request_id: str
    decision: Decision
    findings: tuple[Finding, ...]
    guardrail_results: tuple[GuardrailResult, ...]
    registry_generation: int
    chunk_count: int
    applied_guardrails: tuple[str, ...]

    @property
    def blocked(self) -> bool:
        return self.decision is Decision.BLOCK


@dataclass(frozen=True, slots=True)
class StreamToolCall:
    """A tool call of one choice, whole once complete; arguments masked when ``masked``."""

    choice_index: int
    index: int
    id: str
    name: str
    arguments_json: str
    masked: bool
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """One OpenAI-style fragment of a streamed tool call (``id``/``name`` on its first)."""

    index: int
    id: str = ""
    name: str = ""
    arguments_fragment: str = ""


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """One streamed chunk of a choice: text, tool-call fragments, or its finish."""

    text: str = ""
    choice_index: int = 0
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str = ""

    def to_proto(self) -> pb.StreamChunk:
        return pb.StreamChunk(
            text=self.text,
            choice_index=self.choice_index,
            finish_reason=self.finish_reason,
            tool_calls=[
                pb.ToolCallDelta(
                    index=d.index, id=d.id, name=d.name, arguments_fragment=d.arguments_fragment
                )
                for d in self.tool_calls
            ],
        )


StreamEvent = StreamRelease | StreamToolCall | StreamVerdict


@dataclass(frozen=True, slots=True)
class RegisterResult:
    """One Register answer: accepted, or ``error`` for that item only."""

    name: str
    accepted: bool
    version: int = 0
    registry_generation: int = 0
    validate_only: bool = False
    error: GuardrailRpcError | None = field(default=None, compare=False)


def _enum(wrapper: EnumTypeWrapper, value: int, prefix: str, kind: type[Any]) -> Any:
    try:
        name = wrapper.Name(value).removeprefix(prefix)
    except ValueError:
        # A value from a newer server than this client: say so, don't crash.
        return kind("UNSPECIFIED")
    return kind(name)


def finding_from_proto(finding: pb.Finding) -> Finding:
    location = finding.location
    return Finding(
        guardrail=finding.guardrail,
        rule_id=finding.rule_id,
        category=finding.category,
        severity=_enum(pb.Severity, finding.severity, "SEVERITY_", Severity),
        action=_enum(pb.Action, finding.action, "ACTION_", Action),
        path=location.path,
        json_pointer=location.json_pointer,
        start=location.start,
        end=location.end,
        redacted_preview=finding.redacted_preview,
        decoded=finding.decoded,
    )


def guardrail_result_from_proto(result: pb.GuardrailResult) -> GuardrailResult:
    return GuardrailResult(
        name=result.name,
        version=result.version,
        status=_enum(
            pb.GuardrailStatus, result.status, "GUARDRAIL_STATUS_", GuardrailStatus
        ),
        reason=result.reason,
        finding_count=result.finding_count,
        action=_enum(pb.Action, result.action, "ACTION_", Action),
        score=result.score,
    )


def _decision(value: int) -> Decision:
    decision: Decision = _enum(pb.Decision, value, "DECISION_", Decision)
    return decision


def check_result_from_proto(response: pb.CheckResponse) -> CheckResult:
    masked = response.masked_payload if response.HasField("masked_payload") else None
    return CheckResult(
        request_id=response.request_id,
        decision=_decision(response.decision),
        findings=tuple(finding_from_proto(f) for f in response.findings),
        guardrail_results=tuple(
            guardrail_result_from_proto(r) for r in response.guardrail_results
        ),
        masked_text=masked.text if masked is not None and masked.text else None,
        masked_payload=masked,
        registry_generation=response.registry_generation,
        scan_duration_s=response.scan_duration.ToNanoseconds() / 1e9,
        applied_guardrails=tuple(response.applied_guardrails),
    )


def _verdict_from_proto(verdict: pb.StreamVerdict) -> StreamVerdict:
    return StreamVerdict(
        request_id=verdict.request_id,
        decision=_decision(verdict.decision),
        findings=tuple(finding_from_proto(f) for f in verdict.findings),
        guardrail_results=tuple(
            guardrail_result_from_proto(r) for r in verdict.guardrail_results
        ),
        registry_generation=verdict.registry_generation,
        chunk_count=verdict.chunk_count,
        applied_guardrails=tuple(verdict.applied_guardrails),
    )


def stream_event_from_proto(response: pb.CheckStreamResponse) -> StreamEvent:
    kind = response.WhichOneof("kind")
    if kind == "verdict":
        return _verdict_from_proto(response.verdict)
    if kind == "release":
        release = response.release
        findings = tuple(finding_from_proto(f) for f in release.findings)
        return StreamRelease(release.choice_index, release.text, findings)
    if kind == "tool_call":
        call = response.tool_call
        return StreamToolCall(
            choice_index=call.choice_index,
            index=call.index,
            id=call.id,
            name=call.name,
            arguments_json=call.arguments_json,
            masked=call.masked,
            findings=tuple(finding_from_proto(f) for f in call.findings),
        )
    raise ValueError(f"CheckStreamResponse carries no known kind (got {kind!r})")


def register_result_from_proto(
    response: pb.RegisterResponse, name: str
) -> RegisterResult:
    """Convert one answer; ``name`` is the guardrail of the matching request."""
    kind = response.WhichOneof("result")
    if kind == "error":
        return RegisterResult(
            name=name, accepted=False, error=from_status_proto(response.error)
        )
    if kind is None:
        empty = GuardrailRpcError(grpc.StatusCode.UNKNOWN, "empty Register answer")
        return RegisterResult(name=name, accepted=False, error=empty)

    accepted = response.accepted
    return RegisterResult(
        name=accepted.name or name,
        accepted=True,
        version=accepted.version,
        registry_generation=accepted.registry_generation,
        validate_only=accepted.validate_only,
    )
