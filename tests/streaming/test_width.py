"""The RE2 width reader and the hold-back it derives from compiled rules."""

from __future__ import annotations

import pytest

from service.engine import builtin_specs, spec_from_mapping
from service.engine.width import encoded_width, guardrail_width, keywords_width, pattern_width
from service.registry import Registry
from service.streaming import engine_for
from tests.streaming.helpers import key_mask_mapping, registry_with


@pytest.mark.parametrize(
    ("pattern", "width"),
    [
        (r"\bAKIA[A-Z2-7]{16}\b", 20),
        (r"abc", 3),
        (r"a|bc|(?:de){3}", 6),
        (r"(?i)x{2,5}?y", 6),
        (r"(?i:ab)?c", 3),
        (r"(a|bcd)?e", 4),
        (r"(?P<value>ab)c", 3),
        (r"\Qa.b|c\E", 5),
        (r"[\]a-z]{4}", 4),
        (r"[[:alpha:]-]{2}", 2),
        (r"x{,3}", 5),  # RE2 reads "{,3}" as literal text
        (r"a{3}{", 4),
        (r"\x{1F600}\x41\pL\p{Greek}\PN\101", 6),
        (r"^\d{3}-\d{2}$", 6),
        (r"(?m:^[ \t]*#{2,4})", None),
        (r"\bcat\B\A\z", 3),
        (r"a+", None),
        (r"a*", None),
        (r"(?:ab)+?", None),
        (r"[A-Z]{20,}", None),
        (r"(?:\b)*x", 1),
        (r"", 0),
    ],
)
def test_pattern_width_table(pattern, width):
    """Each RE2 construct adds its longest width; unbounded repetition is None."""
    assert pattern_width(pattern) == width


@pytest.mark.parametrize(
    ("keywords", "width"),
    [(["cat", "tigers"], 6), (["one"], 3), (["ignore previous", "x"], None)],
)
def test_keywords_width(keywords, width):
    """Keyword rules are as wide as their longest keyword; phrases span whitespace runs."""
    assert keywords_width(keywords) == width


def test_every_builtin_rule_is_read_without_error():
    """The reader gives an int or None for every built-in pattern."""
    for spec in builtin_specs():
        result = guardrail_width(spec)
        assert result.width >= 0
        assert set(result.unbounded_rules) <= {rule.id for rule in spec.rules}


def test_guardrail_width_names_its_unbounded_rules():
    """A guardrail's width is its widest bounded rule, and unbounded ones are listed."""
    spec = spec_from_mapping(
        {
            "name": "mixed",
            "action": "flag",
            "rules": [
                {"id": "short", "category": "c", "pattern": r"\bab\d{2}\b", "must_match": ["ab12"]},
                {"id": "long", "category": "c", "pattern": r"zz\d+", "must_match": ["zz1"]},
            ],
        }
    )

    result = guardrail_width(spec)

    assert (result.width, result.unbounded_rules) == (4, ("long",))


def test_holdback_follows_the_selected_rules_and_reports_the_cap():
    """A bounded guardrail holds back its encoded width; an unbounded one holds the cap."""
    registry = registry_with(key_mask_mapping())
    engine = engine_for(registry.snapshot)

    keys = engine.holdback(["cloud-keys"], 256)
    pii = engine.holdback(["pii"], 256)

    assert keys.chars == encoded_width(20) and keys.capped_rules == ()
    assert pii.chars == 256 and "pii/email" in pii.capped_rules


def test_engine_is_cached_per_snapshot():
    """The stream engine is built once per snapshot and rebuilt for a new one."""
    registry = Registry(builtin_specs())
    first = engine_for(registry.snapshot)

    assert engine_for(registry.snapshot) is first
    registry.register(spec_from_mapping(key_mask_mapping()))
    assert engine_for(registry.snapshot) is not first
