"""Pack parsing: every problem listed, with exact field names and text."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.engine import load_pack_file, spec_from_mapping
from service.engine.validators import SUPPORTED_VALIDATORS
from service.errors import FieldViolation, GuardrailDefinitionError
from service.types import Action, Direction, FailMode, Severity

INVALID = Path(__file__).parent / "fixtures" / "packs" / "invalid"

EXPECTED = {
    "backreference_pattern": "rules[0].pattern: RE2 cannot compile: invalid escape "
    "sequence: \\1",
    "bad_action": "action: must be one of block, mask, flag, got 'explode'",
    "bad_name": "name: must match ^[a-z][a-z0-9_-]{0,62}$, got 'Demo Pack'",
    "bad_severity_and_direction": "rules[0].severity: must be one of low, medium, "
    "high, critical, got 'urgent'; directions[1]: must be one of input, output, "
    "tool_description, tool_result, got 'sideways'",
    "duplicate_rule_id": "rules[1].id: duplicate rule id 'r1'",
    "empty_match_pattern": "rules[0].pattern: pattern can match the empty string",
    "lookahead_pattern": "rules[1].pattern: RE2 cannot compile: invalid perl "
    "operator: (?<=",
    "missing_samples": "rules[0].must_match: every rule needs at least one sample",
    "must_match_fails": "rules[0].must_match[1]: sample produced no finding of "
    "this rule",
    "must_not_match_fails": "rules[0].must_not_match[0]: sample produced a finding "
    "of this rule at [3, 6)",
    "pattern_and_keywords": "rules[0]: needs exactly one of pattern or keywords",
    "unknown_key": "colour: unknown key 'colour'; rules[0].flavour: unknown key "
    "'flavour'",
    "unknown_validator": "rules[0].validator: unknown validator 'crc32'; supported: "
    + ", ".join(sorted(SUPPORTED_VALIDATORS)),
    "unreachable_threshold": "score_threshold: 3 can never be reached: all rule "
    "weights sum to 1.5",
}


def test_every_fixture_has_an_expectation():
    """Each invalid fixture file is listed in EXPECTED and vice versa."""
    assert {path.stem for path in INVALID.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_invalid_pack_file(case):
    """Loading the fixture fails with the file name and the exact problems."""
    path = INVALID / f"{case}.yaml"
    with pytest.raises(GuardrailDefinitionError) as caught:
        load_pack_file(path)
    name = "Demo Pack" if case == "bad_name" else "demo"

    assert caught.value.message == (
        f"{case}.yaml: guardrail {name!r} is invalid: {EXPECTED[case]}"
    )


def test_spec_from_mapping_reads_every_field():
    """A complete mapping becomes the matching GuardrailSpec."""
    spec = spec_from_mapping(
        {
            "name": "demo",
            "description": "d",
            "action": "mask",
            "directions": ["input", "tool_result"],
            "default_on": True,
            "fail_mode": "open",
            "score_threshold": 1,
            "version": 3,
            "rules": [
                {
                    "id": "r1", "category": "pii", "severity": "critical",
                    "keywords": ["a b"], "keywords_match_substrings": True,
                    "prefilter": ["a"], "validator": "luhn", "must_match": ["x"],
                    "must_not_match": ["y"], "mask_label": "[X]", "weight": 2,
                    "ignore_case": True,
                }
            ],
        },
        builtin=True,
    )
    rule = spec.rules[0]

    assert spec.action is Action.MASK and spec.fail_mode is FailMode.OPEN
    assert spec.directions == {Direction.INPUT, Direction.TOOL_RESULT}
    assert spec.default_on and spec.builtin and spec.version == 3
    assert spec.score_threshold == 1.0
    assert rule.severity is Severity.CRITICAL and rule.keywords == ("a b",)
    assert rule.weight == 2.0 and rule.ignore_case and rule.mask_label == "[X]"


def test_spec_from_mapping_lists_all_type_errors():
    """Wrong types are all reported together, with their fields."""
    with pytest.raises(GuardrailDefinitionError) as caught:
        spec_from_mapping(
            {"name": 5, "rules": [{"id": "r", "category": "c", "weight": "x",
                                    "must_match": ["ok", 3]}]}
        )

    assert caught.value.violations == (
        FieldViolation("name", "must be a string, got int"),
        FieldViolation("rules[0].must_match[1]", "must be a string, got 3"),
        FieldViolation("rules[0].weight", "must be a finite number, got 'x'"),
        FieldViolation("action", "is required"),
    )


def test_yaml_boolean_is_not_a_string():
    """An unquoted YAML `true` in a literal list is reported, not coerced."""
    with pytest.raises(GuardrailDefinitionError) as caught:
        spec_from_mapping(
            {"name": "d", "action": "block",
             "rules": [{"id": "r", "category": "c", "prefilter": [True]}]}
        )

    assert caught.value.violations == (
        FieldViolation("rules[0].prefilter[0]", "must be a string, got True"),
    )


def test_unreadable_yaml_names_the_file(tmp_path):
    """A YAML syntax error is reported as a definition error for the file."""
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")

    with pytest.raises(GuardrailDefinitionError) as caught:
        load_pack_file(path)

    assert caught.value.message.startswith("broken.yaml: guardrail 'broken' is invalid")
