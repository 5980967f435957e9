"""Real databases for the store tests: a SQLite file and a PostgreSQL schema."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from service.settings import load_settings
from service.store.spend_logs import SpendLogWriter
from service.telemetry.metrics import Metrics
from tests.store.proxy import TcpProxy

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def _connect_or_give_up() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {PG_URL} is unreachable: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must run the PostgreSQL tests, not skip them
        pytest.skip(reason)


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards."""
    admin = await _connect_or_give_up()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    """A PostgreSQL URL whose search_path is a fresh schema."""
    return f"{PG_URL}?search_path={pg_schema}"


@pytest.fixture
async def pg_proxy(pg_schema: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of PostgreSQL that tests cut or stall, and its URL."""
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    try:
        yield proxy, proxy.url(query=f"?search_path={pg_schema}")
    finally:
        await proxy.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'records' / 'spend.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs against both backends."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


async def _read_rows(url: str, table: str = "spend_logs") -> list[dict[str, Any]]:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(f"SELECT * FROM {table}")]
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(f"SELECT * FROM {table}")]
    finally:
        await conn.close()


@pytest.fixture
def read_rows() -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    """Every row of a table, as dicts, read with a separate connection."""
    return _read_rows


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def start_writer(
    tmp_path: Path, metrics: Metrics
) -> Callable[..., Awaitable[SpendLogWriter]]:
    """Start a writer on a URL and worker slot, journalling under tmp_path."""

    async def start(url: str, slot: int = 0, **overrides: object) -> SpendLogWriter:
        values: dict[str, object] = {
            "spend_log_flush_interval_s": 0.05,
            "spend_log_journal_path": tmp_path / "journal",
            **overrides,
        }
        settings = load_settings(database_url=url, **values)
        writer = SpendLogWriter(settings, metrics, slot=slot)
        await writer.start()
        return writer

    return start
