"""Text views for matching, with offsets that map back to the original text.

Patterns run on UTF-8 bytes. A *normalised* view folds compatibility forms
(NFKC, character by character), folds look-alike letters inside mixed-script
words (``confusables``) and drops invisible characters, so "ｉｇｎｏｒｅ",
"іgnоrе" (Cyrillic) or "ig\u200bnore" read as "ignore". A *raw* view keeps the text as sent, for
rules that look for the invisible characters themselves. Pure ASCII text
needs neither: both views are the text itself, and no per-character work is
done.

Speed: folding is ``str.translate`` over a table precomputed for every
code point below U+20000 (built once, on the first non-ASCII text), applied
only to the runs of characters whose entry changes them, which one RE2
search finds (translate looks every character up, tens of ns each; accented
Latin, Cyrillic, CJK and emoji fold to themselves). The map from view
offsets back to the caller's characters is built only when a rule hits, from
the characters whose fold is not exactly one character long, and holds one
entry per such character, not one per character of the text.
"""

from __future__ import annotations

import functools
import unicodedata
from bisect import bisect_right, insort
from collections.abc import Iterable
from itertools import chain

from service.engine.confusables import fold_mixed_script_words
from service.engine.regex import Regex, compile_internal

__all__ = [
    "INVISIBLE_CODEPOINTS",
    "TextView",
    "fold_char",
    "normalize_text",
    "normalized_view",
    "raw_view",
]

# Dropped for matching: zero-width and joiner characters, bidi controls and
# isolates, invisible operators, BOM, tag characters and variation selectors.
INVISIBLE_CODEPOINTS: frozenset[int] = frozenset(
    chain(
        (0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E),
        range(0x200B, 0x2010),
        range(0x202A, 0x202F),
        range(0x2060, 0x2070),
        (0x3164, 0xFEFF, 0xFFA0),
        range(0xFE00, 0xFE10),
        range(0xE0000, 0xE0080),
        range(0xE0100, 0xE01F0),
    )
)
# The fold table covers the BMP and the SMP (letters, symbols, emoji,
# mathematical alphanumerics); above it only these few ranges change.
_TABLE_SIZE = 0x20000
_HIGH_RANGES = (
    range(0x2F800, 0x2FA20),
    range(0xE0000, 0xE0080),
    range(0xE0100, 0xE01F0),
)
# UTF-8 lead bytes of those ranges: a cheap "is any of them here?" test.
_HIGH_MARKERS = (b"\xf0\xaf", b"\xf3\xa0")
_MAX_CHECKPOINTS = 256
_Table = list[int | str | None]


def fold_char(char: str) -> str:
    """What one character becomes in the normalised view ("" when dropped).

    Look-alike folding is left out: it depends on the word around the
    character, not on the character alone.
    """
    if ord(char) in INVISIBLE_CODEPOINTS:
        return ""
    return unicodedata.normalize("NFKC", char)


@functools.cache
def _tables() -> tuple[_Table, dict[int, str | None]]:
    # Identity entries are ints (translate keeps the character); changed
    # entries the folded string, None when the character is dropped. About
    # 0.2 s and 5 MB once per process.
    fold: _Table = list(range(_TABLE_SIZE))
    for code in range(0x80, _TABLE_SIZE):
        char = chr(code)
        folded = fold_char(char)
        if folded != char:
            fold[code] = folded or None
    high: dict[int, str | None] = {}
    for code in chain.from_iterable(_HIGH_RANGES):
        folded = fold_char(chr(code))
        if folded != chr(code):
            high[code] = folded or None

    return fold, high


def _width(code: int) -> int:
    """How many characters one code point becomes in the normalised view."""
    fold, high = _tables()
    entry = fold[code] if code < _TABLE_SIZE else high.get(code, code)
    if entry is None:
        return 0
    return 1 if isinstance(entry, int) else len(entry)


@functools.cache
def _uneven() -> Regex:
    """One character whose fold is not exactly one character long."""
    codes = sorted(
        code
        for code in chain(range(0x80, _TABLE_SIZE), *_HIGH_RANGES)
        if _width(code) != 1
    )
    return compile_internal(_class_of(codes))


def normalize_text(text: str) -> str:
    """The normalised form of ``text`` (what the normalised view matches on)."""
    if text.isascii():
        return text
    fold, high = _tables()
    data = _utf8(text)
    folded = _translate_changed(text, data, fold)
    if any(marker in data for marker in _HIGH_MARKERS):
        folded = folded.translate(high)
    return fold_mixed_script_words(folded)


def _translate_changed(text: str, data: bytes, table: _Table) -> str:
    """``text.translate(table)``, translating only the runs RE2 finds to change.

    ``data`` is the UTF-8 of ``text``. Most non-ASCII characters (accented
    Latin, Cyrillic, CJK, emoji) fold to themselves, and translate looks
    every character up (tens of ns each); one RE2 search for the characters
    whose entry differs costs a few ns per byte. Characters map one by one,
    so translating just those runs gives the same text.
    """
    pieces: list[str] = []
    done = 0
    for start, end in _changed().spans(data, len(data)):
        pieces.append(data[done:start].decode("utf-8", "surrogatepass"))
        run = data[start:end].decode("utf-8", "surrogatepass")
        pieces.append(run.translate(table))
        done = end
    if not pieces:
        return text
    pieces.append(data[done:].decode("utf-8", "surrogatepass"))

    return "".join(pieces)


