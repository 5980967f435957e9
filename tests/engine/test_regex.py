"""The re2 boundary: limits and RE2's own error messages."""

from __future__ import annotations

import pytest

from service.engine.regex import (
    MAX_PATTERN_LENGTH,
    PatternError,
    RegexSet,
    compile_regex,
    keywords_pattern,
)


def test_lookahead_reports_re2_message():
    """Unsupported constructs come back with RE2's message."""
    with pytest.raises(PatternError, match=r"^RE2 cannot compile: invalid perl operator: \(\?=$"):
        compile_regex("a(?=b)")


def test_pattern_length_is_capped():
    """Patterns over the length cap are refused before RE2 sees them."""
    with pytest.raises(PatternError, match="limit is 4096"):
        compile_regex("a" * (MAX_PATTERN_LENGTH + 1))


def test_program_size_is_capped():
    """A pattern whose RE2 program is too big is refused."""
    with pytest.raises(PatternError, match="too complex"):
        compile_regex("[a-z]{1000}" * 21)


def test_value_group_narrows_span():
    """A group named value becomes the reported span."""
    regex = compile_regex(r"key=(?P<value>\w+)")

    assert list(regex.spans(b"a key=abc", 10)) == [(6, 9)]


def test_set_reports_matching_indices():
    """A RegexSet says which of its patterns occur."""
    patterns = RegexSet(["(?:cat)", "(?:dog)", "(?i:bird)"])

    assert sorted(patterns.match(b"a BIRD and a cat")) == [0, 2]


def test_keyword_edges_only_bound_word_characters():
    """Non-ASCII keyword edges get no \\b, ASCII word edges do."""
    assert keywords_pattern(["über", "a b"], substrings=False) == (
        r"(?i:über\b|\ba\s+b\b)"
    )
