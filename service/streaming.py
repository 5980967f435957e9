"""Scan a streamed answer piece by piece so that no match ever slips through.

The hold-back comes from the rules in force: a match is at most ``width``
characters long (``service.engine.width``; rules without a bound count as the
``GUARDRAIL_STREAM_HOLDBACK_CHARS`` cap), so once ``width + 1`` visible
characters follow a position, every match starting there is decided. Text is
released only up to such a position, and never through a decided match: the
release point moves back to the match's start, and a match ending exactly at
the release point is held too, so adjacent masks merge as they do in Check.

Each scan covers the held text plus one released character (for ``\\b`` and
line starts); matches starting on that character are not ours and are
dropped. The held text stays under about twice the hold-back plus a chunk, so
the work per chunk is bounded and the work per stream is linear in its length.

Threshold-scored guardrails are scored over the whole stream: the rule ids
each guardrail matched accumulate across windows, choices and tool calls, so
the score equals the whole-text score. Findings are taken from a scanner over
the same compiled rules with every threshold at zero, built once per registry
snapshot.

Known shortcomings, each rare, each written here because this is where it
lives: a match of an unbounded rule longer than the cap is cut at the release
point: the part released before the match could be seen is not masked, the
rest is, as a second finding; findings released before a
threshold guardrail with action *mask* reached its threshold stay unmasked
(built-in threshold guardrails block); a regex match that a validator rejects
is invisible here, so a match overlapping it can be found where Check's
left-to-right search would have skipped it; the per-rule findings limit
counts per window rather than per text; an encoded run longer than
``MAX_HELD_RUN`` characters is released in parts, so a finding in its
decoded content masks only the part still held.

Encoded runs (base64, hex, percent) are held until they end and are decided
whole, up to ``MAX_HELD_RUN``: a finding in decoded content covers its whole
run, which can be longer than any rule's hold-back.
"""

from __future__ import annotations

import dataclasses
import functools
import string
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from service.decide import effective_action
from service.engine import CompiledGuardrail, Scanner, decode, mask_text
from service.engine.normalize import INVISIBLE_CODEPOINTS
from service.engine.width import encoded_width, guardrail_width
from service.registry import Snapshot
from service.types import (
    Action,
    Finding,
    GuardrailMode,
    GuardrailOutcome,
    GuardrailStatus,
    Segment,
)

__all__ = [
    "Holdback",
    "Release",
    "ScoreBook",
    "StreamEngine",
    "TextStream",
    "ToolCallAssembler",
    "ToolCallText",
    "engine_for",
]

# One character after a match decides \b and $; one before it is kept as context.
_LOOKAHEAD = 1
# Held text counts visible characters (invisibles are dropped before matching);
# this bounds how many raw characters that may take, for a text of invisibles.
_RAW_FACTOR = 8
_CACHED_SNAPSHOTS = 4
# A release waits for a quarter of the hold-back: scans per chunk drop when
# chunks are small, and each release is still at most that much later.
_SCAN_STEP_DIVISOR = 4
_INVISIBLE = frozenset(chr(cp) for cp in INVISIBLE_CODEPOINTS)
# Characters of the encodings the engine decodes (base64 in both alphabets,
# hex, percent and \x escapes). A finding in decoded content covers its whole
# encoded run, so a run is held until it has ended and been scanned whole, up
# to this many characters; a longer run is released in parts.
_ENCODED_CHARS = string.ascii_letters + string.digits + "+/=-_%\\"
MAX_HELD_RUN = 4096


@dataclass(frozen=True, slots=True)
class Holdback:
    """How much a stream holds back, and which rules the cap cut short."""

    chars: int
    capped_rules: tuple[str, ...]  # "guardrail/rule_id"


class StreamEngine:
    """What streams need of one registry snapshot, computed once per snapshot."""

    __slots__ = ("guardrails", "scanner", "widths")

    def __init__(self, snapshot: Snapshot) -> None:
        self.guardrails = dict(snapshot.guardrails)
        self.widths = {name: _width_of(g.spec) for name, g in self.guardrails.items()}
        # Same compiled rules, every threshold at zero: each window reports
        # every hit, and the stream scores the accumulated rule ids itself.
        self.scanner = Scanner([_unthresholded(g) for g in self.guardrails.values()])

    def holdback(self, names: Iterable[str], cap: int) -> Holdback:
        """The hold-back for these guardrails: their widest match, at most ``cap``.

        Rules that are unbounded, or wider than the cap once a match inside
        decoded content is allowed for, are named as capped.
        """
        chars = 0
        capped: list[str] = []
        for name in names:
            for rule, width in self.widths[name].rules:
                needed = None if width is None else encoded_width(width)
                if needed is None or needed > cap:
                    capped.append(f"{name}/{rule}")
                else:
                    chars = max(chars, needed)
        return Holdback(cap if capped else chars, tuple(capped))


