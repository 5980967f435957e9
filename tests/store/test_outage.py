"""Database outages: spill to the journal, replay in order, lose nothing.

PostgreSQL is reached through a proxy the test cuts or stalls; the shared
server itself is never touched.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.store.records import count, make_record

pytestmark = pytest.mark.postgres
REPLAY_DEADLINE_S = 60


async def _submit(writer, prefix, n, pause_every=50):
    ids = []
    for i in range(n):
        record = make_record(f"{prefix}-{i}")
        writer.submit(record)
        ids.append(record.request_id)
        if i % pause_every == 0:
            await asyncio.sleep(0)  # let the writer run, as RPCs would
    return ids


async def _replayed(writer):
    async with asyncio.timeout(REPLAY_DEADLINE_S):
        await writer.wait_replayed()


async def test_cut_database_loses_nothing(pg_proxy, pg_url, start_writer, metrics, read_rows):
    """Rows submitted before, during and after a cut connection are all stored once."""
    proxy, url = pg_proxy
    writer = await start_writer(url, spend_log_batch_size=50)
    ids = await _submit(writer, "before", 120)
    await writer.flush()
    proxy.cut()
    ids += await _submit(writer, "during", 300)
    await writer.flush()
    journalled = writer.journal_bytes
    proxy.restore()
    ids += await _submit(writer, "after", 80)
    await _replayed(writer)
    await writer.aclose()

    rows = await read_rows(pg_url)
    assert journalled > 0
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert count(metrics, "dropped") == 0


async def test_hung_database_times_out_into_the_journal(pg_proxy, pg_url, start_writer, metrics, read_rows):
    """A database that stops answering counts as an outage after the write timeout."""
    proxy, url = pg_proxy
    writer = await start_writer(url, spend_log_write_timeout_s=0.3, spend_log_batch_size=25)
    ids = await _submit(writer, "warm", 10)
    await writer.flush()
    proxy.hang()
    ids += await _submit(writer, "stalled", 200)
    async with asyncio.timeout(10):
        await writer.flush()  # finishes by journalling, not by waiting on the database
    proxy.restore()
    await _replayed(writer)
    await writer.aclose()

    rows = await read_rows(pg_url)
    assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert count(metrics, "dropped") == 0


async def test_slow_write_spills_a_filling_queue(pg_proxy, pg_url, start_writer, metrics, read_rows):
    """While a write hangs, a queue past half full goes to the journal instead of dropping."""
    proxy, url = pg_proxy
    writer = await start_writer(
        url, spend_log_write_timeout_s=3.0, spend_log_queue_size=400, spend_log_batch_size=20
    )
    ids = await _submit(writer, "warm", 5)
    await writer.flush()
    proxy.hang()
    for _ in range(20):  # 1000 rows while one write waits on the hung connection
        ids += await _submit(writer, f"burst{len(ids)}", 50, pause_every=1000)
        await asyncio.sleep(0.1)
    proxy.restore()
    await _replayed(writer)
    await writer.aclose()

    rows = await read_rows(pg_url)
    assert count(metrics, "dropped") == 0
    assert sorted(r["request_id"] for r in rows) == sorted(ids)


async def test_journal_is_replayed_after_a_restart(pg_proxy, pg_url, start_writer, read_rows):
    """Rows journalled by a writer that stopped during an outage are stored by the next one."""
    proxy, url = pg_proxy
    proxy.cut()
    first = await start_writer(url)  # starts with the database unreachable
    ids = await _submit(first, "lost-db", 150)
    await first.aclose()  # shutdown journals the queue
    assert await _count_table(pg_url) == 0

    proxy.restore()
    second = await start_writer(url)
    await _replayed(second)
    await second.aclose()

    rows = await read_rows(pg_url)
    assert sorted(r["request_id"] for r in rows) == sorted(ids)


async def test_full_journal_drops_and_counts(pg_proxy, pg_url, start_writer, metrics, read_rows):
    """When the journal is full too, the rows that did not fit are counted dropped."""
    proxy, url = pg_proxy
    proxy.cut()
    writer = await start_writer(url, spend_log_journal_max_bytes=64 * 1024)
    ids = await _submit(writer, "flood", 400)
    await writer.flush()
    dropped = count(metrics, "dropped")
    proxy.restore()
    await _replayed(writer)
    await writer.aclose()

    stored = len(await read_rows(pg_url))
    assert dropped > 0
    assert stored + dropped == len(ids)
    assert count(metrics, "written") == stored


async def _count_table(url):
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('spend_logs') IS NOT NULL")
        return await conn.fetchval("SELECT count(*) FROM spend_logs") if exists else 0
    finally:
        await conn.close()
