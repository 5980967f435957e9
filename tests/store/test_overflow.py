"""A full queue overflows into the journal instead of dropping rows.

The queue fills when records arrive faster than the writer task gets the
event loop (a burst between two awaits) or while a write is slow. Those rows
go to the journal in order and are replayed; only a full journal drops.
"""

from __future__ import annotations

import asyncio

import pytest

from service.settings import load_settings
from service.store.spend_logs import SpendLogWriter
from tests.store.records import count, make_record

REPLAY_DEADLINE_S = 60


async def _replayed(writer):
    async with asyncio.timeout(REPLAY_DEADLINE_S):
        await writer.wait_replayed()


async def test_burst_past_the_queue_is_journalled_not_dropped(database_url, start_writer, metrics, read_rows):
    """500 records in one burst through a queue of 10: every one becomes a row, none dropped."""
    writer = await start_writer(database_url, spend_log_queue_size=10, spend_log_batch_size=5)
    ids = []
    for i in range(500):  # no await: the writer task cannot run in between
        record = make_record(f"burst-{i}")
        writer.submit(record)
        ids.append(record.request_id)
    await _replayed(writer)
    await writer.aclose()

    rows = await read_rows(database_url)
    assert count(metrics, "dropped") == 0
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert count(metrics, "written") == 500


@pytest.mark.postgres
async def test_hung_database_and_small_queue_lose_nothing(pg_proxy, pg_url, start_writer, metrics, read_rows):
    """A hung database and a tiny queue: the overflow is journalled and replayed on return."""
    proxy, url = pg_proxy
    writer = await start_writer(
        url, spend_log_queue_size=8, spend_log_batch_size=4, spend_log_write_timeout_s=2.0
    )
    warm = make_record("warm")
    writer.submit(warm)
    await writer.flush()
    proxy.hang()
    ids = [warm.request_id]
    for round_ in range(10):
        for i in range(30):
            record = make_record(f"hung-{round_}-{i}")
            writer.submit(record)
            ids.append(record.request_id)
        await asyncio.sleep(0.05)  # RPCs keep coming while the write hangs
    proxy.restore()
    await _replayed(writer)
    await writer.aclose()

    rows = await read_rows(pg_url)
    assert count(metrics, "dropped") == 0
    assert sorted(r["request_id"] for r in rows) == sorted(ids)


async def test_overflow_drops_only_when_the_journal_is_full(sqlite_url, tmp_path, metrics, read_rows):
    """Records submitted before start() wait; past queue + overflow room they are dropped and counted."""
    settings = load_settings(
        database_url=sqlite_url, spend_log_queue_size=5, spend_log_journal_path=tmp_path / "j"
    )
    writer = SpendLogWriter(settings, metrics)
    for _ in range(8):
        writer.submit(make_record())
    await writer.start()
    await _replayed(writer)
    await writer.aclose()

    assert count(metrics, "dropped") == 0
    assert len(await read_rows(sqlite_url)) == 8


@pytest.mark.postgres
async def test_overflow_into_a_full_journal_counts_the_drops(pg_proxy, pg_url, start_writer, metrics, read_rows):
    """Database down, small queue, tiny journal: stored + dropped equals submitted."""
    proxy, url = pg_proxy
    proxy.cut()
    writer = await start_writer(
        url, spend_log_queue_size=10, spend_log_journal_max_bytes=64 * 1024
    )
    for i in range(600):
        writer.submit(make_record(f"flood-{i}"))
    await writer.flush()
    dropped = count(metrics, "dropped")
    proxy.restore()
    await _replayed(writer)
    await writer.aclose()

    stored = len(await read_rows(pg_url))
    assert dropped > 0
    assert stored + dropped == 600
