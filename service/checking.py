"""Check one request: resolve guardrails, scan every string, decide, mask.

This is the whole of ``Check`` apart from the gRPC plumbing, so the CLI's
in-process evaluation runs exactly what the service runs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.protobuf import duration_pb2, json_format
from guardrail.v1 import guardrail_pb2 as pb

from service.api.call_context import current_call
from service.api.convert import (
    DIRECTION_FROM_PB,
    caller_from_pb,
    decision_to_pb,
    findings_to_pb,
    outcome_to_pb,
)
from service.api.payload import extract_segments, masked_payload
from service.decide import decide, direction_reason, not_run
from service.engine import CompiledGuardrail, builtin_specs, mask_text
from service.errors import (
    FieldViolation,
    InvalidArgumentError,
    ResourceExhaustedError,
)
from service.registry import Registry, Snapshot
from service.types import Action, Decision, Direction, Finding, Segment

__all__ = ["Checker", "build_default_checker", "resolve_direction", "select_guardrails"]


def resolve_direction(value: int, *, default: Direction) -> Direction:
    if value == pb.DIRECTION_UNSPECIFIED:
        return default
    try:
        return DIRECTION_FROM_PB[value]
    except KeyError:
        raise InvalidArgumentError(
            f"unknown direction {value}",
            [FieldViolation("direction", f"unknown enum value {value}")],
        ) from None


@dataclass(frozen=True, slots=True)
class Selection:
    """Which guardrails run on a call, and which were named but cannot."""

    ran: list[CompiledGuardrail]
    skipped: list[CompiledGuardrail]

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.ran]


def select_guardrails(
    snapshot: Snapshot, names: list[str], direction: Direction
) -> Selection:
    """Named guardrails (unknown ones fail the call), else the defaults."""
    if not names:
        return Selection(snapshot.resolve(list(snapshot.defaults[direction])), [])
    named = snapshot.resolve(names)
    return Selection(
        [g for g in named if g.spec.applies_to(direction)],
        [g for g in named if not g.spec.applies_to(direction)],
    )


def _masked_json(
    payload: pb.Payload, segments: list[Segment], findings: Sequence[Finding]
) -> Callable[[], str]:
    """The masked payload as JSON, built later and only if SpendLogs stores content."""
    return lambda: json_format.MessageToJson(
        masked_payload(payload, segments, findings, mask_text), indent=None
    )


class Checker:
    """Runs Check against the registry's current snapshot."""

    def __init__(self, registry: Registry, *, max_text_chars: int = 1_000_000) -> None:
        self.registry = registry
        self.max_text_chars = max_text_chars

    def check(self, request: pb.CheckRequest) -> pb.CheckResponse:
        snapshot = self.registry.snapshot
        direction = resolve_direction(request.direction, default=Direction.INPUT)
        record = current_call.get(None)
        if record is not None:
            record.direction = direction
            record.client_request_id = request.client_request_id
            record.caller = caller_from_pb(request.caller)
            record.registry_generation = snapshot.generation
        segments = self._segments(request.payload)
        selection = select_guardrails(snapshot, list(request.guardrails), direction)

        started = time.perf_counter_ns()
        result = snapshot.scanner.scan(segments, selection.names)
        scan_ns = time.perf_counter_ns() - started

        skipped = [not_run(g, direction_reason(direction)) for g in selection.skipped]
        decision, outcomes = decide(selection.ran, skipped, result)
        response = pb.CheckResponse(
            request_id=record.request_id if record is not None else uuid.uuid4().hex,
            decision=decision_to_pb(decision),
            findings=findings_to_pb(result.findings),
            guardrail_results=[outcome_to_pb(o) for o in outcomes],
            registry_generation=snapshot.generation,
            scan_duration=duration_pb2.Duration(
                seconds=scan_ns // 1_000_000_000, nanos=scan_ns % 1_000_000_000
            ),
            applied_guardrails=selection.names,
        )
        if decision is Decision.MASK:
            to_mask = [f for f in result.findings if f.action is Action.MASK]
            response.masked_payload.CopyFrom(
                masked_payload(request.payload, segments, to_mask, mask_text)
            )
        if record is not None:
            record.decision = decision
            record.outcomes = outcomes
            record.findings = result.findings
            record.applied_guardrails = selection.names
            record.scan_ns = scan_ns
            findings = result.findings
            record.masked_content = _masked_json(request.payload, segments, findings)
        return response

    def _segments(self, payload: pb.Payload) -> list[Segment]:
        segments = extract_segments(payload)
        if not segments:
            raise InvalidArgumentError(
                "payload has nothing to scan",
                [FieldViolation("payload", "set text, messages or tools with content")],
                reason="EMPTY_PAYLOAD",
            )
        too_long = [s.path for s in segments if len(s.text) > self.max_text_chars]
        if too_long:
            raise ResourceExhaustedError(
                f"{too_long[0]} is longer than {self.max_text_chars} characters",
                reason="TEXT_TOO_LONG",
            )
        return segments


def build_default_checker() -> Checker:
    """A checker over the built-in guardrails, for in-process evaluation."""
    return Checker(Registry(builtin_specs()))
