"""mask_text: replace finding spans with labels, merging overlaps."""

from __future__ import annotations

from service.engine import mask_text
from service.types import Action, Finding, Severity


def _finding(start, end, label="", category="pii"):
    return Finding(
        guardrail="pii", rule_id="r", category=category, severity=Severity.LOW,
        action=Action.MASK, path="p", start=start, end=end, mask_label=label,
    )


def test_masks_each_span():
    """Every span is replaced by its label; the rest of the text is kept."""
    text = "mail a@b.io or c@d.io now"
    findings = [_finding(5, 11, "[EMAIL]"), _finding(15, 21, "[EMAIL]")]

    assert mask_text(text, findings) == "mail [EMAIL] or [EMAIL] now"


def test_default_label_is_category():
    """Without a mask label the category in brackets is used."""
    assert mask_text("abc", [_finding(0, 3, category="secret")]) == "[SECRET]"


def test_overlapping_and_adjacent_spans_merge():
    """Overlapping or touching spans become one label, the first one's."""
    text = "0123456789"
    findings = [_finding(4, 8, "[B]"), _finding(2, 5, "[A]"), _finding(8, 9, "[C]")]

    assert mask_text(text, findings) == "01[A]9"


def test_no_findings_returns_text():
    """No findings, no change."""
    assert mask_text("plain", []) == "plain"
