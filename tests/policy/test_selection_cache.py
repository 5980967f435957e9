"""Checks reuse a prepared selection, and answer exactly as if they did not."""

from __future__ import annotations

import sys
import threading

import pytest
from guardrail.v1 import guardrail_pb2 as pb

from service.checking import Checker
from service.engine.pack import builtin_specs
from service.errors import NotFoundError
from service.policy import parse_policy
from service.registry import Registry
from service.engine import compile_guardrail, spec_from_mapping
from service.policy import EMPTY_POLICY
from service.registry import Snapshot
from service.selection import (
    MAX_CACHED_SELECTIONS,
    SelectionCache,
    prepare,
    select_guardrails,
)
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
    assert len(checker._selections) <= MAX_CACHED_SELECTIONS


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


def test_repeated_names_share_one_small_entry() -> None:
    """A request naming one guardrail 50,000 times keys the cache like one naming it once."""
    checker = Checker(Registry(builtin_specs()))
    once = checker.check(_request(EMAIL, "pii"))
    repeated = checker.check(_request(EMAIL, *["pii"] * 50_000))
    assert _stable(repeated) == _stable(once)
    assert len(checker._selections) == 1
    ((_, names, *_),) = checker._selections._state[2]
    assert names == ("pii",)


def test_threads_on_two_snapshots_never_get_each_others_selection() -> None:
    """A thread still on the previous snapshot never stores into the current one's entries."""
    builtins = [compile_guardrail(spec) for spec in builtin_specs()]
    extra = compile_guardrail(
        spec_from_mapping(
            {
                "name": "extra",
                "action": "block",
                "default_on": True,
                "rules": [{"id": "r", "category": "c", "pattern": r"\bZORK-[0-9]{4}\b",
                           "must_match": ["ZORK-1234"]}],
            }
        )
    )
    old, new = Snapshot.build(1, builtins), Snapshot.build(2, [*builtins, extra])
    cache = SelectionCache()
    wrong: list[int] = []

    def ask(snapshot: Snapshot) -> bool:
        prepared = cache.get(
            snapshot, EMPTY_POLICY, Direction.INPUT, (),
            principal=None, request_team="", rug_pull_default=False,
        )  # fmt: skip
        return "extra" in prepared.selection.applied

    def hammer(snapshot: Snapshot) -> None:
        for _ in range(5_000):
            if ask(snapshot) != (snapshot is new):
                wrong.append(snapshot.generation)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=hammer, args=(s,)) for s in (old, new)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not wrong, f"{len(wrong)} selections of the other snapshot"
    assert ask(new)
