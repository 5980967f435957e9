"""Pure decision: scan results and guardrail actions → verdict and outcomes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from service.engine import CompiledGuardrail, ScanResult
from service.types import Action, Decision, Direction, GuardrailOutcome, GuardrailStatus

__all__ = ["decide", "decision_for", "direction_reason", "not_run"]

_PRECEDENCE = (
    (Action.BLOCK, Decision.BLOCK),
    (Action.MASK, Decision.MASK),
    (Action.FLAG, Decision.FLAG),
)


def decision_for(intervened: set[Action]) -> Decision:
    """Block wins over mask, mask over flag; nothing intervened is an allow."""
    for action, decision in _PRECEDENCE:
        if action in intervened:
            return decision
    return Decision.ALLOW


def _outcome(
    guardrail: CompiledGuardrail, result: ScanResult, counts: Counter[str]
) -> GuardrailOutcome:
    status = (
        GuardrailStatus.INTERVENED
        if guardrail.name in result.matched
        else GuardrailStatus.PASSED
    )
    return GuardrailOutcome(
        name=guardrail.name,
        version=guardrail.version,
        status=status,
        action=guardrail.action,
        finding_count=counts[guardrail.name],
        score=result.scores.get(guardrail.name, 0.0),
    )


def not_run(guardrail: CompiledGuardrail, reason: str) -> GuardrailOutcome:
    return GuardrailOutcome(
        name=guardrail.name,
        version=guardrail.version,
        status=GuardrailStatus.NOT_RUN,
        action=guardrail.action,
        reason=reason,
    )


def decide(
    ran: Sequence[CompiledGuardrail],
    skipped: Sequence[GuardrailOutcome],
    result: ScanResult,
) -> tuple[Decision, list[GuardrailOutcome]]:
    counts = Counter(f.guardrail for f in result.findings)
    outcomes = [_outcome(g, result, counts) for g in ran]
    intervened = {o.action for o in outcomes if o.status is GuardrailStatus.INTERVENED}
    return decision_for(intervened), [*outcomes, *skipped]


def direction_reason(direction: Direction) -> str:
    return f"does not apply to direction {direction.value}"
