"""CheckStream: open, chunks with hold-back release, one final verdict."""

from __future__ import annotations

from collections.abc import AsyncIterator

from guardrail.v1 import guardrail_pb2 as pb

from service.api.call_context import current_call
from service.api.convert import caller_from_pb, decision_to_pb, findings_to_pb, outcome_to_pb
from service.checking import resolve_direction, select_guardrails
from service.decide import decision_for, direction_reason, not_run
from service.engine import ScanResult
from service.errors import FieldViolation, InvalidArgumentError
from service.registry import Registry
from service.streaming import ChoiceStream, Release
from service.types import Action, Decision, Direction, GuardrailOutcome, GuardrailStatus

__all__ = ["run_check_stream"]

MAX_CHOICES = 64


def _release_pb(release: Release) -> pb.CheckStreamResponse:
    return pb.CheckStreamResponse(
        release=pb.StreamRelease(
            choice_index=release.choice_index,
            text=release.text,
            findings=findings_to_pb(release.findings),
        )
    )


async def _open(requests: AsyncIterator[pb.CheckStreamRequest]) -> pb.StreamOpen:
    async for request in requests:
        if request.WhichOneof("kind") == "open":
            return request.open
        break
    raise InvalidArgumentError(
        "the first CheckStream message must be 'open'",
        [FieldViolation("open", "required as the first message")],
        reason="STREAM_NOT_OPENED",
    )


def _outcomes(streams: dict[int, ChoiceStream], ran: list, skipped: list) -> tuple[Decision, list[GuardrailOutcome]]:
    findings = [f for s in streams.values() for f in s.findings]
    outcomes = []
    for guardrail in ran:
        mine = [f for f in findings if f.guardrail == guardrail.name]
        status = GuardrailStatus.INTERVENED if mine else GuardrailStatus.PASSED
        outcomes.append(
            GuardrailOutcome(
                guardrail.name, guardrail.version, status, guardrail.action, len(mine)
            )
        )
    intervened = {o.action for o in outcomes if o.status is GuardrailStatus.INTERVENED}
    return decision_for(intervened), [*outcomes, *skipped]


async def run_check_stream(
    registry: Registry,
    requests: AsyncIterator[pb.CheckStreamRequest],
    *,
    holdback: int,
) -> AsyncIterator[pb.CheckStreamResponse]:
    opened = await _open(requests)
    snapshot = registry.snapshot
    direction = resolve_direction(opened.direction, default=Direction.OUTPUT)
    selection = select_guardrails(snapshot, list(opened.guardrails), direction)
    skipped = [not_run(g, direction_reason(direction)) for g in selection.skipped]
    record = current_call.get(None)
    if record is not None:
        record.direction = direction
        record.client_request_id = opened.client_request_id
        record.caller = caller_from_pb(opened.caller)
        record.registry_generation = snapshot.generation
        record.applied_guardrails = selection.names
        record.stream_end = "cancelled"  # until it ends any other way

    streams: dict[int, ChoiceStream] = {}
    chunks = 0
    blocked = False
    async for request in requests:
        kind = request.WhichOneof("kind")
        if kind == "end":
            break
        if kind != "chunk":
            raise InvalidArgumentError(
                f"unexpected '{kind}' message after the stream was opened",
                [FieldViolation(kind or "kind", "only chunk or end may follow open")],
                reason="STREAM_PROTOCOL",
            )
        chunks += 1
        index = request.chunk.choice_index
        if index >= MAX_CHOICES:
            raise InvalidArgumentError(
                f"choice_index {index} is over the limit of {MAX_CHOICES}",
                [FieldViolation("chunk.choice_index", f"must be below {MAX_CHOICES}")],
            )
        stream = streams.get(index)
        if stream is None:
            stream = streams[index] = ChoiceStream(
                index, snapshot.scanner, selection.names, holdback
            )
        release = stream.feed(request.chunk.text)
        if stream.blocked:
            blocked = True
            break
        if release is not None:
            yield _release_pb(release)

    if not blocked:
        for stream in streams.values():
            release = stream.finish()
            if stream.blocked:
                blocked = True
                break
            if release is not None:
                yield _release_pb(release)

    decision, outcomes = _outcomes(streams, selection.ran, skipped)
    findings = [f for s in streams.values() for f in s.findings]
    if record is not None:
        record.decision = decision
        record.outcomes = outcomes
        record.findings = findings
        record.chunk_count = chunks
        record.stream_end = "blocked" if blocked else "completed"
    yield pb.CheckStreamResponse(
        verdict=pb.StreamVerdict(
            request_id=record.request_id if record is not None else "",
            decision=decision_to_pb(decision),
            findings=findings_to_pb(findings),
            guardrail_results=[outcome_to_pb(o) for o in outcomes],
            registry_generation=snapshot.generation,
            chunk_count=chunks,
            applied_guardrails=selection.names,
        )
    )
