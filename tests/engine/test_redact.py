"""Previews never contain the match itself."""

from __future__ import annotations

from service.engine.redact import redacted_preview


def test_long_match_shows_ends_only():
    """Long matches keep two characters at each end."""
    secret = "ghp_" + "x" * 30 + "9f"

    assert redacted_preview(secret) == "gh…9f"


def test_short_match_shows_length_only():
    """Short matches reveal only their length."""
    assert redacted_preview("hunter2") == "***(7)"
