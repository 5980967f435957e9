"""The only module that imports re2: options, size limits and error text.

Everything is compiled for UTF-8 *bytes*: the scanner encodes a text once and
maps byte offsets back to code points itself, which is far cheaper than
letting the binding re-encode the text for every pattern and every match.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import re2  # type: ignore[import-untyped]

__all__ = [
    "MAX_PATTERN_LENGTH",
    "MAX_PROGRAM_SIZE",
    "PatternError",
    "Regex",
    "RegexSet",
    "SET_MAX_MEM",
    "SetCompileError",
    "compile_internal",
    "compile_regex",
    "escape_literal",
    "keywords_pattern",
]

MAX_PATTERN_LENGTH = 4096
# RE2 instructions. Counted repetitions multiply the program, and every
# program ends up in the shared Set, so one bloated caller pattern would slow
# every scan; 20k leaves room for `[A-Za-z0-9]{1,255}`-style rules.
MAX_PROGRAM_SIZE = 20_000
_PATTERN_MAX_MEM = 8 << 20
# The binding does not report when a Set's DFA gives up (RE2::Set has no NFA
# to fall back to; Match returns false, which the binding turns into "no
# match"). Every Set therefore ends with a sentinel, ``\z``, that matches at
# the end of every text: a DFA that reached the end reports it, one that gave
# up does not, and ``RegexSet.match`` says so (None) instead of "nothing".
# A tiny budget makes Compile fail loudly instead (tests force both).
SET_MAX_MEM = 256 << 20
_SENTINEL = r"\z"
VALUE_GROUP = "value"

# Texts that, between them, reach every "can this match nothing?" situation:
# start and end of text, word and non-word neighbours, a newline.
_EMPTY_PROBES = (b"", b"a", b" ", b"a a", b"_0\n-.", b"\xc3\xa9 x")


class PatternError(Exception):
    """Raised when a pattern is rejected; the message is safe to show."""


def _options(max_mem: int) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # errors come back to the caller, not stderr
    options.max_mem = max_mem
    return options


def _with_flags(pattern: str, ignore_case: bool) -> str:
    # Flags live in the pattern text so one Set can mix case modes.
    return f"(?i:{pattern})" if ignore_case else f"(?:{pattern})"


def _error_text(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else str(exc)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return f"RE2 cannot compile: {text}"


_UNANCHORED = re2._Anchor.UNANCHORED
_NO_SPAN = (-1, -1)


class Regex:
    """One compiled pattern that reports byte spans in UTF-8 data."""

    __slots__ = ("_compiled", "_group", "source")

    def __init__(self, source: str, compiled: re2._Regexp) -> None:
        self.source = source
        self._compiled = compiled
        self._group: int = compiled.groupindex.get(VALUE_GROUP, 0)

    def spans(
        self,
        data: bytes,
        limit: int,
        windows: Sequence[tuple[int, int]] | None = None,
    ) -> Iterator[tuple[int, int]]:
        """Yield up to ``limit`` match spans; group ``value`` if the pattern has it.

        ``windows`` (sorted, disjoint byte ranges) restricts the search to
        them; the caller guarantees every match lies inside one, so the
        spans are those of a whole-text search (see ``anchors``).
        """
        group = self._group
        if windows is None:
            found = self._search(data, 0, len(data))
        else:
            found = self._in_windows(data, windows)
        for count, groups in enumerate(found):
            if count >= limit:
                return
            start, end = groups[group]
            if start < 0:  # the value group did not take part
                start, end = groups[0]
            yield start, end

    def _search(
        self, data: bytes, pos: int, endpos: int
    ) -> Iterator[list[tuple[int, int]]]:
        """Group spans of each match in data[pos:endpos], left to right.

        The loop of the binding's ``finditer`` for bytes, without building a
        Match object per match (about half the cost of a match on short
        texts): the same searches from the same positions.
        """
        search = self._compiled._regexp.Match
        while True:
            groups = search(_UNANCHORED, data, pos, endpos)
            if groups[0] == _NO_SPAN:
                return
            yield groups
            if pos == endpos:
                return
            pos = pos + 1 if pos == groups[0][1] else groups[0][1]

    def _in_windows(
        self, data: bytes, windows: Sequence[tuple[int, int]]
    ) -> Iterator[list[tuple[int, int]]]:
        # RE2 reads the bytes around pos/endpos as context (\b, ^, $ see the
        # real neighbours), and a search resumes where the last match ended,
        # exactly as a whole-text finditer does.
        resume = 0
        size = len(data)
        for start, end in windows:
            pos = max(0, min(max(start, resume), size))
            endpos = max(0, min(end, size))
            if pos > endpos:
                continue
            for groups in self._search(data, pos, endpos):
                resume = groups[0][1]
                yield groups

    def matches_empty(self) -> bool:
        """Whether the pattern can match the empty string (probed, not proved)."""
        for probe in _EMPTY_PROBES:
            for match in self._compiled.finditer(probe):
                start, end = match.span()
                if start == end:
                    return True
        return False


def compile_regex(
    pattern: str, *, ignore_case: bool = False, max_mem: int = _PATTERN_MAX_MEM
) -> Regex:
    """Compile a caller's pattern with our limits; raise PatternError.

    ``max_mem`` can only tighten the engine's budget (service/limits.py
    checks Register items against GUARDRAIL_MAX_PATTERN_MEM_BYTES).
    """
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(
            f"pattern is {len(pattern)} characters long; the limit is "
            f"{MAX_PATTERN_LENGTH}"
        )
    options = _options(min(max_mem, _PATTERN_MAX_MEM))
    try:
        # The pattern as written first, so RE2's message quotes the caller's
        # text; then wrapped with its flags, the form the Set also uses.
        re2.compile(pattern, options)
        source = _with_flags(pattern, ignore_case)
        compiled = re2.compile(source, options)
    except re2.error as exc:
        raise PatternError(_error_text(exc)) from exc
    size = compiled.programsize
    if size > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"pattern is too complex: RE2 program size {size} exceeds "
            f"{MAX_PROGRAM_SIZE}"
        )

    return Regex(source, compiled)


def compile_internal(pattern: str, *, max_mem: int = SET_MAX_MEM) -> Regex:
    """Compile one of the engine's own patterns: no caller limits, bugs raise."""
    return Regex(pattern, re2.compile(pattern, _options(max_mem)))


