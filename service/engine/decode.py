"""Encoded segments of a text, decoded so every guardrail can scan them too.

Base64 (standard and URL-safe), hex (plain runs and ``\\x41`` escapes),
percent-encoding and Unicode tag characters are recognised. Percent and
escaped-hex runs are looked for only when the scanner's own RE2 Set pass saw
their *gate* (``GATES``); base64/hex runs are found by one standalone RE2
search instead (about 3 µs per KB), because their gate, a counted repetition
of a wide class, made the shared Set some 40% slower on prose. Only text is
kept: a run that decodes to binary (a random key, a hash, a long identifier
read as base64) is dropped without a finding.

Bounds: encoded runs of 16 characters to 64 KB, at most ``MAX_SEGMENTS``
decoded segments and ``MAX_DECODED_BYTES`` per scanned segment in all, and
decoded text is searched for further encodings ``MAX_DEPTH`` levels deep
(the scanner enforces the depth). A run longer than 64 KB is not decoded.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from service.engine.regex import Regex, compile_internal

__all__ = [
    "ALWAYS",
    "GATES",
    "MAX_CANDIDATES",
    "MAX_DECODED_BYTES",
    "MAX_DEPTH",
    "MAX_RUN",
    "MAX_SEGMENTS",
    "MIN_RUN",
    "Budget",
    "Encoded",
    "encoded_segments",
    "tag_segments",
]

MIN_RUN = 16
MAX_RUN = 64 * 1024
MAX_DEPTH = 2
MAX_SEGMENTS = 16
MAX_DECODED_BYTES = 256 * 1024
# Candidate runs looked at per kind and text, decodable or not: bounds the
# work on base64-like noise. Known shortcoming: a payload placed after this
# many decoy runs is not decoded (the raw text is still scanned).
MAX_CANDIDATES = 256
# Kind -> a cheap pattern that must occur for the kind to be looked for; the
# scanner adds these to its RE2 Set. Kinds in ALWAYS are looked for anyway.
GATES: dict[str, str] = {
    "percent": "%[0-9A-Fa-f]{2}",
    "escaped_hex": r"\\x[0-9A-Fa-f]{2}",
}
ALWAYS = frozenset({"base64"})
_RUNS: dict[str, str] = {
    # One pattern finds base64 and plain hex runs: hex is tried first.
    "base64": "[A-Za-z0-9+/_-]{16,}={0,2}",
    "percent": "(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9._~!*'()+-])*%[0-9A-Fa-f]{2}"
    "(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9._~!*'()+-])*",
    "escaped_hex": r"(?:\\x[0-9A-Fa-f]{2}){4,}",
}
_TAG_RUN = "[\\x{E0020}-\\x{E007E}]+"
# UTF-8 of U+E0000-E007F starts with one of these.
_TAG_MARKERS = (b"\xf3\xa0\x80", b"\xf3\xa0\x81")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_MIN_TEXT = 4
# ASCII control bytes that are not whitespace the printable test forgives.
_CONTROL_BYTES = bytes([*range(0, 9), 11, 12, *range(14, 32), 127])
# URL-safe base64 read as standard base64 (what b64decode's altchars does).
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


@dataclass(frozen=True, slots=True)
class Encoded:
    """A decoded segment: byte span of the encoded run in its view, and the text."""

    start: int
    end: int
    text: str
    kind: str


@dataclass(slots=True)
class Budget:
    """What is left to decode for one scanned segment (shared by all levels)."""

    segments: int = MAX_SEGMENTS
    decoded_bytes: int = MAX_DECODED_BYTES

    def take(self, size: int) -> bool:
        if self.segments <= 0 or size > self.decoded_bytes:
            return False
        self.segments -= 1
        self.decoded_bytes -= size
        return True


@functools.cache
def _run_regex(kind: str) -> Regex:
    return compile_internal(_RUNS[kind])


@functools.cache
def _tag_regex() -> Regex:
    return compile_internal(_TAG_RUN)


def _as_text(raw: bytes | None) -> str | None:
    """Decoded bytes as text, or None when they are not readable text."""
    if raw is None or len(raw) < _MIN_TEXT:
        return None
    # A control byte is a control character in any UTF-8 text, so the text
    # would fail the printable test below; random bytes (most decoded noise)
    # nearly always hold one, and this C-level test is cheaper than decoding.
    if len(raw.translate(None, _CONTROL_BYTES)) != len(raw):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    visible = text.replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return text if visible.isprintable() and not visible.isspace() else None


def _from_hex(run: str) -> bytes | None:
    if len(run) % 2 or not _HEX_DIGITS.issuperset(run):
        return None
    return bytes.fromhex(run)


def _from_base64(run: str) -> bytes | None:
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    try:
        # b64decode(altchars, validate=True) without its per-call set-up.
        raw = (body + "=" * (-len(body) % 4)).encode("ascii")
        if "-" in body or "_" in body:
            raw = raw.translate(_URLSAFE_TO_STANDARD)
        return binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _decode_base64_or_hex(run: str) -> str | None:
    return _as_text(_from_hex(run)) or _as_text(_from_base64(run))


def _decode_percent(run: str) -> str | None:
    decoded = _as_text(unquote_to_bytes(run.replace("+", " ")))
    return decoded if decoded != run else None


def _decode_escaped_hex(run: str) -> str | None:
    return _as_text(_from_hex(run.replace("\\x", "")))


_DECODERS: dict[str, Callable[[str], str | None]] = {
    "base64": _decode_base64_or_hex,
    "percent": _decode_percent,
    "escaped_hex": _decode_escaped_hex,
}


def encoded_segments(
    data: bytes, kinds: set[str], budget: Budget
) -> Iterator[Encoded]:
    """Decoded segments of ``data`` (UTF-8 bytes) for the gate kinds that hit."""
    for kind in sorted(kinds | ALWAYS):
        for start, end in _run_regex(kind).spans(data, MAX_CANDIDATES):
            if not MIN_RUN <= end - start <= MAX_RUN:
                continue
            decoded = _DECODERS[kind](data[start:end].decode("ascii"))
            if decoded is None:
                continue
            if not budget.take(len(decoded)):
                return
            yield Encoded(start, end, decoded, kind)


def tag_segments(data: bytes, budget: Budget) -> Iterator[Encoded]:
    """Text hidden in tag characters (U+E0020-E007E), as the ASCII it encodes."""
    if not any(marker in data for marker in _TAG_MARKERS):
        return
    for start, end in _tag_regex().spans(data, MAX_SEGMENTS):
        hidden = "".join(chr(ord(c) - 0xE0000) for c in data[start:end].decode())
        if len(hidden) < 2 or not budget.take(len(hidden)):
            continue
        yield Encoded(start, end, hidden, "tags")
