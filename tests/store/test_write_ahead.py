"""The write-ahead file: rows outlive a killed process, once; bounded; rotated."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.settings import load_settings
from service.store.rows import to_row
from service.store.write_ahead import WriteAhead
from service.telemetry.logging import configure_logging
from tests.store.records import count, make_record

KILLED_AFTER_S = 60  # the child's longest wait before it is killed anyway

# A worker that answered calls and dies before its writer stored them: a
# flush interval of an hour, and a batch size nothing reaches.
_CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from service.settings import load_settings
    from service.store.spend_logs import SpendLogWriter
    from service.telemetry.metrics import Metrics
    from tests.store.records import make_record

    async def main(url, journal, stored, unstored):
        settings = load_settings(
            database_url=url,
            spend_log_journal_path=Path(journal),
            spend_log_flush_interval_s=3600,
            spend_log_batch_size=100_000,
        )
        writer = SpendLogWriter(settings, Metrics(), slot=3)
        await writer.start()
        for i in range(stored):
            writer.submit(make_record(f"stored-{i}"))
        await writer.flush()
        for i in range(unstored):
            writer.submit(make_record(f"queued-{i}"))
        print("answered", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
)


def _run_and_kill(url: str, journal: Path, stored: int, unstored: int) -> None:
    """Run a writer in a child process, and SIGKILL it once it has answered."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, str(journal), str(stored), str(unstored)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "answered"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(KILLED_AFTER_S)
    assert child.returncode == -signal.SIGKILL


def _wal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("write-ahead-*/rows-*.wal"))


async def test_rows_of_a_killed_writer_are_stored_once_by_its_successor(
    database_url, tmp_path, start_writer, metrics, read_rows
):
    """SIGKILL before the queue was written: the next writer of the slot stores
    every answered row, and the ones already stored are not stored twice."""
    journal = tmp_path / "journal"
    await asyncio.to_thread(_run_and_kill, database_url, journal, 20, 150)
    assert [f.stat().st_size > 0 for f in _wal_files(journal)] == [True]

    writer = await start_writer(database_url, slot=3)
    await writer.aclose()

    ids = [r["request_id"] for r in await read_rows(database_url)]
    expected = [f"stored-{i}" for i in range(20)] + [f"queued-{i}" for i in range(150)]
    assert sorted(ids) == sorted(expected)
    assert count(metrics, "written") == 150  # stored rows were truncated, not replayed
    assert _wal_files(journal) == []


async def test_a_replay_skips_rows_the_database_already_has(
    database_url, tmp_path, start_writer, read_rows
):
    """Rows stored just before a kill, yet still in the file, are not duplicated."""
    journal = tmp_path / "journal"
    # The same records: PostgreSQL's key is (request_id, "startTime").
    records = [make_record(f"r{i}") for i in range(30)]
    rows = [to_row(record) for record in records]
    first = await start_writer(database_url, slot=0)
    for record in records[:10]:
        first.submit(record)
    await first.aclose()
    left = WriteAhead(journal / "write-ahead-0", 1 << 20)
    assert left.open() == []
    for row in rows:  # all 30 answered; the first 10 are in the database already
        left.append(row)
    left._lock, lock = None, left._lock  # die without closing: keep the files
    os.close(lock)

    second = await start_writer(database_url, slot=0)
    await second.aclose()

    ids = sorted(r["request_id"] for r in await read_rows(database_url))
    assert ids == sorted(f"r{i}" for i in range(30))


async def test_a_clean_shutdown_leaves_nothing_to_replay(
    sqlite_url, tmp_path, start_writer
):
    writer = await start_writer(sqlite_url, slot=1, spend_log_flush_interval_s=3600)
    for i in range(50):
        writer.submit(make_record(f"c{i}"))
    assert _wal_files(tmp_path / "journal")[0].stat().st_size > 0
    await writer.aclose()

    assert _wal_files(tmp_path / "journal") == []
    assert WriteAhead(tmp_path / "journal" / "write-ahead-1", 1 << 20).open() == []


async def test_a_database_away_at_start_sends_the_replay_to_the_journal(
    tmp_path, start_writer, read_rows, pg_url, metrics
):
    """Left rows go to the outage journal when the database cannot take them."""
    journal = tmp_path / "journal"
    left = WriteAhead(journal / "write-ahead-0", 1 << 20)
    left.open()
    for i in range(12):
        left.append(to_row(make_record(f"j{i}")))
    os.close(left._lock)  # die without closing
    unreachable = "postgresql://postgres@127.0.0.1:9/test"

    writer = await start_writer(unreachable, spend_log_write_timeout_s=0.5)
    journalled = writer.journal_bytes
    await writer.aclose()

    assert journalled > 0
    assert _wal_files(journal) == []
    writer = await start_writer(pg_url)  # the journal is replayed where it can go
    await writer.wait_replayed()
    await writer.aclose()
    assert sorted(r["request_id"] for r in await read_rows(pg_url)) == sorted(
        f"j{i}" for i in range(12)
    )
    assert count(metrics, "dropped") == 0


