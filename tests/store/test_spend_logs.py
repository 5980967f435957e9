from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from service.settings import load_settings
from service.store.backends import COLUMNS, open_backend
from service.store.spend_logs import SpendLogWriter, to_row
from service.telemetry.metrics import Metrics
from service.types import (
    Action,
    CallRecord,
    Caller,
    Decision,
    Direction,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
    Severity,
)

SECRET = "sk-live-4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f"


def make_record(request_id: str | None = None, **changes: object) -> CallRecord:
    record = CallRecord(
        request_id=request_id or uuid.uuid4().hex,
        method="Check",
        call_type="check",
        start_time=1_700_000_000.25,
        start_ns=0,
        end_time=1_700_000_000.26,
        duration_ns=10_000_000,
        api_key_hash="ab" * 32,
        caller=Caller(user="u1", team_id="t1", request_tags=("prod", "chat")),
        direction=Direction.INPUT,
        decision=Decision.MASK,
        outcomes=(
            GuardrailOutcome("secrets", 3, GuardrailStatus.INTERVENED, Action.MASK, 1),
            GuardrailOutcome("pii", 1, GuardrailStatus.PASSED, Action.BLOCK),
        ),
        findings=(
            Finding(
                guardrail="secrets",
                rule_id="openai-key",
                category="credential",
                severity=Severity.HIGH,
                action=Action.MASK,
                path="messages[0].content",
                start=10,
                end=48,
                redacted_preview=SECRET,  # must never be stored
            ),
        ),
        applied_guardrails=("secrets", "pii"),
        registry_generation=7,
        worker=1,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def count(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "guardrail_spend_log_rows_total", {"result": result}
    )
    return value or 0.0


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


async def start_writer(url: str, metrics: Metrics, **overrides: object) -> SpendLogWriter:
    values: dict[str, object] = {"spend_log_flush_interval_s": 0.05, **overrides}
    settings = load_settings(database_url=url, **values)
    writer = SpendLogWriter(settings, metrics)
    await writer.start()
    return writer


async def test_every_submitted_record_becomes_one_row(database_url, metrics, read_rows):
    """N records submitted, then flushed, are N rows, in batches of the configured size."""
    writer = await start_writer(database_url, metrics, spend_log_batch_size=64)
    for _ in range(300):
        writer.submit(make_record())
    await writer.flush()

    rows = await read_rows(database_url)
    await writer.aclose()
    assert len(rows) == 300
    assert count(metrics, "written") == 300


async def test_flush_waits_for_rows_below_the_batch_size(database_url, metrics, read_rows):
    """A lone record is written by flush() even though no batch filled up."""
    writer = await start_writer(database_url, metrics, spend_log_flush_interval_s=30)
    writer.submit(make_record("only-one"))
    await writer.flush()

    rows = await read_rows(database_url)
    await writer.aclose()
    assert [r["request_id"] for r in rows] == ["only-one"]


async def test_duplicate_request_id_is_stored_once(database_url, metrics, read_rows):
    """Inserting the same request_id twice (a replay) leaves one row."""
    writer = await start_writer(database_url, metrics)
    writer.submit(make_record("dup"))
    writer.submit(make_record("dup"))
    await writer.flush()
    writer.submit(make_record("dup"))
    await writer.aclose()

    rows = await read_rows(database_url)
    assert [r["request_id"] for r in rows] == ["dup"]


async def test_poison_row_does_not_sink_its_batch(database_url, metrics, read_rows):
    """A row the database rejects (bigint overflow) fails alone; its batch is kept."""
    writer = await start_writer(database_url, metrics, spend_log_batch_size=10)
    writer.submit(make_record("good-1"))
    writer.submit(make_record("poison", registry_generation=2**63))
    writer.submit(make_record("good-2"))
    await writer.aclose()

    rows = await read_rows(database_url)
    assert sorted(r["request_id"] for r in rows) == ["good-1", "good-2"]
    assert count(metrics, "written") == 2
    assert count(metrics, "failed") == 1


async def test_full_queue_drops_and_counts(sqlite_url, metrics, read_rows):
    """Past the queue size, submit() returns at once, drops the row and counts it."""
    settings = load_settings(database_url=sqlite_url, spend_log_queue_size=5)
    writer = SpendLogWriter(settings, metrics)
    for _ in range(8):
        writer.submit(make_record())
    depth = metrics.registry.get_sample_value("guardrail_spend_log_queue_depth")
    await writer.start()
    await writer.aclose()

    assert depth == 5
    assert count(metrics, "dropped") == 3
    assert len(await read_rows(sqlite_url)) == 5


async def test_row_follows_litellm_spend_logs_and_holds_no_content(
    database_url, metrics, read_rows
):
    """Columns match the table contract; metadata has rule ids and offsets, not text."""
    writer = await start_writer(database_url, metrics)
    writer.submit(make_record("r1"))
    await writer.aclose()

    (row,) = await read_rows(database_url)
    metadata = row["metadata"]
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert set(row) == set(COLUMNS)
    assert (row["status"], row["decision"], row["grpc_code"]) == ("success", "MASK", "OK")
    assert row["api_key"] == "ab" * 32 and row["user"] == "u1"
    assert json.loads(row["request_tags"]) == ["prod", "chat"]
    assert row["registry_generation"] == 7 and row["worker"] == 1
    assert row["request_duration_ms"] == pytest.approx(10.0)
    info = metadata["guardrail_information"][0]
    assert info["guardrail_name"] == "secrets"
    assert info["guardrail_mode"] == "input"
    assert info["guardrail_status"] == "intervened"
    assert info["guardrail_response"]["rule_ids"] == ["openai-key"]
    assert metadata["findings"][0] == {
        "guardrail": "secrets", "rule_id": "openai-key", "category": "credential",
        "path": "messages[0].content", "json_pointer": "", "start": 10, "end": 48,
    }  # fmt: skip
    assert metadata["applied_guardrails"] == ["secrets", "pii"]
    assert SECRET not in json.dumps(row, default=str)


async def test_failed_call_row_carries_the_error(database_url, metrics, read_rows):
    """A failed call is a 'failure' row with its code and error, and no decision."""
    record = make_record(
        "failed",
        grpc_code="NOT_FOUND",
        error_reason="GUARDRAIL_NOT_FOUND",
        error_message="unknown guardrail 'x'",
        decision=None,
        outcomes=(),
        findings=(),
    )
    writer = await start_writer(database_url, metrics)
    writer.submit(record)
    await writer.aclose()

    (row,) = await read_rows(database_url)
    metadata = row["metadata"]
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert (row["status"], row["grpc_code"], row["decision"]) == ("failure", "NOT_FOUND", "")
    assert metadata["error"] == {
        "reason": "GUARDRAIL_NOT_FOUND",
        "message": "unknown guardrail 'x'",
    }


async def test_nul_and_lone_surrogates_are_made_storable(database_url, metrics, read_rows):
    """Text PostgreSQL would refuse (NUL, lone surrogates) is cleaned, not lost."""
    record = make_record(
        "nul",
        caller=Caller(user="a\x00b", request_tags=("t\x00ag", "x\ud800y")),
        client_request_id="c\x00id",
        applied_guardrails=("sec\x00rets",),
    )
    writer = await start_writer(database_url, metrics)
    writer.submit(record)
    await writer.aclose()

    (row,) = await read_rows(database_url)
    assert row["user"] == "ab"
    assert row["client_request_id"] == "cid"
    assert json.loads(row["request_tags"]) == ["tag", "x?y"]
    assert count(metrics, "failed") == 0


def test_to_row_matches_the_column_order():
    """to_row yields one value per column, in COLUMNS order."""
    row = to_row(make_record("r"))

    assert len(row) == len(COLUMNS)
    assert row[COLUMNS.index("request_id")] == "r"
    assert row[COLUMNS.index("status")] == "success"


@pytest.mark.parametrize("relative", [True, False])
async def test_sqlite_urls_relative_and_absolute(tmp_path, monkeypatch, relative):
    """sqlite:///rel/path and sqlite:////abs/path both work, creating parent dirs."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "deep" / "dir" / "spend.db"
    url = "sqlite:///deep/dir/spend.db" if relative else f"sqlite:///{target}"
    backend = open_backend(url)
    await backend.open()
    await backend.insert_many([to_row(make_record("x"))])
    await backend.close()

    assert target.exists()


def test_unknown_url_scheme_is_refused():
    """A URL that is neither SQLite nor PostgreSQL is refused without echoing it."""
    with pytest.raises(ValueError) as caught:
        open_backend("mysql://user:hunter2@db/x")

    assert "hunter2" not in str(caught.value)


async def test_sqlite_uses_wal_and_records_the_schema_version(sqlite_url):
    """The SQLite store runs in WAL mode and notes its schema version."""
    backend = open_backend(sqlite_url)
    await backend.open()
    await backend.close()

    import sqlite3

    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        version = db.execute("SELECT version FROM guardrail_schema_version").fetchone()
    assert mode == "wal"
    assert version == (1,)
    assert Path(sqlite_url.removeprefix("sqlite:///")).exists()
