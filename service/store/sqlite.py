"""The SQLite SpendLogs store: one file in WAL mode, safe for several writers.

Each worker process holds its own connection. Writers take the lock up
front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it; a lock
still held after that surfaces as ``StoreUnavailable`` and the writer retries
with backoff. SQLite has no timestamp type: times are ISO-8601 UTC text with
microseconds, which sorts and compares as time does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from service.store.errors import map_store_errors
from service.store.migrations import (
    MIGRATIONS_TABLE,
    Migration,
    SQLITE_MIGRATIONS_DDL,
    check_identifier,
    pending,
    spend_log_migrations,
)
from service.store.rows import COLUMNS, TIME_COLUMNS, SpendLogRow
from service.store.query import LogQuery, decode_row

__all__ = ["BUSY_TIMEOUT_MS", "RETENTION_CHUNK", "SqliteBackend", "iso"]

BUSY_TIMEOUT_MS = 5000  # wait this long for another process's write lock
RETENTION_CHUNK = 5000  # rows deleted per transaction, so writers get turns


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="microseconds")


def _sqlite_row(row: SpendLogRow) -> SpendLogRow:
    values = list(row)
    for index in TIME_COLUMNS:
        values[index] = iso(values[index])
    return tuple(values)


class SqliteBackend:
    """A local SQLite file (the default store)."""

    dialect = "sqlite"

    def __init__(self, path: str, table: str = "spend_logs") -> None:
        self._path = path
        self._table = check_identifier(table)
        self._db: aiosqlite.Connection | None = None
        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        marks = ", ".join("?" * len(COLUMNS))
        self._insert = (
            f"INSERT INTO {self._table} ({columns}) VALUES ({marks})"
            " ON CONFLICT (request_id) DO NOTHING"
        )

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        with map_store_errors():
            await self._connect()
            await self.upgrade()

    async def _connect(self) -> aiosqlite.Connection:
        if self._db is not None:
            return self._db
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self._path, isolation_level=None)
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = aiosqlite.Row
        self._db = db
        return db

    async def upgrade(self) -> list[str]:
        """Apply pending migrations; the descriptions of those applied."""
        db = await self._connect()
        await db.execute("BEGIN IMMEDIATE")  # one upgrader at a time, across processes
        try:
            await db.execute(SQLITE_MIGRATIONS_DDL)
            cursor = await db.execute(f"SELECT component, version FROM {MIGRATIONS_TABLE}")
            applied = {(r[0], r[1]) for r in await cursor.fetchall()}
            done = []
            for step in pending(spend_log_migrations(self._table), applied):
                await self._apply(db, step)
                done.append(f"{step.component} v{step.version}: {step.description}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return done

    async def _apply(self, db: aiosqlite.Connection, step: Migration) -> None:
        for statement in step.sqlite:
            try:
                await db.execute(statement)
            except aiosqlite.OperationalError as exc:
                # v2 on a table v1 created with the columns already there.
                if "duplicate column" not in str(exc):
                    raise
        await db.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, ?, ?)",
            (step.component, step.version, step.description, iso(time.time())),
        )

    async def insert_many(self, rows: Sequence[SpendLogRow]) -> None:
        """Insert all rows or none; a known request_id is skipped."""
        with map_store_errors():
            db = await self._connect()
            values = [_sqlite_row(r) for r in rows]
            await db.execute("BEGIN IMMEDIATE")
            try:
                await db.executemany(self._insert, values)
                await db.execute("COMMIT")
            except BaseException:
                await _rollback(db)
                raise

    async def ping(self) -> None:
        with map_store_errors():
            db = await self._connect()
            await db.execute("SELECT 1")

    async def apply_retention(self, days: int, now: datetime) -> int:
        """Delete rows older than ``days``, in bounded chunks; rows deleted."""
        if days <= 0:
            return 0
        cutoff = (now - timedelta(days=days)).isoformat(timespec="microseconds")
        statement = (
            f"DELETE FROM {self._table} WHERE rowid IN (SELECT rowid FROM {self._table}"
            f' WHERE "startTime" < ? LIMIT {RETENTION_CHUNK})'
        )
        deleted = 0
        with map_store_errors():
            db = await self._connect()
            while True:
                cursor = await db.execute(statement, (cutoff,))
                deleted += cursor.rowcount
                if cursor.rowcount < RETENTION_CHUNK:
                    return deleted
                await asyncio.sleep(0)  # let inserts in between

    async def ensure_partitions(self, now: datetime) -> None:
        """Nothing to do: SQLite tables are not partitioned."""

    async def recent(self, query: LogQuery) -> list[dict[str, Any]]:
        """Rows matching ``query``, newest first."""
        where, args = [], []
        if query.since is not None:
            where.append('"startTime" >= ?')
            args.append(query.since.isoformat(timespec="microseconds"))
        for column, value in (("status", query.status), ("decision", query.decision)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (
            f"SELECT * FROM {self._table} {clause}"
            f' ORDER BY "startTime" DESC LIMIT {int(query.limit)}'
        )
        with map_store_errors():
            db = await self._connect()
            cursor = await db.execute(sql, args)
            rows = await cursor.fetchall()
        return [decode_row(dict(r)) for r in rows]

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.execute("ROLLBACK")
    except aiosqlite.OperationalError:
        pass  # no transaction left to roll back (BEGIN itself failed)