def test_settled_segments_are_deleted_and_the_open_one_emptied(tmp_path):
    """Rotation by size; a segment goes once every row in it is settled."""
    wal = WriteAhead(tmp_path, max_bytes=1 << 20)
    wal.open()
    wal.segment_bytes = 8 * 1024  # a few rows each
    rows = [to_row(make_record(f"s{i}")) for i in range(40)]
    segments = [wal.append(row) for row in rows]
    files = sorted(tmp_path.glob("rows-*.wal"))
    assert len(files) == len(set(map(id, segments))) > 3

    first = segments[0]
    for segment in segments[: segments.count(first)]:
        wal.settle(segment)
    assert not first.path.exists()
    assert len(sorted(tmp_path.glob("rows-*.wal"))) == len(files) - 1

    for segment in segments[segments.count(first) :]:
        wal.settle(segment)
    (active,) = sorted(tmp_path.glob("rows-*.wal"))
    assert WriteAhead.read(active) == ([], 0) and wal.size_bytes == 0
    wal.close()
    assert sorted(tmp_path.glob("rows-*.wal")) == []


def test_rows_settled_before_a_kill_are_not_read_again(tmp_path):
    """The open segment starts again at its first byte; the older rows after the
    end mark are stale and never read back."""
    wal = WriteAhead(tmp_path, max_bytes=1 << 20)
    wal.open()
    settled = [wal.append(to_row(make_record(f"old{i}"))) for i in range(10)]
    for segment in settled:
        wal.settle(segment)
    for i in range(3):
        wal.append(to_row(make_record(f"new{i}")))
    os.close(wal._lock)  # die without closing

    (path,) = tmp_path.glob("rows-*.wal")
    rows, bad = WriteAhead.read(path)
    assert [r[0] for r in rows] == ["new0", "new1", "new2"] and bad == 0


def test_rows_that_do_not_fit_are_refused(tmp_path):
    wal = WriteAhead(tmp_path, max_bytes=64 * 1024)
    wal.open()
    row = to_row(make_record("big"))
    taken = [wal.append(row) for _ in range(200)]
    fitted = [s for s in taken if s is not None]
    assert 0 < len(fitted) < 200 and all(s is None for s in taken[len(fitted) :])
    assert wal.size_bytes <= 64 * 1024
    for segment in fitted:
        wal.settle(segment)
    assert wal.append(row) is not None  # room again once settled
    wal.close()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """JSON log lines written from here on, into a buffer."""
    buffer = io.StringIO()
    settings = load_settings(log_format="json")
    configure_logging(settings, stream=buffer, cache_loggers=False)
    yield buffer
    configure_logging(settings, cache_loggers=False)


async def test_a_full_file_is_counted_and_logged_and_the_row_still_stored(
    sqlite_url, start_writer, metrics, read_rows, log_lines
):
    """Past the bound rows are counted not_durable; the calls and rows go on."""
    writer = await start_writer(
        sqlite_url,
        spend_log_write_ahead_max_bytes=64 * 1024,
        spend_log_flush_interval_s=3600,
    )
    for i in range(200):
        writer.submit(make_record(f"f{i}"))
    await writer.aclose()

    not_durable = count(metrics, "not_durable")
    assert 0 < not_durable < 200
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    logged = [
        line["not_durable"]
        for line in lines
        if line["event"] == "spend-log rows not made durable before the answer"
    ]
    assert sum(logged) == not_durable
    assert len(await read_rows(sqlite_url)) == 200


def test_a_torn_tail_yields_the_whole_rows_before_it(tmp_path):
    wal = WriteAhead(tmp_path, max_bytes=1 << 20)
    wal.open()
    for i in range(3):
        wal.append(to_row(make_record(f"t{i}")))
    segment = wal.append(to_row(make_record("torn")))
    assert segment is not None
    os.close(wal._lock)
    size = segment.path.stat().st_size
    os.truncate(segment.path, size - 10)  # the kill cut the last write

    rows, bad = WriteAhead.read(segment.path)
    assert [r[0] for r in rows] == ["t0", "t1", "t2"] and bad > 0


async def test_two_writers_of_one_slot_use_separate_files(sqlite_url, start_writer):
    first = await start_writer(sqlite_url, slot=0)
    second = await start_writer(sqlite_url, slot=0)
    assert first._write_ahead.directory != second._write_ahead.directory
    await second.aclose()
    await first.aclose()
