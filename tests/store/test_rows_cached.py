"""Finding-less guardrail entries come from cached JSON: the same JSON as built in full."""

from __future__ import annotations

import json

import orjson

from service.store.rows import COLUMNS, _guardrail_entry, to_row
from service.types import Action, CallRecord, Direction, FailMode, GuardrailMode
from service.types import GuardrailOutcome, GuardrailStatus

METADATA = COLUMNS.index("metadata")


def _record(request_id: str, start: float) -> CallRecord:
    record = CallRecord(request_id, "Check", "check", start, 0)
    record.direction = Direction.INPUT
    record.end_time = start + 0.25
    record.scan_ns = 12_345
    record.outcomes = (
        GuardrailOutcome("secrets", 3, GuardrailStatus.PASSED, Action.BLOCK, 0),
        GuardrailOutcome("pii", 1, GuardrailStatus.NOT_RUN, Action.MASK, 0, reason="no text"),
        GuardrailOutcome(
            "jailbreak", 2, GuardrailStatus.FAILED_OPEN, Action.BLOCK, 0,
            reason="engine error: X", mode=GuardrailMode.DRY_RUN, fail_mode=FailMode.OPEN,
        ),
    )  # fmt: skip
    return record


def test_cached_entries_equal_entries_built_in_full():
    """Each entry, cached or not, parses to what _guardrail_entry builds, times included."""
    for request_id, start in (("a", 1_700_000_000.123456), ("b", 1_800_000_001.5)):
        record = _record(request_id, start)
        entries = json.loads(to_row(record)[METADATA])["guardrail_information"]

        built = [_guardrail_entry(record, o, []) for o in record.outcomes]
        assert entries == json.loads(orjson.dumps(built))  # enums as their values
        assert [e["start_time"] for e in entries] == [start] * 3


def test_the_same_record_gives_the_same_row_twice():
    """The second row (served from the cache) is byte for byte the first."""
    record = _record("c", 1_750_000_000.0)

    assert to_row(record) == to_row(record)
