"""CheckStream: open, chunks (text and tool-call deltas), releases, one verdict.

Text is released through ``service.streaming`` with a hold-back derived from
the applied guardrails' rules; tool-call arguments are held until the call is
complete and then scanned as JSON exactly as Check scans them. A block ends
the stream at once with the verdict: nothing more is released, held text
included. The call's one record (SpendLogs row, span, log line) carries the
chunk count, the bytes received, the findings and how the stream ended.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from guardrail.v1 import guardrail_pb2 as pb

from service.api.call_context import current_call
from service.api.convert import caller_from_pb, decision_to_pb, findings_to_pb
from service.api.payload import MAX_JSON_DEPTH, extract_segments, masked_payload
from service.checking import Selection, outcome_pb, resolve_direction, select_guardrails
from service.decide import decide, direction_reason, not_run
from service.engine import mask_text
from service.errors import (
    FieldViolation,
    GuardrailError,
    InvalidArgumentError,
    ResourceExhaustedError,
)
from service.mcp_pins import RUG_PULL_GUARDRAIL
from service.policy import EMPTY_POLICY, Policy
from service.registry import Registry, Snapshot
from service.streaming import (
    Holdback,
    Release,
    ScoreBook,
    StreamEngine,
    TextStream,
    ToolCallAssembler,
    ToolCallText,
    engine_for,
)
from service.telemetry.logging import get_logger
from service.types import (
    Action,
    CallRecord,
    Decision,
    Direction,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
)

__all__ = ["MAX_CHOICES", "MAX_TOOL_ARGUMENT_CHARS", "log_holdback", "run_check_stream"]

MAX_CHOICES = 64
MAX_TOOL_CALLS = 128
MAX_TOOL_ARGUMENT_CHARS = 1_000_000
# Check's own path for the one tool call of the payload built to scan it.
_SCANNED_CALL = "messages[0].tool_calls[0]"

_log = get_logger("service.streaming")

#: One step of a text stream: feed it a delta, or finish it.
_Step = Callable[[TextStream], Release | None]


def log_holdback(snapshot: Snapshot, cap: int) -> None:
    """Build a snapshot's stream engine and log the hold-back it derives."""
    engine = engine_for(snapshot)
    for direction in Direction:
        holdback = engine.holdback(snapshot.defaults[direction], cap)
        _log.info(
            "stream hold-back derived",
            registry_generation=snapshot.generation,
            direction=direction.value,
            holdback_chars=holdback.chars,
            cap=cap,
            capped_rule_count=len(holdback.capped_rules),
            capped_rules=list(holdback.capped_rules[:20]),
        )


def _deltas(chunk: pb.StreamChunk) -> Iterator[pb.ChoiceDelta]:
    """The chunk's own fields as the first choice delta, then the others."""
    yield pb.ChoiceDelta(
        index=chunk.choice_index,
        text=chunk.text,
        tool_calls=chunk.tool_calls,
        finish_reason=chunk.finish_reason,
    )
    yield from chunk.choices


def _check_index(field: str, value: int, limit: int) -> None:
    if value >= limit:
        raise InvalidArgumentError(
            f"{field} {value} is over the limit of {limit}",
            [FieldViolation(field, f"must be below {limit}")],
        )


