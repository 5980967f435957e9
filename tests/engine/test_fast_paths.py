"""The fast paths of validators and decode answer exactly as plain definitions do.

The helpers in ``validators`` use C-level tricks (byte tables, set algebra,
a cached entropy table) on the hot path; these plain per-character versions
are the definitions they must agree with, on ASCII and on any other text.
"""

from __future__ import annotations

import base64
import math
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import decode, normalize, validators
from service.engine.confusables import fold_mixed_script_words

_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz")


def luhn_by_definition(text: str) -> bool:
    digits = "".join(char for char in text if char.isdigit())
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    values = [int(char) for char in reversed(digits)]
    return (sum(values[0::2]) + sum(_DOUBLED[v] for v in values[1::2])) % 10 == 0


def classes_by_definition(text: str) -> int:
    return sum(
        (
            any(c.islower() for c in text),
            any(c.isupper() for c in text),
            any(c.isdigit() for c in text),
            any(not c.isalnum() for c in text),
        )
    )


def longest_run(text: str) -> int:
    longest = run = 0
    previous = ""
    for char in text:
        run = run + 1 if char == previous else 1
        longest = max(longest, run)
        previous = char
    return longest


def has_sequence_by_definition(lowered: str) -> bool:
    return any(
        sequence[start : start + 8] in lowered
        for sequence in _SEQUENCES
        for start in range(len(sequence) - 8 + 1)
    )


def shannon_by_definition(text: str) -> float:
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values())


# Card-ish digit runs, token-ish ASCII, and any text at all (non-ASCII digits
# and letters take the slow paths).
_card_like = st.text(alphabet="0123456789 -", min_size=10, max_size=24)
_ascii = st.text(alphabet=st.characters(max_codepoint=127), max_size=60)
_token_like = st.text(
    alphabet="aaab0123456789ABCDEFghijklmnopqrstuvwxyz_-", max_size=60
)
_any = st.text(max_size=40)
_texts = st.one_of(_card_like, _ascii, _token_like, _any)


@settings(max_examples=400, deadline=None)
@given(_texts)
def test_digit_helpers_match_their_definition(text: str) -> None:
    assert validators._digits(text) == "".join(c for c in text if c.isdigit())
    assert validators.is_luhn_valid(text) == luhn_by_definition(text)


@settings(max_examples=400, deadline=None)
@given(_texts)
def test_character_helpers_match_their_definition(text: str) -> None:
    assert validators._char_classes(text) == classes_by_definition(text)
    assert validators._has_run(text, 6) == (longest_run(text) >= 6)
    lowered = text.lower()
    assert validators._has_sequence(lowered) == has_sequence_by_definition(lowered)
    if text:
        assert validators._shannon_bits(text) == shannon_by_definition(text)


def test_every_sequence_piece_is_found() -> None:
    for sequence in _SEQUENCES:
        for start in range(len(sequence) - 7):
            piece = sequence[start : start + 8]
            assert validators._has_sequence(f"x{piece}y")
            assert not validators._has_sequence(piece[:7] + "!" + piece[1:7])


def test_runs_at_every_offset() -> None:
    for offset in range(8):
        text = "ab" * 5
        assert validators._has_run(text[:offset] + "zzzzzz" + text, 6)
        assert not validators._has_run(text[:offset] + "zzzzz" + text, 6)


def test_luhn_on_known_numbers() -> None:
    assert validators.is_luhn_valid("4111 1111 1111 1111")
    assert not validators.is_luhn_valid("4111 1111 1111 1112")
    # Arabic-Indic digits are digits too; they take the per-character path.
    assert validators.is_luhn_valid("٤١١١١١١١١١١١١١١١")


def as_text_by_definition(raw: bytes) -> str | None:
    if len(raw) < 4:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    visible = text.replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return text if visible.isprintable() and not visible.isspace() else None


_raw = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=30).map(str.encode),
    st.text(alphabet="ab \t\r\n\x00\x1b\x7fé", max_size=30).map(str.encode),
)


@settings(max_examples=400, deadline=None)
@given(_raw)
def test_decoded_text_check_matches_its_definition(raw: bytes) -> None:
    assert decode._as_text(raw) == as_text_by_definition(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=3, max_size=60), st.booleans())
def test_base64_decoding_matches_b64decode(raw: bytes, urlsafe: bool) -> None:
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw)
    run = encoded.decode().rstrip("=")
    assert decode._from_base64(run) == raw
    # One character off the alphabet: both refuse it.
    assert decode._from_base64(run[:-1] + "*") is None


def normalized_by_definition(text: str) -> str:
    """Every character through the fold tables, then mixed-script words."""
    if text.isascii():
        return text
    fold, high = normalize._tables()
    folded = text.translate(fold)
    data = text.encode("utf-8", "surrogatepass")
    if b"\xf0\xaf" in data or b"\xf3\xa0" in data:
        folded = folded.translate(high)
    return fold_mixed_script_words(folded)


# Letters that fold (full-width, ligatures, mathematical, invisible, tags,
# CJK compatibility) among ones that do not (accented, Cyrillic, CJK, emoji).
_foldable = st.text(
    alphabet=st.one_of(
        st.sampled_from(
            "aZ é Привет 日本 😀 ｆｕｌｌ ﬁ ℌ \u200b\ufe0f \U000e0041 \U0002f800 і \ud800"
        ),
        st.characters(max_codepoint=0x2FFFF),
    ),
    max_size=50,
)


@settings(max_examples=400, deadline=None)
@given(_foldable)
def test_normalized_text_matches_its_definition(text: str) -> None:
    assert normalize.normalize_text(text) == normalized_by_definition(text)
