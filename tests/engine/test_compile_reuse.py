"""A guardrail compiled again under a new version reuses its compiled rules."""

from __future__ import annotations

import dataclasses

import pytest

from service.engine import compile_guardrail
from service.errors import GuardrailDefinitionError
from service.types import Action, GuardrailSpec, RuleSpec, Severity


def _spec(
    name: str = "reuse_check", pattern: str = r"\bsecret-[0-9]{4}\b"
) -> GuardrailSpec:
    rule = RuleSpec(
        id="code",
        category="secret",
        severity=Severity.HIGH,
        pattern=pattern,
        must_match=("secret-1234",),
        must_not_match=("secret-12",),
    )
    return GuardrailSpec(name=name, rules=(rule,), action=Action.BLOCK)


def test_a_new_version_reuses_the_rules_and_keeps_its_own_spec() -> None:
    first = compile_guardrail(_spec())
    second = compile_guardrail(dataclasses.replace(_spec(), version=2))

    assert second.rules is first.rules
    assert second.version == 2 and first.version == 1


def test_other_rules_or_another_name_compile_anew() -> None:
    first = compile_guardrail(_spec())

    other_pattern = compile_guardrail(_spec(pattern=r"\bsecret-[0-9]{4,5}\b"))
    other_name = compile_guardrail(_spec(name="reuse_check_two"))

    assert other_pattern.rules is not first.rules
    assert other_name.rules is not first.rules
    assert other_name.rules[0].guardrail == "reuse_check_two"


def test_guardrail_level_problems_are_still_reported() -> None:
    compile_guardrail(_spec())
    unreachable = dataclasses.replace(_spec(), score_threshold=5.0)

    with pytest.raises(GuardrailDefinitionError) as raised:
        compile_guardrail(unreachable)

    assert [v.field for v in raised.value.violations] == ["score_threshold"]
