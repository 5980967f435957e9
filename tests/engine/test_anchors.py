"""Two-stage search: windows around prefilter literals find what a whole-text search finds."""

from __future__ import annotations

import functools
import random
import string

import pytest

from service.checking import build_default_checker
from service.engine import anchors
from service.engine.anchors import anchored
from service.engine.normalize import normalized_view, raw_view


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"(?:\b(?P<value>AIza[0-9A-Za-z_-]{35})(?:[^A-Za-z0-9_-]|$))", ("aiza",)),
        (r"(?:\b(?:AKIA|ASIA|A3T[A-Z0-9])[A-Z2-7]{16}\b)", ("akia", "asia", "a3t")),
        (r"(?:(?i)\btoken\s*[:=]\s*[a-z0-9]{32})", ("token",)),
        (r"(?:[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4})", ("azdo",)),
        (r"(?:x(?:secret){2}y)", ("secret",)),
        (r"(?:\bamzn\.mws\.[0-9a-f]{8})", ("amzn.mws.",)),
    ],
)
def test_literal_in_every_match_is_proven(pattern: str, literals: tuple[str, ...]):
    assert anchored(pattern, literals)


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"(?:(?:ghp_)?[a-z]{36})", ("ghp_",)),  # the literal is optional
        (r"(?:(?:AKIA|[A-Z]{4})[0-9]{8})", ("akia",)),  # one branch lacks it
        (r"(?:abc?d)", ("abc",)),  # "c" may be missing
        (r"(?:gh[pousr]_[a-z]{36})", ("ghp_",)),  # split by a class
        (r"(?:x(?:secret){0,2}y)", ("secret",)),  # repeated zero times
        (r"(?:\Qsecret\E[0-9]{4})", ("secret",)),  # quoting is not read
        (r"(?:\141bc[0-9])", ("abc",)),  # an octal escape is not its letter
        (r"(?:pass[0-9]{4})", ("päss",)),  # non-ASCII literal
        (r"(?:token)|(?:[0-9]{8})", ("token",)),  # top-level alternation
    ],
)
def test_unproven_patterns_keep_the_whole_text_search(
    pattern: str, literals: tuple[str, ...]
):
    assert not anchored(pattern, literals)


@functools.cache
def _anchored_rules():
    scanner = build_default_checker().registry.snapshot.scanner
    rules = [
        rule
        for guardrail in scanner.guardrails.values()
        for rule in guardrail.rules
        if rule.anchor_width is not None
    ]
    assert len(rules) > 50, "most provider-token rules should qualify"
    return rules


def test_builtin_samples_hold_a_literal_within_the_width():
    """What the proof claims, checked on every sample the packs ship."""
    for rule in _anchored_rules():
        for sample in rule.spec.must_match:
            text = rule.view(sample).text
            for start, end in rule.regex.spans(text.encode(), 100):
                assert end - start <= 4 * rule.anchor_width, rule.id
            assert any(literal in text.lower() for literal in rule.prefilter), rule.id


def _noise(rng: random.Random, size: int) -> str:
    alphabet = string.ascii_letters + string.digits + "+/=_- \n:"
    return "".join(rng.choices(alphabet, k=size))


def test_windows_find_what_the_whole_text_search_finds():
    """Samples buried in 32 KB of noise: same spans, with and without windows."""
    rng = random.Random(5)
    windowed = 0
    for rule in _anchored_rules():
        pieces = [_noise(rng, 4 * 1024)]
        for sample in (*rule.spec.must_match, *rule.spec.must_not_match):
            pieces += [sample, _noise(rng, rng.randrange(1, 600))]
        # Overlapping literal occurrences and one right at the end.
        literal = rule.prefilter[0]
        pieces += [literal * 5, _noise(rng, 4 * 1024), rule.spec.must_match[0]]
        text = " ".join(pieces)
        view = raw_view(text) if rule.on_raw else normalized_view(text)
        lowered = view.data.lower()
        if rule.on_raw and not view.is_ascii:
            continue  # the scanner does not window these either
        width = rule.anchor_width if view.is_ascii else 4 * rule.anchor_width
        windows = anchors.windows(lowered, rule.prefilter, width, {})
        if windows is None:
            continue
        windowed += 1
        assert list(rule.matches(view, windows)) == list(rule.matches(view)), rule.id
    assert windowed > 50
