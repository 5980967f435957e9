"""A CallRecord as a row: LiteLLM names, no raw content unless opted in."""

from __future__ import annotations

import json

import pytest

from service.store.rows import COLUMNS, to_row
from service.types import GuardrailStatus
from tests.store.records import PREVIEW, make_record


def _column(row, name):
    return row[COLUMNS.index(name)]


def test_to_row_matches_the_column_order():
    """to_row yields one value per column, in COLUMNS order."""
    row = to_row(make_record("r"))

    assert len(row) == len(COLUMNS)
    assert _column(row, "request_id") == "r"
    assert _column(row, "status") == "success"


def test_guardrail_information_uses_litellm_field_names():
    """Each guardrail entry carries LiteLLM's per-guardrail keys and status values."""
    record = make_record()
    metadata = json.loads(_column(to_row(record), "metadata"))

    secrets, pii = metadata["guardrail_information"]
    assert set(secrets) >= {
        "guardrail_name", "guardrail_mode", "guardrail_status", "guardrail_response",
        "guardrail_provider", "start_time", "end_time", "duration", "masked_entity_count",
    }  # fmt: skip
    assert (secrets["guardrail_name"], secrets["guardrail_mode"]) == ("secrets", "input")
    assert secrets["guardrail_status"] == "guardrail_intervened"
    assert pii["guardrail_status"] == "success"
    assert secrets["guardrail_response"]["rule_ids"] == ["openai-key"]
    assert secrets["masked_entity_count"] == {"credential": 1}
    assert secrets["start_time"] == record.start_time
    assert secrets["duration"] == pytest.approx(40e-6)
    assert metadata["applied_guardrails"] == ["secrets", "pii"]


@pytest.mark.parametrize(
    ("status", "litellm"),
    [
        (GuardrailStatus.PASSED, "success"),
        (GuardrailStatus.INTERVENED, "guardrail_intervened"),
        (GuardrailStatus.FAILED_OPEN, "guardrail_failed_to_respond"),
        (GuardrailStatus.NOT_RUN, "not_run"),
    ],
)
def test_every_guardrail_status_maps_to_litellm(status, litellm):
    """Each of our statuses has LiteLLM's value, and ours stays in guardrail_response."""
    from service.types import Action, GuardrailOutcome

    record = make_record(outcomes=(GuardrailOutcome("g", 1, status, Action.BLOCK),))
    (entry,) = json.loads(_column(to_row(record), "metadata"))["guardrail_information"]

    assert entry["guardrail_status"] == litellm
    assert entry["guardrail_response"]["status"] == status.value


def test_failed_call_row_carries_the_error():
    """A failed call is a 'failure' row with its code and error, and no decision."""
    record = make_record(
        grpc_code="NOT_FOUND", error_reason="GUARDRAIL_NOT_FOUND",
        error_message="unknown guardrail 'x'", decision=None, outcomes=(), findings=(),
    )  # fmt: skip
    row = to_row(record)

    metadata = json.loads(_column(row, "metadata"))
    assert (_column(row, "status"), _column(row, "grpc_code")) == ("failure", "NOT_FOUND")
    assert _column(row, "decision") == ""
    assert metadata["error"] == {"reason": "GUARDRAIL_NOT_FOUND", "message": "unknown guardrail 'x'"}


def test_content_columns_stay_empty_unless_opted_in():
    """messages/response are '{}' by default even when masked content is available."""
    record = make_record(masked_content=lambda: '{"text":"hi [EMAIL]"}')

    default = to_row(record)
    opted_in = to_row(record, store_content=True)

    assert (_column(default, "messages"), _column(default, "response")) == ("{}", "{}")
    assert _column(opted_in, "messages") == '{"text":"hi [EMAIL]"}'
    assert _column(opted_in, "response") == "{}"


def test_no_preview_or_content_leaks_into_the_row():
    """The finding's redacted preview is not stored anywhere in the row."""
    row = to_row(make_record())

    assert PREVIEW not in json.dumps(row)
