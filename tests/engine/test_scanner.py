"""Scanner: one pass, prefilter, exact spans, thresholds and name filter."""

from __future__ import annotations

import pytest

from service.engine import Scanner, compile_guardrail, spec_from_mapping
from service.types import Action, Segment


def _guardrail(name="demo", threshold=0, action="block", rules=None):
    return compile_guardrail(
        spec_from_mapping(
            {
                "name": name,
                "action": action,
                "score_threshold": threshold,
                "rules": rules
                or [{"id": "cat", "category": "animal", "pattern": r"\bcat\b",
                     "must_match": ["a cat"]}],
            }
        )
    )


WEIGHTED = [
    {"id": "strong", "category": "inj", "keywords": ["override everything"],
     "weight": 1.0, "must_match": ["override everything"]},
    {"id": "weak-a", "category": "inj", "keywords": ["please"], "weight": 0.5,
     "must_match": ["please"]},
    {"id": "weak-b", "category": "inj", "keywords": ["now"], "weight": 0.5,
     "must_match": ["now"]},
]


def test_finding_fields_and_offsets():
    """A finding names guardrail, rule, action, location and a redacted preview."""
    scanner = Scanner([_guardrail(action="mask")])
    segment = Segment("messages[0].content", "my cat sleeps", json_pointer="/a")

    result = scanner.scan([segment], ["demo"])
    finding = result.findings[0]

    assert (finding.guardrail, finding.rule_id, finding.action) == ("demo", "cat", Action.MASK)
    assert (finding.path, finding.json_pointer) == ("messages[0].content", "/a")
    assert (finding.start, finding.end) == (3, 6)
    assert finding.redacted_preview == "***(3)" and finding.mask_label == "[ANIMAL]"
    assert result.matched == {"demo"} and result.scores == {"demo": 1.0}


def test_spans_on_non_ascii_text_are_code_points():
    """Offsets are code points of the original text, through normalisation."""
    scanner = Scanner([_guardrail()])
    text = "😀 Grüße ｃａｔ and c\u200bat"

    findings = scanner.scan([Segment("p", text)], ["demo"]).findings

    assert [text[f.start:f.end] for f in findings] == ["ｃａｔ", "c\u200bat"]


def test_prefilter_gates_the_pattern():
    """A gated rule only runs when a prefilter literal occurs in the text."""
    rules = [{"id": "key", "category": "secret", "pattern": r"[A-Z]{4}[0-9]{4}",
              "prefilter": ["key"], "must_match": ["key ABCD1234"]}]
    scanner = Scanner([_guardrail(rules=rules)])

    assert scanner.scan([Segment("p", "KEY: ABCD1234")], ["demo"]).findings
    assert not scanner.scan([Segment("p", "id: ABCD1234")], ["demo"]).findings


def test_names_filter_limits_guardrails():
    """Only guardrails named in the call are reported; unknown names are ignored."""
    scanner = Scanner([_guardrail("one"), _guardrail("two")])

    result = scanner.scan([Segment("p", "cat")], ["two", "nope"])

    assert {f.guardrail for f in result.findings} == {"two"}
    assert result.scores == {"two": 1.0} and result.matched == {"two"}


@pytest.mark.parametrize(
    ("text", "score", "matched", "count"),
    [
        ("please", 0.5, False, 0),
        ("please now", 1.0, True, 2),
        ("please please", 0.5, False, 0),
        ("override   everything", 1.0, True, 1),
    ],
)
def test_threshold_needs_distinct_rules(text, score, matched, count):
    """Weights of distinct rules add up; below the threshold findings are dropped."""
    scanner = Scanner([_guardrail(threshold=1.0, rules=WEIGHTED)])

    result = scanner.scan([Segment("p", text)], ["demo"])

    assert result.scores["demo"] == score
    assert ("demo" in result.matched) is matched
    assert len(result.findings) == count


def test_findings_are_ordered_by_segment_then_start():
    """Findings come in segment order, then by start offset."""
    scanner = Scanner([_guardrail()])
    segments = [Segment("a", "x cat cat"), Segment("b", "cat")]

    findings = scanner.scan(segments, ["demo"]).findings

    assert [(f.path, f.start) for f in findings] == [("a", 2), ("a", 6), ("b", 0)]


def test_raw_rules_see_invisible_characters():
    """Rules with match_on raw run on the raw text; others on the normalised one."""
    rules = [{"id": "zw", "category": "anything", "match_on": "raw",
              "pattern": r"[\x{200B}]", "must_match": ["a\u200bb"]}]
    scanner = Scanner([_guardrail("smuggle", rules=rules), _guardrail()])

    result = scanner.scan([Segment("p", "c\u200bat")], ["smuggle", "demo"])

    assert {(f.rule_id, f.start, f.end) for f in result.findings} == {
        ("zw", 1, 2), ("cat", 0, 4),
    }


def test_duplicate_guardrail_names_are_rejected():
    """A scanner refuses two guardrails with one name."""
    with pytest.raises(ValueError):
        Scanner([_guardrail(), _guardrail()])


def test_keywords_match_words_and_whitespace_runs():
    """Keywords match case-insensitively on word boundaries across whitespace runs."""
    rules = [{"id": "kw", "category": "c", "keywords": ["do anything now"],
              "must_match": ["DO  anything\nnow"], "must_not_match": ["redo anything nowhere"]}]

    compiled = _guardrail(rules=rules)

    assert compiled.rules[0].id == "kw"
