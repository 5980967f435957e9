"""Text views for matching, with offsets that map back to the original text.

Patterns run on UTF-8 bytes. A *normalised* view folds compatibility forms
(NFKC, one character at a time so each output character knows its source)
and drops invisible characters, so "ｉｇｎｏｒｅ" or "ig\u200bnore" read as
"ignore". A *raw* view keeps the text as sent, for rules that look for the
invisible characters themselves. Pure ASCII text needs neither: both views are
the text itself, and no per-character work is done.
"""

from __future__ import annotations

import unicodedata
from itertools import chain

__all__ = ["INVISIBLE_CODEPOINTS", "TextView", "normalized_view", "raw_view"]

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
_INVISIBLE = frozenset(chr(cp) for cp in INVISIBLE_CODEPOINTS)

# Folding is per character and texts repeat characters a lot; the cap keeps an
# adversary sending every code point from growing the cache without bound.
_FOLD_CACHE: dict[str, str] = {}
_FOLD_CACHE_LIMIT = 1 << 16


def _fold(char: str) -> str:
    folded = _FOLD_CACHE.get(char)
    if folded is None:
        folded = unicodedata.normalize("NFKC", char)
        if len(_FOLD_CACHE) < _FOLD_CACHE_LIMIT:
            _FOLD_CACHE[char] = folded
    return folded


def _utf8_width(char: str) -> int:
    cp = ord(char)
    if cp < 0x80:
        return 1
    if cp < 0x800:
        return 2
    return 3 if cp < 0x10000 else 4


class TextView:
    """A text as matched: its UTF-8 bytes and the way back to the original."""

    __slots__ = ("_byte_to_char", "_to_original", "data", "is_ascii", "text")

    def __init__(
        self, text: str, to_original: list[int] | None, *, is_ascii: bool
    ) -> None:
        self.text = text
        self.is_ascii = is_ascii
        self.data = text.encode("ascii" if is_ascii else "utf-8")
        # Per character of ``text`` (plus an end sentinel): index in the
        # original text; None when the two are the same text.
        self._to_original = to_original
        self._byte_to_char: list[int] | None = None

    def _char_index(self, offset: int) -> int:
        if self.is_ascii:
            return offset
        table = self._byte_to_char
        if table is None:  # built on the first hit only; clean texts skip it
            table = []
            for index, char in enumerate(self.text):
                table.extend([index] * _utf8_width(char))
            table.append(len(self.text))
            self._byte_to_char = table
        return table[offset]

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a byte span of ``data`` to code points of the original text."""
        first = self._char_index(start)
        last = self._char_index(end)
        mapping = self._to_original
        if mapping is None:
            return first, last
        if last <= first:
            return mapping[first], mapping[first]

        # End after the source of the last matched character, so a character
        # that folded into several (e.g. "ﬁ" -> "fi") is covered whole.
        return mapping[first], mapping[last - 1] + 1

    def decode(self, start: int, end: int) -> str:
        """The matched text (in this view) for validators and previews."""
        return self.data[start:end].decode("utf-8", "replace")


def raw_view(text: str) -> TextView:
    """The text exactly as sent."""
    return TextView(text, None, is_ascii=text.isascii())


def normalized_view(text: str) -> TextView:
    """NFKC per character, invisibles dropped; ASCII returns the text as is."""
    if text.isascii():
        return TextView(text, None, is_ascii=True)
    # Most real non-ASCII text (accents, CJK, emoji) is already NFKC and has
    # no invisibles: both checks run in C, and the per-character loop is skipped.
    if _INVISIBLE.isdisjoint(text) and unicodedata.is_normalized("NFKC", text):
        return TextView(text, None, is_ascii=False)

    parts: list[str] = []
    to_original: list[int] = []
    for index, char in enumerate(text):
        if char < "\x80":
            parts.append(char)
            to_original.append(index)
            continue
        if char in _INVISIBLE:
            continue
        folded = _fold(char)
        parts.append(folded)
        to_original.extend([index] * len(folded))
    to_original.append(len(text))
    normalized = "".join(parts)

    return TextView(normalized, to_original, is_ascii=normalized.isascii())
