"""Checks reuse a prepared selection, and answer exactly as if they did not."""

from __future__ import annotations

import pytest
from guardrail.v1 import guardrail_pb2 as pb

from service.checking import Checker
from service.engine.pack import builtin_specs
from service.errors import NotFoundError
from service.policy import parse_policy
from service.registry import Registry
from service.selection import MAX_CACHED_SELECTIONS, prepare, select_guardrails
from service.types import Action, Direction, GuardrailSpec, RuleSpec, Severity

CLEAN = "Please summarise the quarterly report for the team."
EMAIL = "Write to ann.example@example.org about the report."


def _request(text: str, *names: str, team: str = "", direction: int = 0) -> pb.CheckRequest:
    return pb.CheckRequest(
        payload=pb.Payload(text=text),
        guardrails=list(names),
        caller=pb.Caller(team_id=team),
        direction=direction,
    )


def _stable(response: pb.CheckResponse) -> pb.CheckResponse:
    """The response without what differs per call (id, timing)."""
    copy = pb.CheckResponse()
    copy.CopyFrom(response)
    copy.ClearField("request_id")
    copy.ClearField("scan_duration")
    return copy


def test_repeated_calls_answer_as_a_new_checker_would() -> None:
    """Clean and intervened calls, by direction and names, repeated through one checker."""
    registry = Registry(builtin_specs())
    policy = parse_policy({"teams": {"ops": {"modes": {"pii": "monitor"}}}})
    shared = Checker(registry, policy=policy)
    requests = [
        _request(CLEAN),
        _request(EMAIL),
        _request(EMAIL, team="ops"),
        _request(EMAIL, "pii", "secrets"),
        _request(CLEAN, "pii", "secrets"),
        _request(CLEAN, direction=pb.DIRECTION_TOOL_DESCRIPTION),
        _request(EMAIL, "pii", direction=pb.DIRECTION_OUTPUT),
    ]
    for _ in range(3):
        for request in requests:
            expected = Checker(registry, policy=policy).check(request)
            assert _stable(shared.check(request)) == _stable(expected)


def test_a_response_changed_by_its_reader_leaves_later_responses_alone() -> None:
    checker = Checker(Registry(builtin_specs()))
    first = checker.check(_request(CLEAN))
    for result in first.guardrail_results:
        result.status = pb.GUARDRAIL_STATUS_INTERVENED
        result.reason = "changed by the caller"
    second = checker.check(_request(CLEAN))
    assert all(r.status == pb.GUARDRAIL_STATUS_PASSED for r in second.guardrail_results)
    assert not any(r.reason for r in second.guardrail_results)


def _custom(name: str) -> GuardrailSpec:
    rule = RuleSpec(
        id="code",
        category="secret",
        severity=Severity.HIGH,
        pattern=r"\bproject-[0-9]{4}\b",
        must_match=("project-1234",),
        must_not_match=("project-12",),
    )
    return GuardrailSpec(name=name, rules=(rule,), action=Action.BLOCK)


def test_a_registry_change_is_seen_by_the_next_call() -> None:
    registry = Registry(builtin_specs())
    checker = Checker(registry)
    registry.register(_custom("project_codes"))
    named = _request("code project-1234 inside", "project_codes")
    assert checker.check(named).decision == pb.DECISION_BLOCK

    registry.delete("project_codes")
    with pytest.raises(NotFoundError):
        checker.check(named)


def test_a_new_policy_on_the_checker_is_used_at_once() -> None:
    registry = Registry(builtin_specs())
    checker = Checker(registry)
    assert checker.check(_request(EMAIL)).decision == pb.DECISION_MASK
    checker.policy = parse_policy({"default": {"modes": {"pii": "monitor"}}})
    assert checker.check(_request(EMAIL)).decision == pb.DECISION_FLAG


def test_many_distinct_teams_keep_the_cache_bounded() -> None:
    checker = Checker(Registry(builtin_specs()))
    for number in range(MAX_CACHED_SELECTIONS + 50):
        checker.check(_request(CLEAN, team=f"team-{number}"))
    assert len(checker._selections._entries) <= MAX_CACHED_SELECTIONS


def test_prepared_outcomes_match_a_selection_worked_out_per_call() -> None:
    snapshot = Registry(builtin_specs()).snapshot
    for direction in Direction:
        selection = select_guardrails(snapshot, [], direction)
        prepared = prepare(selection, direction)
        assert [r.guardrail.name for r in prepared.ran] == selection.names
        assert set(prepared.closed) | set(prepared.open) == set(selection.names)
        assert not set(prepared.closed) & set(prepared.open)
        for outcome in prepared.skipped:
            assert outcome.status.name == "NOT_RUN" and outcome.reason
