"""The writer: batches, idempotency, poison rows, dead letters, drops."""

from __future__ import annotations

import asyncio
import json
import time

from service.settings import load_settings
from service.store.spend_logs import SpendLogWriter
from service.types import Caller
from tests.store.records import count, make_record


async def test_every_submitted_record_becomes_one_row(database_url, start_writer, metrics, read_rows):
    """N records submitted, then flushed, are N rows, in batches of the configured size."""
    writer = await start_writer(database_url, spend_log_batch_size=64)
    for _ in range(300):
        writer.submit(make_record())
    await writer.flush()

    rows = await read_rows(database_url)
    await writer.aclose()
    assert len(rows) == 300
    assert count(metrics, "written") == 300


async def test_batches_are_cut_by_bytes_too(database_url, start_writer, metrics, read_rows):
    """A byte cap smaller than one batch still writes every row (in more batches)."""
    writer = await start_writer(database_url, spend_log_batch_max_bytes=2048)
    for _ in range(40):
        writer.submit(make_record())
    await writer.aclose()

    assert len(await read_rows(database_url)) == 40
    assert count(metrics, "written") == 40


async def test_flush_waits_for_rows_below_the_batch_size(database_url, start_writer, read_rows):
    """A lone record is written by flush() even though no batch filled up."""
    writer = await start_writer(database_url, spend_log_flush_interval_s=30)
    writer.submit(make_record("only-one"))
    await writer.flush()

    rows = await read_rows(database_url)
    await writer.aclose()
    assert [r["request_id"] for r in rows] == ["only-one"]


async def test_a_steady_trickle_is_stored_in_interval_batches(database_url, start_writer, read_rows):
    """Rows arriving one by one wait for the flush interval and are stored together.

    Storing the few rows that queued while the last store ran, again and
    again, cost a transaction per handful of rows under steady load.
    """
    writer = await start_writer(database_url, spend_log_flush_interval_s=0.1)
    batches: list[int] = []
    real_insert = writer._backend.insert_many

    async def counted_insert(rows):
        batches.append(len(rows))
        await real_insert(rows)

    writer._backend.insert_many = counted_insert
    for _ in range(300):  # three rows a millisecond, while stores run
        for _ in range(3):
            writer.submit(make_record())
        await asyncio.sleep(0.001)
    await writer.flush()

    rows = await read_rows(database_url)
    await writer.aclose()
    assert len(rows) == 900
    assert sum(batches) == 900
    # Only the last batch (the flush) may be a part one.
    assert min(batches[:-1], default=20) >= 20, batches


async def test_batches_cut_by_bytes_follow_each_other_without_waiting(
    database_url, start_writer, read_rows
):
    """A batch stopped at the byte cap with rows behind it is full: the next goes at once.

    Waiting the flush interval after each one wrote one cap's worth of rows
    per interval (one row a time at the smallest cap: minutes for a burst).
    """
    interval = 2.0
    writer = await start_writer(
        database_url, spend_log_flush_interval_s=interval, spend_log_batch_max_bytes=1024
    )
    stored_at: list[float] = []
    batches: list[int] = []
    real_insert = writer._backend.insert_many

    async def timed_insert(rows):
        batches.append(len(rows))
        await real_insert(rows)
        stored_at.append(time.monotonic())

    writer._backend.insert_many = timed_insert
    for _ in range(20):
        writer.submit(make_record())
    while sum(batches) < 20 and (not stored_at or time.monotonic() - stored_at[0] < 30):
        await asyncio.sleep(0.05)
    await writer.aclose()

    assert sum(batches) == 20 and len(batches) > 1, batches
    assert stored_at[-1] - stored_at[0] < interval / 2, (batches, stored_at)
    assert len(await read_rows(database_url)) == 20


async def test_duplicate_request_id_is_stored_once(database_url, start_writer, read_rows):
    """Inserting the same row twice (a replay) leaves one row."""
    writer = await start_writer(database_url)
    record = make_record("dup")
    writer.submit(record)
    writer.submit(record)
    await writer.flush()
    writer.submit(record)
    await writer.aclose()

    rows = await read_rows(database_url)
    assert [r["request_id"] for r in rows] == ["dup"]


async def test_a_replayed_row_beside_new_ones_keeps_the_new_ones(
    database_url, start_writer, read_rows
):
    """A batch mixing an already stored row with new ones stores each exactly once."""
    writer = await start_writer(database_url)
    stored = make_record("stored-earlier")
    writer.submit(stored)
    await writer.flush()
    for record in (make_record("new-1"), stored, make_record("new-2")):
        writer.submit(record)
    await writer.aclose()

    rows = await read_rows(database_url)
    assert sorted(r["request_id"] for r in rows) == ["new-1", "new-2", "stored-earlier"]


async def test_poison_row_does_not_sink_its_batch(database_url, start_writer, metrics, read_rows, tmp_path):
    """A row the database refuses (bigint overflow) is dead-lettered alone; its batch is kept."""
    writer = await start_writer(database_url, spend_log_batch_size=100)
    good = [f"good-{i}" for i in range(57)]
    for i, request_id in enumerate(good):
        writer.submit(make_record(request_id))
        if i == 23:
            writer.submit(make_record("poison", registry_generation=2**63))
    await writer.aclose()

    rows = await read_rows(database_url)
    assert sorted(r["request_id"] for r in rows) == sorted(good)
    assert (count(metrics, "written"), count(metrics, "failed")) == (57, 1)
    (letter,) = (tmp_path / "journal").glob("slot-*/dead-letter.jsonl")
    (entry,) = [json.loads(line) for line in letter.read_text().splitlines()]
    assert entry["row"]["request_id"] == "poison"
    assert entry["reason"] == "OverflowError"


async def test_several_poison_rows_each_fail_alone(database_url, start_writer, metrics, read_rows):
    """Three bad rows spread over a batch are the only rows lost."""
    writer = await start_writer(database_url, spend_log_batch_size=64)
    for i in range(64):
        bad = i in (0, 31, 63)
        writer.submit(make_record(f"r{i}", registry_generation=2**63 if bad else 1))
    await writer.aclose()

    assert len(await read_rows(database_url)) == 61
    assert (count(metrics, "written"), count(metrics, "failed")) == (61, 3)


async def test_nul_and_lone_surrogates_are_made_storable(database_url, start_writer, metrics, read_rows):
    """Text PostgreSQL would refuse (NUL, lone surrogates) is cleaned, not lost."""
    record = make_record(
        "nul",
        caller=Caller(user="a\x00b", request_tags=("t\x00ag", "x\ud800y")),
        client_request_id="c\x00id",
        applied_guardrails=("sec\x00rets",),
    )
    writer = await start_writer(database_url)
    writer.submit(record)
    await writer.aclose()

    (row,) = await read_rows(database_url)
    assert row["user"] == "ab"
    assert row["client_request_id"] == "cid"
    assert json.loads(row["request_tags"]) == ["tag", "x?y"]
    assert count(metrics, "failed") == 0
