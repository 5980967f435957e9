"""Protobuf ⇄ domain conversions, both directions, and nothing else."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from guardrail.v1 import guardrail_pb2 as pb

from service.types import (
    Action,
    Caller,
    Decision,
    Direction,
    FailMode,
    Finding,
    GuardrailOutcome,
    GuardrailSpec,
    GuardrailStatus,
    RuleSpec,
    Severity,
)

__all__ = [
    "ACTION_FROM_PB",
    "DIRECTION_FROM_PB",
    "caller_from_pb",
    "decision_to_pb",
    "direction_to_pb",
    "finding_to_pb",
    "findings_to_pb",
    "outcome_to_pb",
    "spec_to_pb",
    "spec_to_mapping",
]

DIRECTION_FROM_PB = {
    pb.DIRECTION_INPUT: Direction.INPUT,
    pb.DIRECTION_OUTPUT: Direction.OUTPUT,
    pb.DIRECTION_TOOL_DESCRIPTION: Direction.TOOL_DESCRIPTION,
    pb.DIRECTION_TOOL_RESULT: Direction.TOOL_RESULT,
}
_DIRECTION_TO_PB = {v: k for k, v in DIRECTION_FROM_PB.items()}

ACTION_FROM_PB = {
    pb.ACTION_BLOCK: Action.BLOCK,
    pb.ACTION_MASK: Action.MASK,
    pb.ACTION_FLAG: Action.FLAG,
}
_ACTION_TO_PB = {v: k for k, v in ACTION_FROM_PB.items()}

_SEVERITY_FROM_PB = {
    pb.SEVERITY_LOW: Severity.LOW,
    pb.SEVERITY_MEDIUM: Severity.MEDIUM,
    pb.SEVERITY_HIGH: Severity.HIGH,
    pb.SEVERITY_CRITICAL: Severity.CRITICAL,
}
_SEVERITY_TO_PB = {v: k for k, v in _SEVERITY_FROM_PB.items()}

_FAIL_MODE_FROM_PB = {pb.FAIL_MODE_OPEN: FailMode.OPEN, pb.FAIL_MODE_CLOSED: FailMode.CLOSED}
_FAIL_MODE_TO_PB = {v: k for k, v in _FAIL_MODE_FROM_PB.items()}

_DECISION_TO_PB = {
    Decision.ALLOW: pb.DECISION_ALLOW,
    Decision.MASK: pb.DECISION_MASK,
    Decision.BLOCK: pb.DECISION_BLOCK,
    Decision.FLAG: pb.DECISION_FLAG,
}

_STATUS_TO_PB = {
    GuardrailStatus.PASSED: pb.GUARDRAIL_STATUS_PASSED,
    GuardrailStatus.INTERVENED: pb.GUARDRAIL_STATUS_INTERVENED,
    GuardrailStatus.FAILED_OPEN: pb.GUARDRAIL_STATUS_FAILED_OPEN,
    GuardrailStatus.NOT_RUN: pb.GUARDRAIL_STATUS_NOT_RUN,
}


def direction_to_pb(direction: Direction) -> int:
    return _DIRECTION_TO_PB[direction]


def decision_to_pb(decision: Decision) -> int:
    return _DECISION_TO_PB[decision]


def caller_from_pb(caller: pb.Caller) -> Caller:
    return Caller(
        user=caller.user,
        team_id=caller.team_id,
        end_user=caller.end_user,
        session_id=caller.session_id,
        request_tags=tuple(caller.request_tags),
    )


def finding_to_pb(finding: Finding) -> pb.Finding:
    return pb.Finding(
        guardrail=finding.guardrail,
        rule_id=finding.rule_id,
        category=finding.category,
        severity=_SEVERITY_TO_PB[finding.severity],
        action=_ACTION_TO_PB[finding.action],
        location=pb.Location(
            path=finding.path,
            json_pointer=finding.json_pointer,
            start=finding.start,
            end=finding.end,
        ),
        redacted_preview=finding.redacted_preview,
        decoded=finding.decoded,
    )


def findings_to_pb(findings: Iterable[Finding], offset: int = 0) -> list[pb.Finding]:
    converted = [finding_to_pb(f) for f in findings]
    if offset:
        for item in converted:
            item.location.start += offset
            item.location.end += offset
    return converted


def outcome_to_pb(outcome: GuardrailOutcome) -> pb.GuardrailResult:
    return pb.GuardrailResult(
        name=outcome.name,
        version=outcome.version,
        status=_STATUS_TO_PB[outcome.status],
        reason=outcome.reason,
        finding_count=outcome.finding_count,
        action=_ACTION_TO_PB[outcome.action],
        score=outcome.score,
    )


def _rule_to_pb(rule: RuleSpec) -> pb.Rule:
    return pb.Rule(
        id=rule.id,
        category=rule.category,
        severity=_SEVERITY_TO_PB[rule.severity],
        pattern=rule.pattern,
        keywords=rule.keywords,
        keywords_match_substrings=rule.keywords_match_substrings,
        prefilter=rule.prefilter,
        validator=rule.validator,
        must_match=rule.must_match,
        must_not_match=rule.must_not_match,
        mask_label=rule.mask_label,
        weight=rule.weight,
        ignore_case=rule.ignore_case,
        match_on=rule.match_on,
    )


def spec_to_pb(spec: GuardrailSpec, *, include_rules: bool = True) -> pb.Guardrail:
    return pb.Guardrail(
        name=spec.name,
        description=spec.description,
        rules=[_rule_to_pb(r) for r in spec.rules] if include_rules else [],
        action=_ACTION_TO_PB[spec.action],
        directions=sorted(_DIRECTION_TO_PB[d] for d in spec.directions),
        default_on=spec.default_on,
        fail_mode=_FAIL_MODE_TO_PB[spec.fail_mode],
        score_threshold=spec.score_threshold,
        version=spec.version,
        builtin=spec.builtin,
        mode=pb.GuardrailMode.Value(f"GUARDRAIL_MODE_{spec.mode.name}"),
    )


def _names(enum_type: object) -> dict[int, str]:
    descriptor = enum_type.DESCRIPTOR  # type: ignore[attr-defined]
    return {v.number: v.name for v in descriptor.values}


def _enum_name(value: int, names: dict[int, str], prefix: str) -> str:
    """The pack-file spelling of an enum value; '' for unspecified."""
    if value == 0:
        return ""
    return names.get(value, f"unknown({value})").removeprefix(prefix).lower()


def _rule_to_mapping(rule: pb.Rule) -> dict[str, object]:
    data: dict[str, object] = {
        "id": rule.id,
        "category": rule.category,
        "severity": _enum_name(rule.severity, _names(pb.Severity), "SEVERITY_")
        or "medium",
        "must_match": list(rule.must_match),
        "must_not_match": list(rule.must_not_match),
    }
    optional: dict[str, object] = {
        "pattern": rule.pattern,
        "keywords": list(rule.keywords),
        "keywords_match_substrings": rule.keywords_match_substrings,
        "prefilter": list(rule.prefilter),
        "validator": rule.validator,
        "mask_label": rule.mask_label,
        "weight": rule.weight,
        "ignore_case": rule.ignore_case,
        "match_on": rule.match_on,
    }
    data.update({k: v for k, v in optional.items() if v})
    return data


def spec_to_mapping(guardrail: pb.Guardrail) -> dict[str, object]:
    """A Register item in pack-file form, so one validator serves both."""
    directions = _names(pb.Direction)
    data: dict[str, object] = {
        "name": guardrail.name,
        "description": guardrail.description,
        "rules": [_rule_to_mapping(r) for r in guardrail.rules],
        "action": _enum_name(guardrail.action, _names(pb.Action), "ACTION_"),
        "directions": [_enum_name(d, directions, "DIRECTION_") for d in guardrail.directions],
        "default_on": guardrail.default_on,
        "score_threshold": guardrail.score_threshold,
    }
    if guardrail.fail_mode:
        data["fail_mode"] = _enum_name(guardrail.fail_mode, _names(pb.FailMode), "FAIL_MODE_")
    if guardrail.mode:
        data["mode"] = _enum_name(guardrail.mode, _names(pb.GuardrailMode), "GUARDRAIL_MODE_")
    return data

