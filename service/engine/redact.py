"""Previews of a match that say what was found without repeating it."""

from __future__ import annotations

__all__ = ["redacted_preview"]

# Below this length even two characters at each end give too much away.
_MIN_REVEAL_LENGTH = 16


def redacted_preview(match: str) -> str:
    """``"gh…9f"`` for long matches, ``"***(7)"`` for short ones; never the match."""
    if len(match) < _MIN_REVEAL_LENGTH:
        return f"***({len(match)})"

    return f"{match[:2]}…{match[-2:]}"
