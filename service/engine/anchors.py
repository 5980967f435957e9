"""Which prefilter literals every match of a pattern must contain.

A rule's prefilter is a text-wide gate: a literal somewhere in the text lets
the rule's pattern run over the whole text. When every match of the pattern
is known to *contain* one of those literals, and the match length is
bounded, the search can instead run on a window around each occurrence of a
literal: the same matches, in the same order, at a fraction of the cost on a
large text (see ``scanner``).

``anchored`` proves "every match contains one of these literals" from the
pattern text alone, conservatively: it reads runs of plain characters that
are not optional, inside groups that are not optional, and requires every
branch of an alternation to hold one. Anything it does not understand
breaks a run or makes a branch unproven, so a wrong answer can only be "no"
(the rule then keeps its whole-text search), never a false "yes".

Only ASCII literals qualify, and the caller must look for them in
ASCII-lowercased data. Known shortcoming: RE2's case folding maps ``k`` and
``s`` to U+212A and U+017F as well, which ``bytes.lower`` does not; callers
use the windows only on views where those cannot occur (ASCII text, or the
NFKC-normalised view, which folds both).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from service.engine.regex import Regex, compile_internal, escape_literal

__all__ = ["MIN_TEXT", "anchored", "windows"]

# Below this many bytes a whole-text search is as cheap as finding anchors.
MIN_TEXT = 16 * 1024
# Anchors looked at per rule: one per this many bytes of text (at least 16).
# Past that the windows cover most of the text anyway and the rule searches
# the whole text.
_BYTES_PER_ANCHOR = 2048

_META = frozenset(".[](){}|?*+^$\\")
# Escapes that stand for the character itself (``\.``, ``\-``, ...).
_LITERAL_ESCAPES = frozenset("!\"#%&',-./:;<=>@_`~ []{}()|?*+^$\\")


class _Reader:
    """One left-to-right pass over a pattern; ``covered`` per group."""

    def __init__(self, pattern: str, literals: Sequence[str]) -> None:
        self.pattern = pattern
        self.literals = literals
        self.i = 0

    def _holds_literal(self, run: list[str]) -> bool:
        text = "".join(run).lower()
        return any(literal in text for literal in self.literals)

    def _quantifier(self) -> tuple[bool, bool] | None:
        """At a quantifier: (consumed, may repeat zero times); None if none."""
        p, i = self.pattern, self.i
        if i >= len(p):
            return None
        if p[i] in "?*+":
            self.i += 1
        elif p[i] == "{":
            end = p.find("}", i)
            body = p[i + 1 : end] if end != -1 else ""
            low = body.split(",")[0]
            if end == -1 or not low.isdigit():
                return None  # a literal "{" (RE2 allows it); not a quantifier
            self.i = end + 1
            zero = int(low) == 0
            if self.i < len(p) and p[self.i] == "?":
                self.i += 1
            return True, zero
        else:
            return None
        zero = p[i] != "+"
        if self.i < len(p) and p[self.i] == "?":
            self.i += 1
        return True, zero

    def _skip_class(self) -> None:
        p = self.pattern
        i = self.i + 1
        if i < len(p) and p[i] == "^":
            i += 1
        if i < len(p) and p[i] == "]":
            i += 1
        while i < len(p) and p[i] != "]":
            i += 2 if p[i] == "\\" else 1
        self.i = i + 1

    def _open_group(self) -> bool:
        """Past "(" and its flags; False for a flags-only group like ``(?i)``."""
        p = self.pattern
        self.i += 1
        if not p.startswith("?", self.i):
            return True
        if p.startswith("?P<", self.i):
            self.i = p.index(">", self.i) + 1
            return True
        end = self.i + 1
        while end < len(p) and p[end] not in ":)":
            end += 1
        self.i = end + 1
        return p[end] == ":"

    def alternation(self) -> bool:
        """Read branches up to ")" or the end; whether every branch is covered."""
        covered = True
        while True:
            covered = self._branch() and covered
            if self.i < len(self.pattern) and self.pattern[self.i] == "|":
                self.i += 1
                continue
            return covered

    def _branch(self) -> bool:  # noqa: C901 - one reader of one grammar
        p = self.pattern
        covered = False
        run: list[str] = []
        while self.i < len(p) and p[self.i] not in "|)":
            char = p[self.i]
            if char == "(":
                if not self._open_group():  # flags only: nothing to match
                    covered |= self._holds_literal(run)
                    run = []
                    continue
                inner = self.alternation()
                self.i += 1  # the ")"
                quantified = self._quantifier()
                covered |= inner and (quantified is None or not quantified[1])
                covered |= self._holds_literal(run)
                run = []
                continue
            if char == "[":
                self._skip_class()
                self._quantifier()
                covered |= self._holds_literal(run)
                run = []
                continue
            if char == "\\":
                escaped = p[self.i + 1 : self.i + 2]
                self.i += 2
                if escaped not in _LITERAL_ESCAPES:
                    self._skip_escape_argument(escaped)
                    self._quantifier()
                    covered |= self._holds_literal(run)
                    run = []
                    continue
                char = escaped
            elif char in _META:
                self.i += 1
                self._quantifier()
                covered |= self._holds_literal(run)
                run = []
                continue
            else:
                self.i += 1
            quantified = self._quantifier()
            if quantified is not None:
                # The quantifier binds to this character only: the run ends
                # before it.
                covered |= self._holds_literal(run)
                run = []
                continue
            if not char.isascii():
                covered |= self._holds_literal(run)
                run = []
                continue
            run.append(char)
        return covered or self._holds_literal(run)

    def _skip_escape_argument(self, escaped: str) -> None:
        # \x{41}, \p{Greek}, \pL, \x41, \101: skip what belongs to the escape.
        p = self.pattern
        if escaped.isdigit():
            while self.i < len(p) and p[self.i].isdigit():
                self.i += 1
        elif escaped in "xpP" and self.i < len(p):
            if p[self.i] == "{":
                self.i = p.index("}", self.i) + 1
            elif escaped == "x":
                self.i += 2
            else:
                self.i += 1


def anchored(pattern: str, literals: Sequence[str]) -> bool:
    """Whether every match of ``pattern`` contains one of ``literals``.

    ``literals`` are lowercase; non-ASCII ones make the answer "no".
    """
    if not literals or not all(literal.isascii() for literal in literals):
        return False
    if "\\Q" in pattern:  # quoted text reads differently; not worth proving
        return False
    reader = _Reader(pattern, literals)
    try:
        covered = reader.alternation()
    except (ValueError, IndexError):
        return False
    return covered and reader.i >= len(pattern)


@functools.lru_cache(maxsize=4096)
def _locator(literal: str) -> Regex:
    # RE2 finds a plain literal with memchr: several times faster than
    # bytes.find, and a whole-text search for the rule costs ten times more.
    return compile_internal(escape_literal(literal), max_mem=1 << 20)


def windows(
    lowered: bytes,
    literals: Sequence[str],
    width: int,
    located: dict[str, list[int] | None],
) -> list[tuple[int, int]] | None:
    """Byte ranges holding every match, from the occurrences of ``literals``.

    ``lowered`` is the ASCII-lowercased data; ``width`` bounds a match in
    bytes; ``located`` caches occurrence ends per literal for one text (rules
    share literals). A match holds an occurrence ending at ``end``, so it
    starts at or after ``end - width`` and ends by ``end - size + width``.
    The locator does not report occurrences overlapping one it found (they
    end before ``end + size``), so each range reaches to ``end + width``.
    Overlapping ranges are merged, which keeps a match whose start lies in
    one occurrence's range and whose literal is another's. None when there
    are too many occurrences to be worth it.
    """
    limit = max(16, len(lowered) // _BYTES_PER_ANCHOR)
    found: list[tuple[int, int]] = []
    for literal in literals:
        if literal not in located:
            spans = _locator(literal).spans(lowered, limit + 1)
            ends = [end for _, end in spans]
            located[literal] = ends if len(ends) <= limit else None
        ends = located[literal]
        if ends is None or len(found) + len(ends) > limit:
            return None
        found.extend((max(0, end - width), end + width) for end in ends)
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
