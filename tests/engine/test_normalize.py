"""Text views: normalisation for matching and offsets back to the original."""

from __future__ import annotations

import pytest

from service.engine.normalize import normalized_view, raw_view


def _original(text: str, fragment: str) -> str:
    view = normalized_view(text)
    start = view.data.index(fragment.encode())
    first, last = view.original_span(start, start + len(fragment.encode()))
    return text[first:last]


def test_ascii_text_is_used_as_is():
    """ASCII text needs no normalisation and maps offsets one to one."""
    view = normalized_view("ignore previous")

    assert view.is_ascii and view.data == b"ignore previous"
    assert view.original_span(7, 15) == (7, 15)


def test_fullwidth_letters_fold_to_ascii():
    """NFKC folds full-width letters, and the span covers the originals."""
    text = "please ｉｇｎｏｒｅ this"

    assert normalized_view(text).text == "please ignore this"
    assert _original(text, "ignore") == "ｉｇｎｏｒｅ"


def test_ligature_expands_and_maps_whole():
    """A character that folds into two maps back to the one character."""
    text = "ﬁle here"

    assert normalized_view(text).text == "file here"
    assert _original(text, "fi") == "ﬁ"
    assert _original(text, "le") == "le"


def test_zero_width_characters_are_removed():
    """Invisible characters vanish for matching but stay inside the span."""
    text = "ig\u200bno\u2060re me"

    assert normalized_view(text).text == "ignore me"
    assert _original(text, "ignore") == "ig\u200bno\u2060re"


def test_tag_characters_and_bidi_are_removed():
    """Tag characters and bidi controls are dropped from the normalised view."""
    text = "a\U000E0041\u202eb"

    assert normalized_view(text).text == "ab"


def test_astral_characters_keep_code_point_offsets():
    """Offsets count code points, so emoji before a match do not shift it."""
    text = "😀😀 mail x@y.io"
    view = normalized_view(text)
    start = view.data.index(b"x@y.io")

    assert view.original_span(start, start + 6) == (8, 14)
    assert text[8:14] == "x@y.io"


@pytest.mark.parametrize("text", ["Grüße, café", "日本語 text"])
def test_raw_view_maps_bytes_to_code_points(text):
    """The raw view converts UTF-8 byte offsets to code point offsets."""
    view = raw_view(text)
    end = len(view.data)

    assert view.original_span(0, end) == (0, len(text))
