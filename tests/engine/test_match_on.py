"""The match_on rule setting: which view of the text a rule sees."""

from __future__ import annotations

import pytest

from service.api.convert import spec_to_mapping, spec_to_pb
from service.engine import compile_guardrail, spec_from_mapping
from service.errors import GuardrailDefinitionError


def _spec(**rule):
    base = {"id": "r", "category": "c", "pattern": "[\\x{200B}]", "must_match": ["a\u200bb"]}
    return spec_from_mapping({"name": "g", "action": "flag", "rules": [{**base, **rule}]})


def test_match_on_defaults_to_normalized():
    """Without the key a rule matches on the normalised view."""
    spec = _spec(pattern="cat", must_match=["cat"])

    assert spec.rules[0].match_on == "normalized"
    assert not compile_guardrail(spec).rules[0].on_raw


def test_raw_rules_see_invisible_characters():
    """match_on raw keeps the characters the normaliser drops."""
    assert compile_guardrail(_spec(match_on="raw")).rules[0].on_raw


def test_normalized_rules_cannot_see_zero_width_characters():
    """The same pattern on the normalised view finds nothing, so its sample fails."""
    with pytest.raises(GuardrailDefinitionError, match="must_match"):
        compile_guardrail(_spec())


def test_unknown_view_is_rejected_with_its_field():
    """An unknown match_on value is a field violation naming the allowed values."""
    with pytest.raises(GuardrailDefinitionError) as caught:
        compile_guardrail(_spec(match_on="bytes"))

    assert [v.field for v in caught.value.violations] == ["rules[0].match_on"]
    assert "normalized, raw" in caught.value.violations[0].description


def test_match_on_survives_the_proto_round_trip():
    """Register payloads carry match_on (proto field 14) both ways."""
    spec = _spec(match_on="raw")

    assert spec_from_mapping(spec_to_mapping(spec_to_pb(spec))).rules[0].match_on == "raw"
