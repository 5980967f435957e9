"""Scan segments with many compiled guardrails in one multi-pattern pass.

Per segment: encode (ASCII: nothing else) -> one RE2 Set pass that holds every
prefilter literal and every ungated pattern -> exact spans only for the rules
that the pass nominates -> validators -> offsets mapped to the original text.
Rules with a prefilter stay out of the Set: their (often counted, costly)
patterns run alone, and only when one of their literals occurs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from service.engine.compiler import CompiledGuardrail, CompiledRule
from service.engine.normalize import TextView, normalized_view, raw_view
from service.engine.redact import redacted_preview
from service.engine.regex import RegexSet, escape_literal
from service.types import Finding, Segment

__all__ = ["ScanResult", "Scanner", "has_wide_repetition"]


@dataclass(slots=True)
class ScanResult:
    """Findings of the requested guardrails, their scores, and which fired."""

    findings: list[Finding] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    matched: set[str] = field(default_factory=set)


def has_wide_repetition(pattern: str) -> bool:
    """Whether the pattern counts a repetition of 8 or more (``{8}``, ``{20,40}``).

    Such patterns multiply DFA states when many share one Set, which on
    base64- or digit-heavy input drops a Set to megabytes per second; they
    stay out of the Set and run alone when a prefilter literal occurs.
    """
    position = pattern.find("{")
    while position != -1:
        end = position + 1
        while end < len(pattern) and (pattern[end].isdigit() or pattern[end] == ","):
            end += 1
        counts = [int(part) for part in pattern[position + 1 : end].split(",") if part]
        if end < len(pattern) and pattern[end] == "}" and counts and max(counts) >= 8:
            return True
        position = pattern.find("{", position + 1)
    return False


class _Pass:
    """One RE2 Set over some rules; its hits nominate rules for exact search.

    A rule without a prefilter is nominated when its pattern hits. A gated rule
    with a cheap pattern needs its pattern AND one of its literals to hit; a
    gated rule with a costly pattern is nominated by a literal alone.
    """

    __slots__ = ("_literal_only", "_needs_literal", "_nominees", "_set")

    def __init__(self, rules: Sequence[tuple[int, CompiledRule]]) -> None:
        sources: list[str] = []
        nominees: list[tuple[bool, tuple[int, ...]]] = []
        gated: dict[str, list[int]] = {}
        needs_literal: set[int] = set()
        literal_only: set[int] = set()
        for index, rule in rules:
            for literal in rule.prefilter:
                gated.setdefault(literal, []).append(index)
            costly = has_wide_repetition(rule.regex.source)
            if rule.prefilter and costly:
                literal_only.add(index)
                continue
            if rule.prefilter:
                needs_literal.add(index)
            sources.append(rule.regex.source)
            nominees.append((False, (index,)))
        for literal, indices in gated.items():
            sources.append("(?i:" + escape_literal(literal) + ")")
            nominees.append((True, tuple(indices)))
        self._set = RegexSet(sources) if sources else None
        self._nominees = tuple(nominees)
        self._needs_literal = frozenset(needs_literal)
        self._literal_only = frozenset(literal_only)

    def candidates(self, data: bytes) -> set[int]:
        """Rule indices worth an exact search in ``data``."""
        if self._set is None:
            return set()
        by_pattern: set[int] = set()
        by_literal: set[int] = set()
        for hit in self._set.match(data):
            is_literal, indices = self._nominees[hit]
            (by_literal if is_literal else by_pattern).update(indices)
        needs_literal = self._needs_literal
        chosen = {i for i in by_pattern if i not in needs_literal or i in by_literal}

        return chosen | (by_literal & self._literal_only)


@dataclass(slots=True)
class _Hit:
    segment: int
    start: int
    end: int
    rule: int
    preview: str


class Scanner:
    """Immutable scanner over a fixed set of compiled guardrails."""

    __slots__ = ("_ascii", "_guardrails", "_normalized", "_raw", "_rules")

    def __init__(self, guardrails: Sequence[CompiledGuardrail]) -> None:
        names = [guardrail.name for guardrail in guardrails]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate guardrail names in {names}")
        self._guardrails = {guardrail.name: guardrail for guardrail in guardrails}
        self._rules = tuple(rule for g in guardrails for rule in g.rules)
        indexed = list(enumerate(self._rules))
        # ASCII text looks the same raw and normalised: one pass over all.
        self._ascii = _Pass(indexed)
        self._normalized = _Pass([(i, r) for i, r in indexed if not r.on_raw])
        self._raw = _Pass([(i, r) for i, r in indexed if r.on_raw])

    @property
    def guardrails(self) -> dict[str, CompiledGuardrail]:
        return dict(self._guardrails)

    def scan(self, segments: Sequence[Segment], names: Collection[str]) -> ScanResult:
        """Run the guardrails in ``names`` (unknown names are ignored) over segments."""
        wanted = names if isinstance(names, (set, frozenset)) else frozenset(names)
        hits: list[_Hit] = []
        for number, segment in enumerate(segments):
            self._scan_segment(number, segment.text, wanted, hits)

        return self._result(segments, wanted, hits)

    def _scan_segment(
        self, number: int, text: str, wanted: Collection[str], hits: list[_Hit]
    ) -> None:
        if not text:
            return
        if text.isascii():
            view = raw_view(text)
            self._run(self._ascii, view, number, wanted, hits)
            return
        self._run(self._normalized, normalized_view(text), number, wanted, hits)
        self._run(self._raw, raw_view(text), number, wanted, hits)

    def _run(
        self,
        scan_pass: _Pass,
        view: TextView,
        number: int,
        wanted: Collection[str],
        hits: list[_Hit],
    ) -> None:
        candidates = scan_pass.candidates(view.data)
        for index in sorted(candidates):
            rule = self._rules[index]
            if rule.guardrail not in wanted:
                continue
            for start, end, matched in rule.matches(view):
                first, last = view.original_span(start, end)
                hits.append(_Hit(number, first, last, index, redacted_preview(matched)))

    def _result(
        self, segments: Sequence[Segment], wanted: Collection[str], hits: list[_Hit]
    ) -> ScanResult:
        result = ScanResult()
        rules_hit: dict[str, set[int]] = {}
        for hit in hits:
            rules_hit.setdefault(self._rules[hit.rule].guardrail, set()).add(hit.rule)
        for name in wanted:
            guardrail = self._guardrails.get(name)
            if guardrail is None:
                continue
            hit_rules = rules_hit.get(name, set())
            score = sum(self._rules[i].spec.weight for i in hit_rules)
            result.scores[name] = score
            if hit_rules and score >= guardrail.spec.score_threshold:
                result.matched.add(name)
        hits.sort(key=lambda hit: (hit.segment, hit.start, hit.rule))
        result.findings = [
            self._finding(hit, segments[hit.segment])
            for hit in hits
            if self._rules[hit.rule].guardrail in result.matched
        ]

        return result

    def _finding(self, hit: _Hit, segment: Segment) -> Finding:
        rule = self._rules[hit.rule]
        guardrail = self._guardrails[rule.guardrail]
        return Finding(
            guardrail=rule.guardrail,
            rule_id=rule.spec.id,
            category=rule.spec.category,
            severity=rule.spec.severity,
            action=guardrail.spec.action,
            path=segment.path,
            start=hit.start,
            end=hit.end,
            json_pointer=segment.json_pointer,
            redacted_preview=hit.preview,
            mask_label=rule.mask_label,
        )
