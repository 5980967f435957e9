"""Where SpendLogs rows go: one interface, SQLite or PostgreSQL by URL.

Column names follow LiteLLM's ``LiteLLM_SpendLogs`` where the meaning matches;
camelCase ones are quoted, in both dialects. Inserts are idempotent on
``request_id``, so a replayed batch never duplicates a row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import asyncpg

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "PostgresBackend",
    "SpendLogBackend",
    "SpendLogRow",
    "SqliteBackend",
    "open_backend",
]

SCHEMA_VERSION = 1
COLUMNS = (
    "request_id", "call_type", "api_key", "user", "team_id", "end_user",
    "session_id", "startTime", "endTime", "request_duration_ms", "status",
    "request_tags", "metadata", "client_request_id", "grpc_code", "decision",
    "registry_generation", "worker",
)  # fmt: skip
SpendLogRow = tuple[Any, ...]  # values in COLUMNS order
_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    request_id text PRIMARY KEY,
    call_type text NOT NULL DEFAULT '',
    api_key text NOT NULL DEFAULT '',
    "user" text NOT NULL DEFAULT '',
    team_id text NOT NULL DEFAULT '',
    end_user text NOT NULL DEFAULT '',
    session_id text NOT NULL DEFAULT '',
    "startTime" {timestamp} NOT NULL,
    "endTime" {timestamp} NOT NULL,
    request_duration_ms double precision NOT NULL DEFAULT 0,
    status text NOT NULL,
    request_tags {json} NOT NULL DEFAULT '[]',
    metadata {json} NOT NULL DEFAULT '{{}}',
    client_request_id text NOT NULL DEFAULT '',
    grpc_code text NOT NULL DEFAULT '',
    decision text NOT NULL DEFAULT '',
    registry_generation bigint NOT NULL DEFAULT 0,
    worker integer NOT NULL DEFAULT 0
)
"""
_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS guardrail_schema_version (
    component text PRIMARY KEY,
    version integer NOT NULL
)
"""
# TODO(store): replace with real migrations and time partitioning (later issue).


def _quoted_columns() -> str:
    return ", ".join(f'"{c}"' for c in COLUMNS)


def _insert_sql(table: str, placeholders: Sequence[str]) -> str:
    return (
        f"INSERT INTO {table} ({_quoted_columns()}) VALUES ({', '.join(placeholders)})"
        " ON CONFLICT (request_id) DO NOTHING"
    )


def _check_table(table: str) -> str:
    if not _TABLE_NAME.match(table):
        raise ValueError(f"invalid table name {table!r}")
    return table


class SpendLogBackend(Protocol):
    """Stores rows; ``insert_many`` is all-or-nothing for its batch."""

    async def open(self) -> None: ...

    async def insert_many(self, rows: Sequence[SpendLogRow]) -> None: ...

    async def close(self) -> None: ...


class SqliteBackend:
    """A local SQLite file in WAL mode (the default store)."""

    def __init__(self, path: str, table: str = "spend_logs") -> None:
        self._path = path
        self._table = _check_table(table)
        self._db: aiosqlite.Connection | None = None
        placeholders = ["?"] * len(COLUMNS)
        self._insert = _insert_sql(self._table, placeholders)

    async def open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self._path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(_DDL.format(table=self._table, timestamp="text", json="text"))
        await db.execute(
            f'CREATE INDEX IF NOT EXISTS {self._table}_start_idx ON {self._table} ("startTime")'
        )
        await db.execute(_VERSION_DDL)
        await db.execute(
            "INSERT INTO guardrail_schema_version VALUES (?, ?) ON CONFLICT DO NOTHING",
            (self._table, SCHEMA_VERSION),
        )
        await db.commit()
        self._db = db

    async def insert_many(self, rows: Sequence[SpendLogRow]) -> None:
        db = self._require_open()
        try:
            await db.executemany(self._insert, [_sqlite_row(r) for r in rows])
            await db.commit()
        except BaseException:
            await db.rollback()
            raise

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _require_open(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SqliteBackend.open() was not awaited")
        return self._db


def _sqlite_row(row: SpendLogRow) -> SpendLogRow:
    # SQLite has no timestamp type: ISO-8601 text sorts and compares correctly.
    return tuple(v.isoformat() if isinstance(v, datetime) else v for v in row)


class PostgresBackend:
    """PostgreSQL through an asyncpg pool (the production store)."""

    def __init__(self, url: str, table: str = "spend_logs") -> None:
        self._url = url
        self._table = _check_table(table)
        self._pool: asyncpg.Pool | None = None
        placeholders = [f"${i}" for i in range(1, len(COLUMNS) + 1)]
        self._insert = _insert_sql(self._table, placeholders)

    async def open(self) -> None:
        pool = await asyncpg.create_pool(self._url, min_size=1, max_size=2)
        async with pool.acquire() as conn, conn.transaction():
            # Several workers may start at once; CREATE IF NOT EXISTS still races.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('guardrail_schema'))")
            ddl = _DDL.format(table=self._table, timestamp="timestamptz", json="jsonb")
            await conn.execute(ddl)
            await conn.execute(
                f'CREATE INDEX IF NOT EXISTS {self._table}_start_idx'
                f' ON {self._table} ("startTime")'
            )
            await conn.execute(_VERSION_DDL)
            await conn.execute(
                "INSERT INTO guardrail_schema_version VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                self._table,
                SCHEMA_VERSION,
            )
        self._pool = pool

    async def insert_many(self, rows: Sequence[SpendLogRow]) -> None:
        if self._pool is None:
            raise RuntimeError("PostgresBackend.open() was not awaited")
        async with self._pool.acquire() as conn:
            # executemany is atomic (asyncpg >= 0.22): a bad row fails the batch.
            await conn.executemany(self._insert, rows)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def _sqlite_path(url: str) -> str:
    # sqlite:///relative/path, sqlite:////abs/path, sqlite:///:memory:
    rest = url.removeprefix("sqlite://")
    if not rest.startswith("/"):
        raise ValueError("SQLite URLs look like sqlite:///relative or sqlite:////abs")
    return rest[1:]


def open_backend(url: str, table: str = "spend_logs") -> SpendLogBackend:
    """The backend for a database URL (not yet opened)."""
    if url.startswith("sqlite://"):
        return SqliteBackend(_sqlite_path(url), table)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url, table)
    raise ValueError("database URL must start with sqlite:// or postgresql://")
