"""Check one request: resolve guardrails, scan every string, decide, mask.

This is the whole of ``Check`` apart from the gRPC plumbing, so the CLI's
in-process evaluation runs exactly what the service runs.

Order: resolve the direction; resolve the guardrails through the policy
(service/selection.py, once per distinct selection: caller, direction,
explicit names, defaults, required);
scan the fail-closed guardrails, then the fail-open ones (two scans only when
both kinds apply); decide with each guardrail's mode (service/decide.py);
mask.

Failures: a scan that raises, or that is not done by the call's limit (the
caller's deadline less a margin, capped by ``GUARDRAIL_SCAN_BUDGET_MS``),
fails its guardrails. A failed fail-closed guardrail fails the call
(``DEADLINE_EXCEEDED`` for time, ``UNAVAILABLE`` for an engine error); a
failed fail-open one is ``FAILED_OPEN`` with the reason and the decision is
what the rest could reach. After an engine error the fail-open guardrails
are rescanned one by one, so only the one that fails is marked. Known
shortcoming: RE2 cannot be interrupted; an inline scan (below
``GUARDRAIL_OFFLOAD_CHARS``) that overruns is only noticed when it ends, and
an offloaded one keeps its thread busy after the call has been answered.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf import duration_pb2, json_format
from guardrail.v1 import guardrail_pb2 as pb

from service.api.call_context import current_call
from service.api.convert import (
    DIRECTION_FROM_PB,
    caller_from_pb,
    decision_to_pb,
    findings_to_pb,
)
from service.api.payload import extract_segments, masked_payload
from service.decide import (
    decide,
    direction_reason,
    effective_action,
    failed_open,
    not_run,
    ran_outcome,
)
from service.engine import ScanResult, builtin_specs, mask_text
from service.errors import (
    FieldViolation,
    InvalidArgumentError,
    ResourceExhaustedError,
    ScanDeadlineError,
    UnavailableError,
)
from service.limits import PayloadLimits, check_payload
from service.mcp_pins import RUG_PULL_GUARDRAIL, McpPins, check_tools, pin_scope
from service.policy import EMPTY_POLICY, Policy
from service.registry import Registry, Snapshot
from service.selection import (
    PreparedSelection,
    Selection,
    SelectionCache,
    outcome_pb,
    select_guardrails,
)
from service.types import (
    Action,
    CallRecord,
    Decision,
    Direction,
    FailMode,
    Finding,
    GuardrailMode,
    GuardrailOutcome,
    GuardrailStatus,
    Segment,
)

__all__ = [
    "Checker",
    "build_default_checker",
    "outcome_pb",
    "resolve_direction",
    "select_guardrails",
]

RUG_PULL_VERSION = 1
PINS_NOT_LOADED = "pin store not loaded"


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


@dataclass(slots=True)
class Scanned:
    """One scan of some guardrails: the result, and those that failed (reasons)."""

    result: ScanResult
    failed: dict[str, str] = field(default_factory=dict)
    timed_out: bool = False


@dataclass(slots=True)
class Plan:
    """Everything decided before scanning."""

    request: pb.CheckRequest
    snapshot: Snapshot
    direction: Direction
    segments: list[Segment]
    prepared: PreparedSelection
    record: CallRecord | None
    limit: float | None  # time.monotonic() by which scans must end
    closed: list[str]
    open: list[str]
    nothing_to_scan: bool
    started_ns: int = 0

    @property
    def selection(self) -> Selection:
        return self.prepared.selection


def _masked_json(
    payload: pb.Payload, segments: list[Segment], findings: Sequence[Finding]
) -> Callable[[], str]:
    """The masked payload as JSON, built later and only if SpendLogs stores content."""
    return lambda: json_format.MessageToJson(
        masked_payload(payload, segments, findings, mask_text), indent=None
    )


def _merge(into: ScanResult, more: ScanResult) -> None:
    into.findings.extend(more.findings)
    into.scores.update(more.scores)
    into.matched |= more.matched


def _duration(ns: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


class Checker:
    """Runs Check against the registry's current snapshot and the policy."""

    def __init__(
        self,
        registry: Registry,
        *,
        max_text_chars: int = 1_000_000,
        policy: Policy = EMPTY_POLICY,
        pins: McpPins | None = None,
        rug_pull_action: Action = Action.BLOCK,
        scan_budget_s: float = 0.0,
        limits: PayloadLimits | None = None,
    ) -> None:
        self.registry = registry
        self.limits = limits or PayloadLimits()
        self.max_text_chars = max_text_chars
        self.policy = policy
        self.pins = pins
        self.rug_pull_action = rug_pull_action
        self.scan_budget_s = scan_budget_s
        self._selections = SelectionCache()

    # -- the two ways to run a check

    def check(self, request: pb.CheckRequest, *, deadline: float | None = None) -> pb.CheckResponse:
        """Scan inline; ``deadline`` is a time.monotonic() value or None."""
        plan = self.plan(request, deadline)
        closed = self.scan(plan, plan.closed, isolate=False)
        opened = self.scan(plan, plan.open, isolate=True)
        return self.finish(plan, closed, opened)

    async def check_offloaded(
        self, request: pb.CheckRequest, *, deadline: float | None = None
    ) -> pb.CheckResponse:
        """Scan in a thread (RE2 releases the GIL); answer by the limit whatever happens."""
        plan = self.plan(request, deadline)
        closed = await self._scan_in_thread(plan, plan.closed, isolate=False)
        opened = await self._scan_in_thread(plan, plan.open, isolate=True)
        return self.finish(plan, closed, opened)

    async def _scan_in_thread(self, plan: Plan, names: list[str], *, isolate: bool) -> Scanned:
        if not names:
            return Scanned(ScanResult())
        work = asyncio.to_thread(self.scan, plan, names, isolate=isolate)
        if plan.limit is None:
            return await work
        try:
            return await asyncio.wait_for(work, max(0.0, plan.limit - time.monotonic()))
        except TimeoutError:
            return _timed_out(names, "the scan did not finish within the call's time limit")

    # -- phases

    def plan(self, request: pb.CheckRequest, deadline: float | None) -> Plan:
        snapshot = self.registry.snapshot
        direction = resolve_direction(request.direction, default=Direction.INPUT)
        record = current_call.get(None)
        caller = caller_from_pb(request.caller)
        if record is not None:
            record.direction = direction
            record.client_request_id = request.client_request_id
            record.caller = caller
            record.registry_generation = snapshot.generation
        segments = self._segments(request.payload)
        prepared = self._selections.get(
            snapshot,
            self.policy,
            direction,
            tuple(request.guardrails),
            principal=record.principal if record is not None else None,
            request_team=caller.team_id,
            rug_pull_default=self.pins is not None,
        )
        selection = prepared.selection
        if record is not None:
            record.applied_guardrails = selection.applied
            record.policy_layers = selection.layers
            record.no_guardrails = not selection.applied
        nothing = not any(s.text for s in segments)
        closed, opened = ([], []) if nothing else (prepared.closed, prepared.open)
        return Plan(
            request, snapshot, direction, segments, prepared, record,
            self._limit(deadline), closed, opened, nothing, time.perf_counter_ns(),
        )  # fmt: skip

    def _limit(self, deadline: float | None) -> float | None:
        if not self.scan_budget_s:
            return deadline
        budget = time.monotonic() + self.scan_budget_s
        return budget if deadline is None else min(deadline, budget)

    def scan(self, plan: Plan, names: list[str], *, isolate: bool) -> Scanned:
        """Scan ``names`` together; with ``isolate``, an engine error is retried one by one."""
        if not names:
            return Scanned(ScanResult())
        if plan.limit is not None and time.monotonic() >= plan.limit:
            return _timed_out(names, "no time left before the call's time limit")
        try:
            result = plan.snapshot.scanner.scan(plan.segments, names)
        except Exception as exc:  # an engine failure (RE2 memory budget, a bug)
            failure = f"engine error: {type(exc).__name__}"
            if not isolate or len(names) == 1:
                return Scanned(ScanResult(), dict.fromkeys(names, failure))
            return self._one_by_one(plan, names)
        if plan.limit is not None and time.monotonic() > plan.limit:
            return _timed_out(names, "the scan overran the call's time limit")
        return Scanned(result)

    def _one_by_one(self, plan: Plan, names: list[str]) -> Scanned:
        merged = Scanned(ScanResult())
        for name in names:
            single = self.scan(plan, [name], isolate=False)
            _merge(merged.result, single.result)
            merged.failed.update(single.failed)
            merged.timed_out = merged.timed_out or single.timed_out
        return merged

    def finish(self, plan: Plan, closed: Scanned, opened: Scanned) -> pb.CheckResponse:
        selection, record = plan.selection, plan.record
        result = ScanResult()
        _merge(result, closed.result)
        _merge(result, opened.result)
        _sort_findings(result, plan.segments)
        rug_pull = self._rug_pull(plan)
        outcomes = self._outcomes(plan, result, opened.failed)
        if rug_pull is not None:
            outcomes.append(rug_pull[0])
            result.findings.extend(rug_pull[1])
        if record is not None:
            record.outcomes = outcomes
        if closed.failed:
            self._fail_closed(closed)
        if rug_pull is not None and rug_pull[0].reason == PINS_NOT_LOADED:
            if rug_pull[0].fail_mode is FailMode.CLOSED:
                raise UnavailableError(f"{RUG_PULL_GUARDRAIL}: {PINS_NOT_LOADED}")

        decision, dry_decision = decide(outcomes)
        modes = {o.name: o.mode for o in outcomes}
        counted = [
            _as_mode(f, modes.get(f.guardrail, GuardrailMode.ENFORCE))
            for f in result.findings
            if modes.get(f.guardrail) is not GuardrailMode.DRY_RUN
        ]
        scan_ns = time.perf_counter_ns() - plan.started_ns
        response = pb.CheckResponse(
            request_id=record.request_id if record is not None else uuid.uuid4().hex,
            decision=decision_to_pb(decision),
            findings=findings_to_pb(counted),
            guardrail_results=[plan.prepared.message(o) for o in outcomes],
            registry_generation=plan.snapshot.generation,
            scan_duration=_duration(scan_ns),
            applied_guardrails=selection.applied,
            no_guardrails=not selection.applied,
            policy_layers=selection.layers,
        )
        if dry_decision is not None:
            response.dry_run_decision = decision_to_pb(dry_decision)
        to_mask = [f for f in counted if f.action is Action.MASK]
        if decision is Decision.MASK and to_mask:
            response.masked_payload.CopyFrom(
                masked_payload(plan.request.payload, plan.segments, to_mask, mask_text)
            )
        if record is not None:
            record.decision = decision
            record.findings = result.findings
            record.scan_ns = scan_ns
            # Stored content masks every span finding (block, monitor, dry-run
            # too); rug-pull findings name tools, not spans.
            spans = [f for f in result.findings if f.guardrail != RUG_PULL_GUARDRAIL]
            record.masked_content = _masked_json(plan.request.payload, plan.segments, spans)
        return response

    def _outcomes(
        self, plan: Plan, result: ScanResult, failed: dict[str, str]
    ) -> list[GuardrailOutcome]:
        prepared = plan.prepared
        selection = prepared.selection
        counts = Counter(f.guardrail for f in result.findings)
        matched, scores = result.matched, result.scores
        outcomes = []
        for ran in prepared.ran:
            g, mode, fail_mode = ran.guardrail, ran.mode, ran.fail_mode
            name = g.name
            if plan.nothing_to_scan:
                outcomes.append(not_run(g, "the payload has no text", mode=mode, fail_mode=fail_mode))
            elif name in failed:
                outcomes.append(failed_open(g, failed[name], mode=mode))
            elif name in matched or name in counts or scores.get(name, 0.0) != 0.0:
                outcomes.append(ran_outcome(g, result, counts, mode=mode, fail_mode=fail_mode))
            else:
                outcomes.append(ran.passed)  # the same outcome every time
        outcomes.extend(prepared.skipped)
        reason = direction_reason(plan.direction)
        if selection.rug_pull_skipped:
            outcomes.append(self._rug_outcome(plan, GuardrailStatus.NOT_RUN, 0, reason))
        return outcomes

    def _rug_outcome(
        self, plan: Plan, status: GuardrailStatus, count: int, reason: str = ""
    ) -> GuardrailOutcome:
        mode = plan.selection.modes.get(RUG_PULL_GUARDRAIL, GuardrailMode.ENFORCE)
        return GuardrailOutcome(
            name=RUG_PULL_GUARDRAIL,
            version=RUG_PULL_VERSION,
            status=status,
            action=effective_action(self.rug_pull_action, mode),
            finding_count=count,
            reason=reason,
            mode=mode,
            fail_mode=plan.selection.fail_modes.get(RUG_PULL_GUARDRAIL, FailMode.CLOSED),
        )

    def _rug_pull(self, plan: Plan) -> tuple[GuardrailOutcome, list[Finding]] | None:
        if not plan.selection.rug_pull or self.pins is None:
            return None
        if not self.pins.loaded:
            outcome = self._rug_outcome(plan, GuardrailStatus.FAILED_OPEN, 0, PINS_NOT_LOADED)
            return outcome, []
        record = plan.record
        scope = pin_scope(
            record.principal if record is not None else None,
            plan.request.caller.team_id,
        )
        checked = check_tools(
            plan.request.payload.tools, self.pins.for_scope(scope), self.rug_pull_action
        )
        if checked.not_run_reason:
            return self._rug_outcome(plan, GuardrailStatus.NOT_RUN, 0, checked.not_run_reason), []
        status = GuardrailStatus.INTERVENED if checked.findings else GuardrailStatus.PASSED
        return self._rug_outcome(plan, status, len(checked.findings)), checked.findings

    def _fail_closed(self, closed: Scanned) -> None:
        names = ", ".join(sorted(closed.failed))
        reason = next(iter(closed.failed.values()))
        if closed.timed_out:
            raise ScanDeadlineError(f"fail-closed guardrail(s) {names}: {reason}")
        raise UnavailableError(f"fail-closed guardrail(s) {names}: {reason}")

    def _segments(self, payload: pb.Payload) -> list[Segment]:
        check_payload(payload, self.limits)
        segments = extract_segments(payload, max_json_depth=self.limits.max_json_depth)
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


def _sort_findings(result: ScanResult, segments: Sequence[Segment]) -> None:
    """Two scans (closed, open) merged: back into payload order."""
    order = {(s.path, s.json_pointer): i for i, s in enumerate(segments)}
    result.findings.sort(
        key=lambda f: (order.get((f.path, f.json_pointer), len(order)), f.start, f.end)
    )


def _timed_out(names: list[str], reason: str) -> Scanned:
    return Scanned(ScanResult(), dict.fromkeys(names, reason), timed_out=True)


def _as_mode(finding: Finding, mode: GuardrailMode) -> Finding:
    if mode is GuardrailMode.MONITOR and finding.action is not Action.FLAG:
        return dataclasses.replace(finding, action=Action.FLAG)
    return finding


def build_default_checker() -> Checker:
    """A checker over the built-in guardrails, for in-process evaluation."""
    return Checker(Registry(builtin_specs()))


