"""Look-alike letters folded to the Latin letter a reader sees.

Written for this project after the idea of Unicode's confusables data (UTS #39
"skeletons"), restricted to single letters that are drawn the same as a Latin
letter in common fonts: Cyrillic, Greek, Armenian and a few Latin-extension
letters. Full-width and mathematical letters need no entry here: NFKC already
folds them.

Only *mixed-script words* are folded: a run of letters that holds both an
ASCII letter and a look-alike, so "іgnоrе" (Cyrillic і, о, е) reads "ignore"
while Russian or Greek prose keeps its own letters and the rules written for
it still match. One RE2 search finds such words; pure-ASCII and pure-Cyrillic
texts pay only for that search. Folding maps one character to one, so the
offset map of the normalised view is not affected.

Known shortcomings: a word written *entirely* in look-alikes ("сору" in
Cyrillic for "copy") is not folded (UTS #39 calls it a whole-script
confusable; telling it from a real Russian word needs a dictionary). Letters
that only look alike in some fonts (Cyrillic "п" for "n", Greek "η" for "n",
Cyrillic "т" or "м", drawn as small capitals) are left out on purpose, and
multi-letter look-alikes ("rn" for "m") are out of scope.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from service.engine.regex import Regex, compile_internal

__all__ = ["CONFUSABLES", "fold_confusables", "fold_mixed_script_words"]

# Pairs of (look-alike letters, the Latin letter each one folds to), per script.
_CYRILLIC = (
    ("а", "a"), ("е", "e"), ("ё", "e"), ("һ", "h"), ("і", "i"),
    ("ї", "i"), ("ј", "j"), ("о", "o"),
    ("р", "p"), ("с", "c"), ("у", "y"), ("х", "x"), ("ѕ", "s"),
    ("ԁ", "d"), ("ԛ", "q"), ("ԝ", "w"), ("ү", "y"), ("ɡ", "g"),
    ("А", "A"), ("В", "B"), ("Е", "E"), ("Н", "H"), ("І", "I"),
    ("Ј", "J"), ("К", "K"), ("М", "M"), ("О", "O"), ("Р", "P"), ("С", "C"),
    ("Т", "T"), ("У", "Y"), ("Х", "X"), ("Ѕ", "S"), ("Ԁ", "D"), ("Ԛ", "Q"),
    ("Ԝ", "W"), ("Ү", "Y"), ("Ӏ", "I"),
)  # fmt: skip
_GREEK = (
    ("α", "a"), ("ο", "o"), ("ν", "v"), ("ι", "i"), ("ρ", "p"), ("υ", "u"),
    ("κ", "k"), ("χ", "x"), ("ϲ", "c"), ("ϳ", "j"),
    ("Α", "A"), ("Β", "B"), ("Ε", "E"), ("Ζ", "Z"), ("Η", "H"), ("Ι", "I"),
    ("Κ", "K"), ("Μ", "M"), ("Ν", "N"), ("Ο", "O"), ("Ρ", "P"), ("Τ", "T"),
    ("Υ", "Y"), ("Χ", "X"), ("Ϲ", "C"), ("Ϳ", "J"),
)  # fmt: skip
_ARMENIAN = (("օ", "o"), ("ս", "u"), ("հ", "h"), ("ո", "n"), ("ց", "g"), ("զ", "q"))
_LATIN_EXTENSIONS = (
    ("ı", "i"), ("ȷ", "j"), ("ɑ", "a"), ("ɩ", "i"), ("ʏ", "y"), ("ɪ", "i"),
    ("ᴀ", "A"), ("ʙ", "B"), ("ᴄ", "c"), ("ᴅ", "D"), ("ᴇ", "E"), ("ʜ", "H"),
    ("ᴊ", "J"), ("ᴋ", "K"), ("ʟ", "L"), ("ᴍ", "M"), ("ɴ", "N"), ("ᴏ", "o"),
    ("ᴘ", "P"), ("ʀ", "R"), ("ꜱ", "s"), ("ᴛ", "T"), ("ᴜ", "u"), ("ᴠ", "v"),
    ("ᴡ", "w"), ("ᴢ", "z"),
)  # fmt: skip

CONFUSABLES: Mapping[str, str] = MappingProxyType(
    dict(_CYRILLIC + _GREEK + _ARMENIAN + _LATIN_EXTENSIONS)
)


_LOOK_ALIKES = frozenset(CONFUSABLES)
_TABLE = {ord(char): latin for char, latin in CONFUSABLES.items()}


def fold_confusables(text: str) -> str:
    """Each look-alike letter of ``text`` replaced by its Latin letter."""
    return text.translate(_TABLE)


@functools.cache
def _mixed_word() -> Regex:
    """A word with an ASCII letter and a look-alike letter in it, in either order."""
    look_alikes = "".join(sorted(CONFUSABLES))
    word = r"[\pL\pM]*"
    return compile_internal(
        f"{word}(?:[A-Za-z]{word}[{look_alikes}]|[{look_alikes}]{word}[A-Za-z]){word}"
    )


def fold_mixed_script_words(text: str) -> str:
    """``text`` with the look-alikes folded inside mixed-script words only."""
    if _LOOK_ALIKES.isdisjoint(text):
        return text
    data = text.encode("utf-8", "surrogatepass")
    pieces: list[bytes] = []
    done = 0
    for start, end in _mixed_word().spans(data, len(data)):
        word = data[start:end].decode("utf-8", "surrogatepass")
        pieces += (data[done:start], fold_confusables(word).encode("utf-8"))
        done = end
    if not pieces:
        return text
    pieces.append(data[done:])

    return b"".join(pieces).decode("utf-8", "surrogatepass")
