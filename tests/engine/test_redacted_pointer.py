"""JSON pointers as records keep them: indices kept, object keys hashed."""

from __future__ import annotations

from service.engine.redact import redacted_pointer
from tests.tokens import aws_access_key_id


def test_object_keys_are_hashed_and_indices_kept():
    """A key that is itself a secret never survives into the record's pointer."""
    key = aws_access_key_id()

    redacted = redacted_pointer(f"/{key}/items/3/~key")

    assert key not in redacted
    parts = redacted.split("/")
    assert parts[0] == "" and parts[3] == "3" and parts[4] == "~key"
    assert parts[1].startswith("#") and parts[1] != parts[2]


def test_same_key_gives_same_hash_and_empty_pointer_stays_empty():
    """Hashes are stable, so two findings under one key can be matched up."""
    assert redacted_pointer("/a/b") == redacted_pointer("/a/b")
    assert redacted_pointer("") == ""
