"""Scan segments with many compiled guardrails in one multi-pattern pass.

Per segment: encode (ASCII: nothing else) -> one RE2 Set pass that holds every
prefilter literal and every ungated pattern -> exact spans only for the rules
that the pass nominates -> validators -> offsets mapped to the original text.
(One such pass per group of guardrails: built-ins, and the rest; see Scanner.)
Rules with a prefilter stay out of the Set: their (often counted, costly)
patterns run alone, and only when one of their literals occurs.

The same Set holds the gates of the encodings ``decode`` knows; when one
hits, the encoded runs are decoded and the decoded text is scanned like a
segment of its own (two levels deep at most), its findings marked
``decoded`` and placed on the encoded run of the original text.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

from service.engine import anchors, decode
from service.engine.compiler import CompiledGuardrail, CompiledRule
from service.engine.normalize import TextView, normalized_view, raw_view
from service.engine.redact import redacted_preview
from service.engine.regex import RegexSet, escape_literal
from service.types import Finding, Segment

__all__ = ["ScanResult", "Scanner", "forget_shared_passes", "has_wide_repetition"]


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
    """Two RE2 Sets over some rules; their hits nominate rules for exact search.

    Literals and patterns live in separate Sets: one DFA over both multiplies
    their states, and on prose that made a Set pass cost hundreds of µs per KB
    where the two passes cost tens together. ASCII literals are matched as
    lowercase against ASCII-lowercased data; others carry ``(?i)``.

    A rule without a prefilter is nominated when its pattern hits. A gated rule
    with a cheap pattern needs its pattern AND one of its literals to hit; a
    gated rule with a costly pattern is nominated by a literal alone.
    """

    __slots__ = (
        "_gated_by",
        "_gates",
        "_literal_texts",
        "_literals",
        "_needs_literal",
        "_opened_by",
        "_pattern_rules",
        "_patterns",
    )

    def __init__(
        self, rules: Sequence[tuple[int, CompiledRule]], *, gates: bool = False
    ) -> None:
        patterns: list[str] = []
        pattern_rules: list[int] = []
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
            patterns.append(rule.regex.source)
            pattern_rules.append(index)
        # Set index -> encoding kind, for the gate patterns at the end.
        self._gates = {len(patterns) + i: kind for i, kind in enumerate(decode.GATES)}
        if gates:
            patterns.extend(decode.GATES.values())
        else:
            self._gates = {}
        self._patterns = RegexSet(patterns) if patterns else None
        self._pattern_rules = tuple(pattern_rules)
        literals = [_literal_source(literal) for literal in gated]
        self._literals = RegexSet(literals) if literals else None
        # Per literal: the rules it opens alone (costly patterns), and the
        # gated rules whose pattern hit must also see one of their literals.
        self._opened_by = tuple(
            frozenset(i for i in indices if i in literal_only)
            for indices in gated.values()
        )
        self._gated_by = tuple(frozenset(indices) for indices in gated.values())
        self._literal_texts = tuple(gated)
        self._needs_literal = frozenset(needs_literal)

    def candidates(
        self, data: bytes, lowered: bytes
    ) -> tuple[list[int], set[str], list[int]]:
        """Rules worth an exact search in ``data`` (ascending), encodings seen,
        and the literal hits (see ``seen``).

        ``lowered`` is ``data.lower()``.
        """
        by_pattern: list[int] = []
        kinds: set[str] = set()
        if self._patterns is not None:
            pattern_rules = self._pattern_rules
            # A pass that gave up (None) proves nothing: every rule and gate
            # is then a candidate and the exact searches decide.
            hits = self._patterns.match(data)
            if hits is None:
                hits = range(self._patterns.size)
            for hit in hits:
                if hit < len(pattern_rules):
                    by_pattern.append(pattern_rules[hit])
                else:
                    kinds.add(self._gates[hit])
        literal_hits: Sequence[int] = ()
        if self._literals is not None:
            literal_hits = self._literals.match(lowered)
            if literal_hits is None:
                literal_hits = range(self._literals.size)
        chosen: set[int] = set()
        if literal_hits:
            opened_by = self._opened_by
            chosen.update(*[opened_by[hit] for hit in literal_hits])
        needs_literal = self._needs_literal
        gated = [i for i in by_pattern if i in needs_literal]
        if gated:
            gated_by = self._gated_by
            by_literal = set().union(*[gated_by[hit] for hit in literal_hits])
            chosen.update(i for i in gated if i in by_literal)
        chosen.update(i for i in by_pattern if i not in needs_literal)

        return sorted(chosen), kinds, list(literal_hits)

    def seen(self, literal_hits: list[int]) -> set[str]:
        """The literals that ``candidates`` found, from its literal hits."""
        texts = self._literal_texts
        return {texts[hit] for hit in literal_hits}


# Shortest literal worth locating (see _anchor_windows).
_MIN_ANCHOR = 3


def _anchor_windows(
    rule: CompiledRule,
    view: TextView,
    literals: tuple[bytes, set[str], dict[str, list[int] | None]],
) -> list[tuple[int, int]] | None:
    """Where a large text can hold this rule's matches; None: search it all.

    Two-stage search: the literal Set said which literals occur (``seen``),
    a memchr-speed search finds where, and the rule's regex runs only around
    them (``anchors`` proves that every match holds a literal, and the
    rule's width bounds how far from it the match can reach).
    """
    lowered, seen, located = literals
    width = rule.anchor_width
    if width is None or len(view.data) < anchors.MIN_TEXT:
        return None
    # RE2 folds k and s to U+212A and U+017F too, which lowercasing the
    # bytes does not; only ASCII and NFKC-normalised views are free of them.
    if not view.is_ascii and rule.on_raw:
        return None
    width_bytes = width if view.is_ascii else 4 * width
    present = [literal for literal in rule.prefilter if literal in seen]
    if any(len(literal) < _MIN_ANCHOR for literal in present):
        return None  # "sk", "cc": everywhere in noise, finding them costs more
    return anchors.windows(lowered, present, width_bytes, located)


def _literal_source(literal: str) -> str:
    # bytes.lower() folds ASCII only, so only ASCII literals can rely on it.
    if literal.isascii():
        return escape_literal(literal.lower())
    return "(?i:" + escape_literal(literal) + ")"


@dataclass(slots=True)
class _Hit:
    segment: int
    start: int
    end: int
    rule: int
    preview: str
    decoded: bool = False


@dataclass(slots=True)
class _Scope:
    """Where hits of one scanned text go, and how they are placed.

    ``anchor`` is the encoded run (in the original segment) that this text
    was decoded from; None for the segment itself.
    """

    number: int
    wanted: Collection[str]
    hits: list[_Hit]
    budget: decode.Budget
    depth: int = 0
    anchor: tuple[int, int] | None = None

    def inner(self, anchor: tuple[int, int]) -> _Scope:
        return _Scope(
            self.number, self.wanted, self.hits, self.budget, self.depth + 1, anchor
        )


@dataclass(frozen=True, slots=True)
class _Passes:
    """The passes over one group of rules, indexed within the group.

    Building them compiles RE2 Sets (tens of ms for the built-in packs) and
    their DFAs warm up with traffic, so a group is kept while its rules are
    unchanged (``_passes_for``) and shared by the scanners that hold it.
    """

    rules: tuple[CompiledRule, ...]
    gates: bool  # holds the gates of the encodings ``decode`` knows
    ascii: _Pass  # ASCII text looks the same raw and normalised: one pass over all
    normalized: _Pass
    raw: _Pass


@dataclass(frozen=True, slots=True)
class _Group:
    """A group's passes as one scanner uses them: its guardrails and rule numbers."""

    passes: _Passes
    names: frozenset[str]
    numbers: tuple[int, ...]  # the scanner's index of each of the group's rules


_MAX_CACHED_PASSES = 4  # this snapshot's groups and the last ones; streams share them
_passes_cache: dict[tuple[object, ...], _Passes] = {}


def forget_shared_passes() -> None:
    """Drop the kept passes: the next scanners build (cold) ones of their own.

    For benchmarks that compare a fresh process with a warmed one in one
    process; a service never needs it.
    """
    _passes_cache.clear()


def _passes_for(rules: tuple[CompiledRule, ...], gates: bool) -> _Passes:
    # Keyed by the rule objects themselves: compiled rules are immutable and
    # reused while a guardrail is unchanged; the value holds them, so their
    # ids cannot be taken by other objects while the entry lives.
    key = (gates, *map(id, rules))
    cached = _passes_cache.pop(key, None)
    if cached is not None:
        _passes_cache[key] = cached  # the most recently used goes last
        return cached
    indexed = list(enumerate(rules))
    passes = _Passes(
        rules,
        gates,
        _Pass(indexed, gates=gates),
        _Pass([(i, r) for i, r in indexed if not r.on_raw], gates=gates),
        _Pass([(i, r) for i, r in indexed if r.on_raw]),
    )
    if len(_passes_cache) >= _MAX_CACHED_PASSES:
        _passes_cache.pop(next(iter(_passes_cache)))  # the least recently used
    _passes_cache[key] = passes
    return passes


class Scanner:
    """Immutable scanner over a fixed set of compiled guardrails.

    Built-in guardrails and the others (registered, or overriding a
    built-in) form two groups with passes of their own: registering a
    guardrail rebuilds only the second group's Sets, the built-ins' Sets stay
    (warm) from scanner to scanner, and a call that names none of the second
    group's guardrails does not pay for its passes. The first group holds the
    decoding gates, and always runs.
    """

    __slots__ = ("_groups", "_guardrails", "_rules")

    def __init__(self, guardrails: Sequence[CompiledGuardrail]) -> None:
        names = [guardrail.name for guardrail in guardrails]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate guardrail names in {names}")
        self._guardrails = {guardrail.name: guardrail for guardrail in guardrails}
        self._rules = tuple(rule for g in guardrails for rule in g.rules)
        numbered: list[tuple[CompiledGuardrail, range]] = []
        start = 0
        for g in guardrails:
            numbered.append((g, range(start, start + len(g.rules))))
            start += len(g.rules)
        builtin = [(g, n) for g, n in numbered if g.spec.builtin]
        others = [(g, n) for g, n in numbered if not g.spec.builtin]
        # A scanner of no guardrails still has one (empty) group: the gates'.
        member_lists = [members for members in (builtin, others) if members] or [[]]
        groups: list[_Group] = []
        for members in member_lists:
            rules = tuple(rule for g, _ in members for rule in g.rules)
            groups.append(
                _Group(
                    _passes_for(rules, gates=not groups),
                    frozenset(g.name for g, _ in members),
                    tuple(i for _, numbers in members for i in numbers),
                )
            )
        self._groups = tuple(groups)

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
        if text:
            self._scan_text(text, _Scope(number, wanted, hits, decode.Budget()))

    def _scan_text(self, text: str, scope: _Scope) -> None:
        budget = scope.budget
        wanted = scope.wanted
        groups = [
            g for g in self._groups if g.passes.gates or not g.names.isdisjoint(wanted)
        ]
        if text.isascii():
            view = raw_view(text)
            kinds: set[str] = set()
            for group in groups:
                kinds |= self._run(group, group.passes.ascii, view, scope)
            encoded = decode.encoded_segments(view.data, kinds, budget)
            self._scan_decoded(view, encoded, scope)
            return

        view = normalized_view(text)
        raw = raw_view(text)
        kinds = set()
        for group in groups:
            kinds |= self._run(group, group.passes.normalized, view, scope)
            self._run(group, group.passes.raw, raw, scope)
        encoded = decode.encoded_segments(view.data, kinds, budget)
        self._scan_decoded(view, encoded, scope)
        self._scan_decoded(raw, decode.tag_segments(raw.data, budget), scope)

    def _scan_decoded(
        self, view: TextView, pieces: Iterator[decode.Encoded], scope: _Scope
    ) -> None:
        if scope.depth >= decode.MAX_DEPTH:
            return
        for piece in pieces:
            anchor = scope.anchor or view.original_span(piece.start, piece.end)
            self._scan_text(piece.text, scope.inner(anchor))

    def _run(
        self, group: _Group, scan_pass: _Pass, view: TextView, scope: _Scope
    ) -> set[str]:
        lowered = view.data.lower()
        candidates, kinds, literal_hits = scan_pass.candidates(view.data, lowered)
        if not candidates:
            return kinds
        # Windows pay off on large texts only (see _anchor_windows).
        large = len(view.data) >= anchors.MIN_TEXT
        literals = (lowered, scan_pass.seen(literal_hits) if large else set(), {})
        rules, numbers, wanted = group.passes.rules, group.numbers, scope.wanted
        for local in candidates:
            rule = rules[local]
            if rule.guardrail not in wanted:
                continue
            index = numbers[local]
            windows = _anchor_windows(rule, view, literals) if large else None
            for start, end, matched in rule.matches(view, windows):
                if scope.anchor is None:
                    first, last = view.original_span(start, end)
                else:
                    first, last = scope.anchor
                preview = redacted_preview(matched)
                decoded = scope.anchor is not None
                scope.hits.append(
                    _Hit(scope.number, first, last, index, preview, decoded)
                )

        return kinds

    def _result(
        self, segments: Sequence[Segment], wanted: Collection[str], hits: list[_Hit]
    ) -> ScanResult:
        result = ScanResult()
        if not hits:  # the common case: every known guardrail scores 0
            known = self._guardrails
            result.scores = {name: 0 for name in wanted if name in known}
            return result
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
        hits.sort(key=lambda hit: (hit.segment, hit.start, hit.rule, hit.decoded))
        result.findings = [
            self._finding(hit, segments[hit.segment])
            for hit in _unique(hits)
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
            decoded=hit.decoded,
            mask_label=rule.mask_label,
        )


def _unique(hits: list[_Hit]) -> Iterator[_Hit]:
    """Sorted hits without repeats: one decoded run can yield a match many times."""
    seen: set[tuple[int, int, int, int, bool]] = set()
    for hit in hits:
        key = (hit.segment, hit.start, hit.end, hit.rule, hit.decoded)
        if key not in seen:
            seen.add(key)
            yield hit
