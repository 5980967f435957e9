"""Backends: migrations, partitions, retention, reading back, concurrency."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from service.store.backends import open_backend
from service.store.query import LogQuery
from service.store.rows import to_row
from tests.store.records import make_record

DAY = 86_400


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


async def test_sqlite_uses_wal_and_records_migrations(sqlite_url):
    """SQLite runs in WAL mode; schema_migrations lists (component, version) once each."""
    backend = open_backend(sqlite_url)
    await backend.open()
    again = await backend.upgrade()
    await backend.close()

    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        versions = db.execute("SELECT component, version FROM schema_migrations").fetchall()
    assert mode == "wal"
    assert sorted(versions) == [("spend_logs", 1), ("spend_logs", 2)]
    assert again == []


async def test_sqlite_upgrades_a_first_release_table(tmp_path):
    """A table from before migrations (no content columns) gains them on upgrade."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute('CREATE TABLE spend_logs (request_id text PRIMARY KEY, call_type text, api_key text, "user" text, team_id text, end_user text, session_id text, "startTime" text NOT NULL, "endTime" text NOT NULL, request_duration_ms double precision, status text NOT NULL, request_tags text, metadata text, client_request_id text, grpc_code text, decision text, registry_generation bigint, worker integer)')
    backend = open_backend(f"sqlite:///{path}")
    await backend.open()
    await backend.insert_many([to_row(make_record("new"))])
    await backend.close()

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT messages FROM spend_logs").fetchone() == ("{}",)


@pytest.mark.postgres
async def test_postgres_table_is_partitioned_by_day(pg_url):
    """The PostgreSQL table is range-partitioned on startTime, with days ahead made."""
    backend = open_backend(pg_url)
    await backend.open()
    await backend.close()

    conn = await asyncpg.connect(pg_url)
    try:
        kind = await conn.fetchval(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relname = 'spend_logs' AND n.nspname = current_schema()"
        )
        parts = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'spend_logs'"
            " AND p.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
        )
        versions = await conn.fetch("SELECT component, version FROM schema_migrations")
    finally:
        await conn.close()
    today = datetime.now(UTC).date()
    assert kind == b"p" or kind == "p"
    names = {r["relname"] for r in parts}
    for offset in range(-1, 4):
        assert f"spend_logs_p{today + timedelta(days=offset):%Y%m%d}" in names
    assert sorted((r["component"], r["version"]) for r in versions) == [
        ("spend_logs", 1), ("spend_logs", 2)
    ]


@pytest.mark.postgres
async def test_postgres_keeps_a_first_release_table_aside(pg_url):
    """An unpartitioned table from the first release is renamed, not lost."""
    conn = await asyncpg.connect(pg_url)
    await conn.execute("CREATE TABLE spend_logs (request_id text PRIMARY KEY, x int)")
    await conn.execute("INSERT INTO spend_logs VALUES ('old', 1)")
    backend = open_backend(pg_url)
    await backend.open()
    await backend.close()

    kept = await conn.fetchval("SELECT request_id FROM spend_logs_unpartitioned")
    await conn.close()
    assert kept == "old"


@pytest.mark.postgres
async def test_old_days_get_a_partition_on_demand(pg_url, read_rows):
    """A replayed row from ten days ago is stored (its partition is made for it)."""
    backend = open_backend(pg_url)
    await backend.open()
    old = time.time() - 10 * DAY
    await backend.insert_many([to_row(make_record("old", start_time=old, end_time=old))])
    await backend.close()

    assert [r["request_id"] for r in await read_rows(pg_url)] == ["old"]


async def test_retention_removes_only_old_rows(database_url, read_rows):
    """Rows older than the retention are gone, recent ones stay (PG: whole partitions)."""
    backend = open_backend(database_url)
    await backend.open()
    now = time.time()
    for days, request_id in ((40, "old"), (31, "older-than-30"), (2, "recent"), (0, "now")):
        t = now - days * DAY
        await backend.insert_many([to_row(make_record(request_id, start_time=t, end_time=t))])
    removed = await backend.apply_retention(30, datetime.now(UTC))
    await backend.close()

    left = sorted(r["request_id"] for r in await read_rows(database_url))
    assert left == ["now", "recent"]
    assert removed == 2


async def test_recent_filters_by_time_status_and_decision(database_url):
    """recent() returns newest first, filtered like `guardrail logs` asks."""
    backend = open_backend(database_url)
    await backend.open()
    now = time.time()
    rows = [
        make_record("old-block", start_time=now - 3600, decision=None),
        make_record("allow", start_time=now - 60),
        make_record("fail", start_time=now - 30, grpc_code="INTERNAL"),
        make_record("new", start_time=now - 1),
    ]
    from service.types import Decision

    rows[0].decision = Decision.BLOCK
    rows[1].decision = Decision.ALLOW
    await backend.insert_many([to_row(r) for r in rows])

    since = datetime.now(UTC) - timedelta(minutes=10)
    recent = await backend.recent(LogQuery(since=since))
    failures = await backend.recent(LogQuery(status="failure"))
    blocks = await backend.recent(LogQuery(decision="BLOCK"))
    limited = await backend.recent(LogQuery(limit=1))
    await backend.close()

    assert [r["request_id"] for r in recent] == ["new", "fail", "allow"]
    assert [r["request_id"] for r in failures] == ["fail"]
    assert [r["request_id"] for r in blocks] == ["old-block"]
    assert [r["request_id"] for r in limited] == ["new"]
    assert isinstance(recent[0]["metadata"], dict)


def _write_from_process(url: str, prefix: str, count: int) -> None:
    import asyncio

    from service.settings import load_settings
    from service.store.spend_logs import SpendLogWriter
    from service.telemetry.metrics import Metrics

    async def run() -> None:
        settings = load_settings(database_url=url, spend_log_batch_size=20,
                                 spend_log_flush_interval_s=0.01)  # fmt: skip
        writer = SpendLogWriter(settings, Metrics())
        await writer.start()
        for i in range(count):
            writer.submit(make_record(f"{prefix}-{i}"))
            if i % 20 == 0:
                await asyncio.sleep(0.001)
        await writer.aclose()

    asyncio.run(run())


def test_several_processes_share_one_sqlite_file(sqlite_url):
    """Three worker processes writing the same SQLite file lose no row."""
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_from_process, args=(sqlite_url, f"w{n}", 400))
        for n in range(3)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)

    with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        total = db.execute("SELECT count(*) FROM spend_logs").fetchone()[0]
    assert [p.exitcode for p in workers] == [0, 0, 0]
    assert total == 1200