@functools.cache
def _changed() -> Regex:
    """A run of characters below ``_TABLE_SIZE`` that the fold table changes."""
    fold, _ = _tables()
    codes = (
        code for code in range(0x80, _TABLE_SIZE) if not isinstance(fold[code], int)
    )
    return compile_internal(_class_of(codes) + "+")


def _class_of(codes: Iterable[int]) -> str:
    """An RE2 character class of the given ascending code points."""
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    body = "".join(
        f"\\x{{{low:X}}}" if low == high else f"\\x{{{low:X}}}-\\x{{{high:X}}}"
        for low, high in ranges
    )
    return f"[{body}]"


class _OffsetMap:
    """View character index -> source character index, stored by breakpoints.

    Between uneven characters the view and the source advance together; an
    uneven source character becomes zero or several view characters that
    all map to it. ``starts[k]`` is the first view index of piece ``k``,
    ``sources[k]`` its source index, ``steps[k]`` 1 for a run, 0 for the
    characters of one fold.
    """

    __slots__ = ("sources", "starts", "steps")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.sources: list[int] = []
        self.steps: list[int] = []

    def add(self, start: int, source: int, step: int) -> None:
        self.starts.append(start)
        self.sources.append(source)
        self.steps.append(step)

    def __getitem__(self, index: int) -> int:
        piece = bisect_right(self.starts, index) - 1
        return self.sources[piece] + self.steps[piece] * (index - self.starts[piece])


class TextView:
    """A text as matched: its UTF-8 bytes and the way back to the original."""

    __slots__ = (
        "_byte_marks",
        "_char_marks",
        "_source",
        "_to_original",
        "data",
        "is_ascii",
        "text",
    )

    def __init__(self, text: str, source: str | None, *, is_ascii: bool) -> None:
        self.text = text
        self.is_ascii = is_ascii
        self.data = text.encode("ascii") if is_ascii else _utf8(text)
        # The original text when this view differs from it (offsets then go
        # through ``_to_original``, built on the first hit); None otherwise.
        self._source = source
        self._to_original: _OffsetMap | None = None
        self._byte_marks: list[int] = [0]
        self._char_marks: list[int] = [0]

    def _char_index(self, offset: int) -> int:
        # Checkpoints make a run of lookups cost the distance between them,
        # not the length of the text; decoding a slice runs at C speed.
        if self.is_ascii:
            return offset
        marks = self._byte_marks
        position = bisect_right(marks, offset) - 1
        start, index = marks[position], self._char_marks[position]
        index += len(self.data[start:offset].decode("utf-8", "surrogatepass"))
        if offset != start and len(marks) < _MAX_CHECKPOINTS:
            insort(marks, offset)
            self._char_marks.insert(position + 1, index)
        return index

    def _mapping(self, source: str) -> _OffsetMap:
        mapping = self._to_original
        if mapping is None:
            mapping = self._to_original = _offset_map(source)
        return mapping

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a byte span of ``data`` to code points of the original text."""
        first = self._char_index(start)
        last = self._char_index(end)
        if self._source is None:
            return first, last
        mapping = self._mapping(self._source)
        if last <= first:
            return mapping[first], mapping[first]

        # End after the source of the last matched character, so a character
        # that folded into several (e.g. "ﬁ" -> "fi") is covered whole.
        return mapping[first], mapping[last - 1] + 1

    def decode(self, start: int, end: int) -> str:
        """The matched text (in this view) for validators and previews."""
        return self.data[start:end].decode("utf-8", "replace")


def _utf8(text: str) -> bytes:
    # Lone surrogates cannot come through gRPC, but the library API takes any
    # str; they pass through as (invalid) bytes that no pattern matches.
    return text.encode("utf-8", "surrogatepass")


def _offset_map(source: str) -> _OffsetMap:
    """Per character of the normalised text (plus an end sentinel): its source index.

    Only characters that fold to zero or several characters break the 1:1
    correspondence; RE2 finds them, the runs between them are one piece each.
    """
    data = _utf8(source)
    mapping = _OffsetMap()
    view = 0  # view index of ``previous``
    previous = 0  # source index after the last uneven character
    done = 0  # byte offset matching ``previous``
    for start, end in _uneven().spans(data, len(data)):
        index = previous + len(data[done:start].decode("utf-8", "surrogatepass"))
        mapping.add(view, previous, 1)
        view += index - previous
        width = _width(ord(source[index]))
        if width:
            mapping.add(view, index, 0)
            view += width
        previous, done = index + 1, end
    mapping.add(view, previous, 1)  # through the end sentinel

    return mapping


def raw_view(text: str) -> TextView:
    """The text exactly as sent."""
    return TextView(text, None, is_ascii=text.isascii())


def normalized_view(text: str) -> TextView:
    """NFKC per character, look-alikes folded, invisibles dropped; ASCII as is."""
    if text.isascii():
        return TextView(text, None, is_ascii=True)
    folded = normalize_text(text)
    if folded == text:
        return TextView(text, None, is_ascii=False)

    return TextView(folded, text, is_ascii=folded.isascii())