def escape_literal(literal: str) -> str:
    """Quote a literal for use inside a pattern."""
    return str(re2.escape(literal))


def _keyword_edge(char: str) -> str:
    # RE2's \b only knows ASCII word characters, so an edge that is not one
    # (e.g. "é") gets no boundary rather than one that can never hold.
    return r"\b" if char.isascii() and (char.isalnum() or char == "_") else ""


def keywords_pattern(keywords: Sequence[str], *, substrings: bool) -> str:
    """One case-insensitive alternation; phrases accept any run of whitespace."""
    branches = []
    for keyword in keywords:
        words = keyword.split()
        body = r"\s+".join(escape_literal(word) for word in words)
        if not substrings:
            body = _keyword_edge(keyword.strip()[0]) + body
            body += _keyword_edge(keyword.strip()[-1])
        branches.append(body)

    return "(?i:" + "|".join(branches) + ")"


class SetCompileError(Exception):
    """A Set does not fit its memory budget (RE2 refused to compile it)."""


class RegexSet:
    """Many patterns in one RE2 Set: one pass says which of them occur."""

    __slots__ = ("_set", "incomplete", "size")

    def __init__(self, sources: Sequence[str], *, max_mem: int | None = None) -> None:
        self.size = len(sources)
        # Passes that did not run to the end (see SET_MAX_MEM), for tests and
        # diagnostics.
        self.incomplete = 0
        self._set = re2.Set.SearchSet(_options(max_mem or SET_MAX_MEM))
        for source in (*sources, _SENTINEL):
            self._set.Add(source)
        try:
            self._set.Compile()
        except re2.error as exc:
            raise SetCompileError(_error_text(exc)) from exc

    def match(self, data: bytes) -> list[int] | None:
        """Indices of the patterns that match somewhere in ``data``.

        None when the pass did not reach the end of ``data`` (the DFA gave
        up): the caller must then treat every pattern as a possible match.
        """
        hits = list(self._set.Match(data) or ())
        if self.size not in hits:
            self.incomplete += 1
            return None
        hits.remove(self.size)
        return hits