class _Session:
    """One stream's state: text streams, tool calls, scores, counts."""

    def __init__(
        self,
        engine: StreamEngine,
        selection: Selection,
        direction: Direction,
        holdback: Holdback,
        max_json_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.engine = engine
        self.max_json_depth = max_json_depth
        self.selection = selection
        self.direction = direction
        self.holdback = holdback
        modes = {g.name: selection.mode_of(g) for g in selection.ran}
        self.book = ScoreBook(selection.ran, modes)
        self.unsupported: list[GuardrailOutcome] = []  # NOT_RUN: streams cannot yet
        self.texts: dict[int, TextStream] = {}
        self.calls = ToolCallAssembler(MAX_TOOL_ARGUMENT_CHARS)
        self.call_findings: list[Finding] = []
        self.chunks = 0
        self.bytes = 0
        self.blocked = False

    def chunk(self, chunk: pb.StreamChunk) -> list[pb.CheckStreamResponse]:
        self.chunks += 1
        out: list[pb.CheckStreamResponse] = []
        for delta in _deltas(chunk):
            _check_index("chunk.choice_index", delta.index, MAX_CHOICES)
            self._delta(delta, out)
            if self.blocked:
                return []
        return out

    def _delta(self, delta: pb.ChoiceDelta, out: list[pb.CheckStreamResponse]) -> None:
        if delta.text:
            self.bytes += len(delta.text.encode("utf-8"))
            text = delta.text
            self._text(delta.index, lambda stream: stream.feed(text), out)
        for call in delta.tool_calls:
            _check_index("tool_calls.index", call.index, MAX_TOOL_CALLS)
            self.bytes += len(call.arguments_fragment.encode("utf-8"))
            done = self._add_call(delta.index, call)
            self._calls(done, out)
        if delta.finish_reason:
            self._text(delta.index, TextStream.finish, out)
            self._calls(self.calls.finish_choice(delta.index), out)

    def _add_call(self, choice: int, call: pb.ToolCallDelta) -> list[ToolCallText]:
        try:
            return self.calls.add(
                choice, call.index, call.id, call.name, call.arguments_fragment
            )
        except OverflowError as exc:
            raise ResourceExhaustedError(
                f"{exc.args[0]}.arguments_json is longer than "
                f"{MAX_TOOL_ARGUMENT_CHARS} characters",
                reason="TEXT_TOO_LONG",
            ) from None

    def _text(self, index: int, step: _Step, out: list[pb.CheckStreamResponse]) -> None:
        if self.blocked:
            return
        stream = self.texts.get(index)
        if stream is None:
            names, limits = self.selection.names, self.holdback
            stream = TextStream(
                index, self.engine.scanner, names, limits.chars, self.book,
                limits.capped_rules,
            )
            self.texts[index] = stream
        release: Release | None = step(stream)
        self.blocked = self.blocked or stream.blocked or self.book.blocked
        if release is not None and not self.blocked:
            out.append(_release_pb(release))

    def _calls(self, calls: Sequence[ToolCallText], out: list[pb.CheckStreamResponse]) -> None:
        for call in calls:
            if self.blocked:
                return
            response = self._scan_call(call)
            if response is not None:
                out.append(response)

    def _scan_call(self, call: ToolCallText) -> pb.CheckStreamResponse | None:
        tool_call = pb.ToolCall(id=call.id, name=call.name, arguments_json=call.arguments)
        payload = pb.Payload(messages=[pb.Message(role="assistant", tool_calls=[tool_call])])
        try:
            segments = extract_segments(payload, max_json_depth=self.max_json_depth)
        except InvalidArgumentError as exc:
            raise _relocated_error(exc, call.path) from None
        found = self.engine.scanner.scan(segments, self.selection.names).findings
        located = [_relocated(f, call.path) for f in found]
        self.call_findings.extend(located)
        if self.book.add(found):
            self.blocked = True
            return None
        to_mask = [f for f in found if self.book.masks(f)]
        if to_mask:
            masked = masked_payload(payload, segments, to_mask, mask_text)
            tool_call = masked.messages[0].tool_calls[0]
        return pb.CheckStreamResponse(
            tool_call=pb.StreamToolCall(
                choice_index=call.choice_index,
                index=call.index,
                id=call.id,
                name=tool_call.name,
                arguments_json=tool_call.arguments_json,
                masked=bool(to_mask),
                findings=findings_to_pb(self.book.reported(located)),
            )
        )

    def finish(self) -> list[pb.CheckStreamResponse]:
        out: list[pb.CheckStreamResponse] = []
        for index in sorted(self.texts):
            self._text(index, TextStream.finish, out)
        self._calls(self.calls.finish(), out)
        return [] if self.blocked else out

    def findings(self) -> list[Finding]:
        text = [f for index in sorted(self.texts) for f in self.texts[index].findings]
        return self.book.kept([*text, *self.call_findings])

    def outcomes(
        self,
    ) -> tuple[Decision, Decision | None, list[GuardrailOutcome], list[Finding]]:
        """(decision, dry-run decision, outcomes, findings recorded)."""
        findings = self.findings()
        outcomes = self.book.outcomes(findings)
        reason = direction_reason(self.direction)
        skipped = [not_run(g, reason) for g in self.selection.skipped]
        skipped.extend(self.unsupported)
        decision, dry_decision = decide(outcomes)
        return decision, dry_decision, [*outcomes, *skipped], findings

    def fill(self, record: CallRecord, stream_end: str | None = None) -> None:
        decision, _, outcomes, findings = self.outcomes()
        record.decision = decision
        record.outcomes = outcomes
        record.findings = findings
        record.chunk_count = self.chunks
        record.stream_bytes = self.bytes
        if stream_end is not None:
            record.stream_end = stream_end


def _stream_selection(selection: Selection) -> tuple[Selection, list[GuardrailOutcome]]:
    """MCP pins are compared by Check only: a stream says so (NOT_RUN)."""
    outcomes = []
    if selection.rug_pull or selection.rug_pull_skipped:
        outcomes.append(
            GuardrailOutcome(
                name=RUG_PULL_GUARDRAIL,
                version=1,
                status=GuardrailStatus.NOT_RUN,
                action=Action.FLAG,
                reason="MCP pins are compared by Check, not CheckStream",
            )
        )
    return selection, outcomes


def _relocated_error(error: InvalidArgumentError, call_path: str) -> InvalidArgumentError:
    """The error of the payload built to scan a call, in the stream's own paths."""

    def moved(text: str) -> str:
        return text.replace(_SCANNED_CALL, call_path)

    return InvalidArgumentError(
        moved(error.message),
        [FieldViolation(moved(v.field), v.description) for v in error.violations],
        reason=error.reason,
    )


def _relocated(finding: Finding, call_path: str) -> Finding:
    path = call_path + finding.path.removeprefix(_SCANNED_CALL)
    return dataclasses.replace(finding, path=path)


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


def _chunk_of(request: pb.CheckStreamRequest) -> pb.StreamChunk | None:
    """The chunk, or None at the end; anything else breaks the protocol."""
    kind = request.WhichOneof("kind")
    if kind == "end":
        return None
    if kind != "chunk":
        raise InvalidArgumentError(
            f"unexpected '{kind}' message after the stream was opened",
            [FieldViolation(kind or "kind", "only chunk or end may follow open")],
            reason="STREAM_PROTOCOL",
        )
    return request.chunk


def _start_record(
    record: CallRecord | None, opened: pb.StreamOpen, snapshot: Snapshot, session: _Session
) -> None:
    if record is None:
        return
    record.direction = session.direction
    record.client_request_id = opened.client_request_id or record.client_request_id
    record.caller = caller_from_pb(opened.caller)
    record.registry_generation = snapshot.generation
    record.applied_guardrails = session.selection.applied
    record.no_guardrails = not session.selection.applied
    record.policy_layers = session.selection.layers
    record.stream_end = "cancelled"  # until it ends any other way


def _verdict(
    session: _Session, record: CallRecord | None, snapshot: Snapshot
) -> pb.CheckStreamResponse:
    decision, dry_decision, outcomes, findings = session.outcomes()
    verdict = pb.CheckStreamResponse(
        verdict=pb.StreamVerdict(
            request_id=record.request_id if record is not None else "",
            decision=decision_to_pb(decision),
            findings=findings_to_pb(session.book.reported(findings)),
            guardrail_results=[outcome_pb(o) for o in outcomes],
            registry_generation=snapshot.generation,
            chunk_count=session.chunks,
            applied_guardrails=session.selection.applied,
            no_guardrails=not session.selection.applied,
            policy_layers=session.selection.layers,
            holdback_chars=session.holdback.chars,
            capped_rules=session.holdback.capped_rules,
            stream_bytes=session.bytes,
        )
    )
    if dry_decision is not None:
        verdict.verdict.dry_run_decision = decision_to_pb(dry_decision)
    return verdict


async def run_check_stream(
    registry: Registry,
    requests: AsyncIterator[pb.CheckStreamRequest],
    *,
    holdback: int,
    policy: Policy = EMPTY_POLICY,
    max_json_depth: int = MAX_JSON_DEPTH,
) -> AsyncIterator[pb.CheckStreamResponse]:
    """The CheckStream handler; ``holdback`` caps the derived hold-back."""
    opened = await _open(requests)
    snapshot = registry.snapshot
    direction = resolve_direction(opened.direction, default=Direction.OUTPUT)
    record = current_call.get(None)
    selection = select_guardrails(
        snapshot,
        list(opened.guardrails),
        direction,
        policy=policy,
        principal=record.principal if record is not None else None,
        request_team=opened.caller.team_id,
        rug_pull_default=True,
    )
    selection, unsupported = _stream_selection(selection)
    engine = engine_for(snapshot)
    limits = engine.holdback(selection.names, holdback)
    session = _Session(engine, selection, direction, limits, max_json_depth)
    session.unsupported = unsupported
    _start_record(record, opened, snapshot, session)

    ended = "cancelled"
    try:
        async for request in requests:
            chunk = _chunk_of(request)
            if chunk is None:
                break
            for response in session.chunk(chunk):
                yield response
            if record is not None:
                record.chunk_count, record.stream_bytes = session.chunks, session.bytes
            if session.blocked:
                break
        if not session.blocked:
            for response in session.finish():
                yield response
        ended = "blocked" if session.blocked else "completed"
    except GuardrailError:
        ended = "error"
        raise
    finally:
        # Runs on cancellation too (the interceptor then names the ending).
        if record is not None:
            session.fill(record, None if ended == "cancelled" else ended)
    yield _verdict(session, record, snapshot)