# Reading every rule's width takes ~16 ms for the built-in packs; a new
# snapshot (each Register) keeps most specs, so widths are kept per spec.
_width_of = functools.lru_cache(maxsize=256)(guardrail_width)


def _unthresholded(guardrail: CompiledGuardrail) -> CompiledGuardrail:
    spec = dataclasses.replace(guardrail.spec, score_threshold=0.0)
    return dataclasses.replace(guardrail, spec=spec)


_ENGINES: OrderedDict[int, tuple[Snapshot, StreamEngine]] = OrderedDict()


def engine_for(snapshot: Snapshot) -> StreamEngine:
    """The stream engine of a snapshot, built on first use and kept for a few."""
    key = id(snapshot)
    cached = _ENGINES.get(key)
    if cached is not None and cached[0] is snapshot:
        _ENGINES.move_to_end(key)
        return cached[1]
    engine = StreamEngine(snapshot)
    _ENGINES[key] = (snapshot, engine)  # the snapshot is kept: its id stays unique
    while len(_ENGINES) > _CACHED_SNAPSHOTS:
        _ENGINES.popitem(last=False)
    return engine


class ScoreBook:
    """Rule ids each guardrail matched so far in one stream, and what follows.

    ``modes`` as a policy resolved them (absent: enforce). Only enforced
    guardrails block or mask; monitor ones are reported as flags; dry-run
    ones are recorded but not reported, and decide only the dry-run decision.
    """

    __slots__ = ("_guardrails", "_hits", "_modes", "_triggered", "_weights")

    def __init__(
        self,
        guardrails: Sequence[CompiledGuardrail],
        modes: Mapping[str, GuardrailMode] | None = None,
    ) -> None:
        self._guardrails = {g.name: g for g in guardrails}
        self._modes = dict(modes or {})
        self._weights = {
            g.name: {rule.id: rule.weight for rule in g.spec.rules} for g in guardrails
        }
        self._hits: dict[str, set[str]] = {}
        self._triggered: set[str] = set()

    def add(self, findings: Iterable[Finding]) -> bool:
        """Count findings' rules; whether a blocking guardrail is now triggered."""
        touched: set[str] = set()
        for finding in findings:
            if finding.guardrail in self._guardrails:
                self._hits.setdefault(finding.guardrail, set()).add(finding.rule_id)
                touched.add(finding.guardrail)
        for name in touched:
            threshold = self._guardrails[name].spec.score_threshold
            if self.score(name) >= threshold:
                self._triggered.add(name)
        return self.blocked

    @property
    def blocked(self) -> bool:
        return any(
            self._guardrails[n].action is Action.BLOCK and self._enforced(n)
            for n in self._triggered
        )

    def _mode(self, name: str) -> GuardrailMode:
        return self._modes.get(name, GuardrailMode.ENFORCE)

    def _enforced(self, name: str) -> bool:
        return self._mode(name) is GuardrailMode.ENFORCE

    def triggered(self, name: str) -> bool:
        return name in self._triggered

    def masks(self, finding: Finding) -> bool:
        return (
            finding.guardrail in self._triggered
            and finding.action is Action.MASK
            and self._enforced(finding.guardrail)
        )

    def score(self, name: str) -> float:
        weights = self._weights[name]
        return sum(weights.get(rule, 0.0) for rule in self._hits.get(name, ()))

    def kept(self, findings: Iterable[Finding]) -> list[Finding]:
        """The findings of triggered guardrails (Check records no others)."""
        return [f for f in findings if f.guardrail in self._triggered]

    def reported(self, findings: Iterable[Finding]) -> list[Finding]:
        """What the caller is told: no dry-run findings, monitor ones as flags."""
        shown = []
        for finding in self.kept(findings):
            mode = self._mode(finding.guardrail)
            if mode is GuardrailMode.DRY_RUN:
                continue
            action = effective_action(finding.action, mode)
            if action is not finding.action:
                finding = dataclasses.replace(finding, action=action)
            shown.append(finding)
        return shown

    def outcomes(self, findings: Sequence[Finding]) -> list[GuardrailOutcome]:
        """PASSED or INTERVENED for each guardrail this book scored, in order."""
        return [
            GuardrailOutcome(
                name=name,
                version=guardrail.version,
                status=(
                    GuardrailStatus.INTERVENED
                    if name in self._triggered
                    else GuardrailStatus.PASSED
                ),
                action=effective_action(guardrail.action, self._mode(name)),
                finding_count=sum(1 for f in findings if f.guardrail == name),
                score=self.score(name),
                mode=self._mode(name),
            )
            for name, guardrail in self._guardrails.items()
        ]


