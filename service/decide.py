"""Pure decision: scan results, guardrail actions and modes → verdict and outcomes.

Modes (service/policy.py resolves them per call):

* enforce: an intervening guardrail applies its action (block > mask > flag);
* monitor: it intervenes with FLAG at most, whatever its action;
* dry_run: it is reported (status, findings count) but adds nothing to the
  decision; what it would have added is the separate dry-run decision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from service.engine import CompiledGuardrail, ScanResult
from service.types import (
    Action,
    Decision,
    Direction,
    FailMode,
    GuardrailMode,
    GuardrailOutcome,
    GuardrailStatus,
)

__all__ = [
    "decide",
    "decision_for",
    "direction_reason",
    "effective_action",
    "failed_open",
    "not_run",
    "ran_outcome",
]

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


def effective_action(action: Action, mode: GuardrailMode) -> Action:
    """Monitor never does more than flag."""
    return Action.FLAG if mode is GuardrailMode.MONITOR else action


def ran_outcome(
    guardrail: CompiledGuardrail,
    result: ScanResult,
    counts: Counter[str],
    *,
    mode: GuardrailMode = GuardrailMode.ENFORCE,
    fail_mode: FailMode = FailMode.CLOSED,
) -> GuardrailOutcome:
    matched = guardrail.name in result.matched
    return GuardrailOutcome(
        name=guardrail.name,
        version=guardrail.version,
        status=GuardrailStatus.INTERVENED if matched else GuardrailStatus.PASSED,
        action=effective_action(guardrail.action, mode),
        finding_count=counts[guardrail.name],
        score=result.scores.get(guardrail.name, 0.0),
        mode=mode,
        fail_mode=fail_mode,
    )


def not_run(
    guardrail: CompiledGuardrail,
    reason: str,
    *,
    mode: GuardrailMode = GuardrailMode.ENFORCE,
    fail_mode: FailMode | None = None,
) -> GuardrailOutcome:
    return GuardrailOutcome(
        name=guardrail.name,
        version=guardrail.version,
        status=GuardrailStatus.NOT_RUN,
        action=effective_action(guardrail.action, mode),
        reason=reason,
        mode=mode,
        fail_mode=fail_mode or guardrail.spec.fail_mode,
    )


def failed_open(
    guardrail: CompiledGuardrail, reason: str, *, mode: GuardrailMode
) -> GuardrailOutcome:
    return GuardrailOutcome(
        name=guardrail.name,
        version=guardrail.version,
        status=GuardrailStatus.FAILED_OPEN,
        action=effective_action(guardrail.action, mode),
        reason=reason,
        mode=mode,
        fail_mode=FailMode.OPEN,
    )


def _intervened(outcomes: Iterable[GuardrailOutcome], dry_run: bool) -> set[Action]:
    return {
        o.action
        for o in outcomes
        if o.status is GuardrailStatus.INTERVENED
        and (o.mode is GuardrailMode.DRY_RUN) == dry_run
    }


def decide(outcomes: Sequence[GuardrailOutcome]) -> tuple[Decision, Decision | None]:
    """(decision, dry-run decision or None when no dry-run guardrail ran)."""
    decision = decision_for(_intervened(outcomes, dry_run=False))
    dry = [o for o in outcomes if o.mode is GuardrailMode.DRY_RUN]
    ran = [o for o in dry if o.status in (GuardrailStatus.PASSED, GuardrailStatus.INTERVENED)]
    if not ran:
        return decision, None
    return decision, decision_for(_intervened(ran, dry_run=True))


def direction_reason(direction: Direction) -> str:
    return f"does not apply to direction {direction.value}"
