"""Previews of a match, and JSON pointers, that never repeat what was sent."""

from __future__ import annotations

import hashlib

__all__ = ["redacted_pointer", "redacted_preview"]

# Below this length even two characters at each end give too much away.
_MIN_REVEAL_LENGTH = 16
_KEY_MARKER = "~key"


def redacted_preview(match: str) -> str:
    """``"gh…9f"`` for long matches, ``"***(7)"`` for short ones; never the match."""
    if len(match) < _MIN_REVEAL_LENGTH:
        return f"***({len(match)})"

    return f"{match[:2]}…{match[-2:]}"


def _redacted_token(token: str) -> str:
    if token.isdigit() or token == _KEY_MARKER:
        return token
    # Object keys are caller content (a key can be the secret itself): records
    # keep a short hash, enough to tell keys apart and to match them up.
    return "#" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def redacted_pointer(pointer: str) -> str:
    """A JSON pointer for records: array indices kept, object keys hashed."""
    if not pointer:
        return pointer
    tokens = pointer.split("/")[1:]
    return "/" + "/".join(_redacted_token(token) for token in tokens)