@dataclass(slots=True)
class Release:
    """Text that may be emitted, with the findings inside it."""

    choice_index: int
    text: str
    findings: list[Finding]
    #: Offset of the unmasked text in the choice's whole text.
    offset: int


class TextStream:
    """The hold-back state of one text (a choice's content, or a prompt)."""

    __slots__ = (
        "_base",
        "_book",
        "_capped",
        "_context",
        "_held",
        "_names",
        "_need",
        "_scanner",
        "_step_chars",
        "_width",
        "blocked",
        "choice_index",
        "findings",
        "path",
    )

    def __init__(
        self,
        choice_index: int,
        scanner: Scanner,
        names: Collection[str],
        width: int,
        book: ScoreBook,
        capped: Collection[str] = (),
    ) -> None:
        self.choice_index = choice_index
        self.path = f"choices[{choice_index}]"
        self._scanner = scanner
        self._names = frozenset(names)
        self._width = width
        self._need = width + _LOOKAHEAD
        # Scan once this much more is releasable, not on every small chunk.
        self._step_chars = max(1, width // _SCAN_STEP_DIVISOR)
        self._book = book
        self._capped = frozenset(capped)  # "guardrail/rule" ids over the hold-back
        self._held = ""
        self._context = ""  # the last released character
        self._base = 0  # offset of the held text in the whole text
        self.findings: list[Finding] = []  # released (or blocking), absolute
        self.blocked = False

    @property
    def held_chars(self) -> int:
        return len(self._held)

    def feed(self, text: str) -> Release | None:
        """Add text; a release when some of the held text is now decided."""
        self._held += text
        if len(self._held) < self._need + self._step_chars:
            return None
        horizon = _before_open_run(self._held, _horizon(self._held, self._need))
        if horizon <= 0:
            return None
        return self._step(horizon, final=False)

    def finish(self) -> Release | None:
        """The text has ended: everything held is decided."""
        if not self._held:
            return None
        return self._step(len(self._held), final=True)

    def _step(self, horizon: int, *, final: bool) -> Release | None:
        decided = [f for f in self._scan() if final or f.start < horizon]
        if self._book.add(decided):
            self.blocked = True
            self.findings.extend(self._absolute(decided))
            return None
        cut = horizon if final else _settle(horizon, decided, self._held, self._width)
        if cut <= 0:
            return None

        return self._release(cut, [f for f in decided if f.start < cut])

    def _release(self, cut: int, released: list[Finding]) -> Release:
        to_mask = [f for f in released if self._book.masks(f)]
        text = mask_text(self._held[:cut], to_mask)
        absolute = self._absolute(released)
        self.findings.extend(absolute)
        release = Release(self.choice_index, text, self._book.reported(absolute), self._base)
        self._context = self._held[cut - 1]
        self._held = self._held[cut:]
        self._base += cut
        return release

    def _scan(self) -> list[Finding]:
        """Findings in the held text, offsets relative to it."""
        shift = len(self._context)
        window = Segment(self.path, self._context + self._held)
        found = self._scanner.scan([window], self._names).findings
        # A match that starts on the context character and runs into the held
        # text only looks like one because its left neighbour is cut off -
        # unless its rule can match more than the hold-back: then it is the
        # rest of a longer match, and its held part is masked all the same.
        capped = self._capped
        return [
            _clipped(_shifted(f, -shift))
            for f in found
            if f.start >= shift or (f.end > shift and f"{f.guardrail}/{f.rule_id}" in capped)
        ]

    def _absolute(self, findings: Iterable[Finding]) -> list[Finding]:
        return [_shifted(f, self._base) for f in findings]


def _horizon(held: str, need: int) -> int:
    """Where ``need`` visible characters before the end begin (0: not yet).

    Every match starting before that point is decided. A long run of
    invisible characters is capped at ``_RAW_FACTOR`` times ``need``.
    """
    end = len(held)
    if end < need:
        return 0
    if _INVISIBLE.isdisjoint(held[end - need :]):  # the usual case, checked in C
        return end - need
    limit = max(0, end - need * _RAW_FACTOR)
    position, visible = end, 0
    while position > limit and visible < need:
        position -= 1
        if held[position] not in _INVISIBLE:
            visible += 1
    if visible >= need or position == limit > 0:
        return position
    return 0


def _before_open_run(held: str, horizon: int) -> int:
    """The horizon, moved back to the start of an encoded run still open at the end.

    Until the run ends, its decoded content (and a finding placed on the
    whole run) is not decided: releasing its head would let out part of an
    encoded match. Runs shorter than the engine decodes, or longer than
    ``MAX_HELD_RUN``, are left alone.
    """
    if horizon <= 0:
        return horizon
    start = len(held.rstrip(_ENCODED_CHARS))
    run = len(held) - start
    if start < horizon and decode.MIN_RUN <= run <= MAX_HELD_RUN:
        return start
    return horizon


def _settle(cut: int, decided: Sequence[Finding], held: str, width: int) -> int:
    """Move the cut back to the start of any decided match it cuts or ends at.

    A match longer than the width (an unbounded rule over the cap) cannot be
    waited for: the cut goes through it and only its head is masked. A
    finding in decoded content covers its encoded run, which is waited for
    up to ``MAX_HELD_RUN`` characters.
    """
    moved = True
    while moved:
        moved = False
        for finding in decided:
            if finding.start < cut <= finding.end:
                longest = MAX_HELD_RUN if finding.decoded else width
                if _visible(held, finding.start, finding.end) > longest:
                    continue
                cut, moved = finding.start, True
    return cut


def _visible(text: str, start: int, end: int) -> int:
    span = text[start:end]
    if span.isascii():
        return len(span)
    return sum(1 for char in span if char not in _INVISIBLE)


def _clipped(finding: Finding) -> Finding:
    if finding.start >= 0:
        return finding
    return dataclasses.replace(finding, start=0)


def _shifted(finding: Finding, delta: int) -> Finding:
    return dataclasses.replace(
        finding, start=finding.start + delta, end=finding.end + delta
    )


@dataclass(slots=True)
class ToolCallText:
    """One tool call of one choice, assembled from its deltas."""

    choice_index: int
    index: int
    id: str = ""
    name: str = ""
    parts: list[str] = field(default_factory=list)
    chars: int = 0

    @property
    def arguments(self) -> str:
        return "".join(self.parts)

    @property
    def path(self) -> str:
        return f"choices[{self.choice_index}].tool_calls[{self.index}]"


class ToolCallAssembler:
    """Collects tool-call deltas; a call is complete when the next one starts.

    Arguments are never released in pieces: a call is scanned (as JSON, every
    key and string value) and released whole once complete, when a higher
    tool-call index of the same choice starts, the choice finishes, or the
    stream ends.
    """

    __slots__ = ("_calls", "_max_chars")

    def __init__(self, max_chars: int) -> None:
        self._calls: dict[int, dict[int, ToolCallText]] = {}
        self._max_chars = max_chars

    def add(
        self, choice_index: int, index: int, call_id: str, name: str, fragment: str
    ) -> list[ToolCallText]:
        """Add one delta; the calls it completes (lower indices of the choice)."""
        calls = self._calls.setdefault(choice_index, {})
        done = [calls.pop(i) for i in sorted(calls) if i < index]
        call = calls.get(index)
        if call is None:
            call = calls[index] = ToolCallText(choice_index, index)
        call.id = call.id or call_id
        call.name += name
        call.chars += len(fragment)
        if call.chars > self._max_chars:
            raise OverflowError(call.path)
        call.parts.append(fragment)
        return done

    def finish_choice(self, choice_index: int) -> list[ToolCallText]:
        calls = self._calls.pop(choice_index, {})
        return [calls[i] for i in sorted(calls)]

    def finish(self) -> list[ToolCallText]:
        return [c for choice in sorted(self._calls) for c in self.finish_choice(choice)]
