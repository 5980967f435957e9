"""Property: a finding's original span, normalised, is exactly what matched."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import compile_guardrail, spec_from_mapping
from service.engine.normalize import normalize_text, normalized_view

_INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
_BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
_FULLWIDTH = [chr(cp) for cp in range(0xFF21, 0xFF3B)] + [chr(cp) for cp in range(0xFF41, 0xFF5B)]
_PLAIN = list("abcdefghijklmnopqrstuvwxyzABC0123456789 .-@é😀")

_TEXTS = st.lists(
    st.sampled_from(_PLAIN + _INVISIBLE + _BIDI + _FULLWIDTH + ["ﬁ", "\U000E0041"]),
    max_size=60,
).map("".join)

_RULE = compile_guardrail(
    spec_from_mapping(
        {
            "name": "words",
            "action": "flag",
            "rules": [{"id": "word", "category": "w", "pattern": "[A-Za-z0-9]+",
                       "must_match": ["abc"]}],
        }
    )
).rules[0]


@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_original_span_normalises_to_the_match(text):
    """Every match maps to an original span whose normalised text equals the match."""
    view = normalized_view(text)

    for start, end, matched in _RULE.matches(view):
        first, last = view.original_span(start, end)
        assert 0 <= first <= last <= len(text)
        original = text[first:last]
        if "ﬁ" in original:  # a ligature at an edge expands past the match
            assert matched in normalize_text(original)
        else:
            assert normalize_text(original) == matched
