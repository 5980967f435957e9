"""The PostgreSQL SpendLogs store (asyncpg), partitioned by day on "startTime".

Rows go in by COPY straight into the partitioned table. A batch that holds a
row already stored (a replay after an outage or a timed-out commit) fails as
a whole with a unique violation and is then written again through a
per-connection temporary staging table and one ``INSERT ... SELECT ... ON
CONFLICT DO NOTHING``: COPY's speed on the normal path, the idempotency a
replay needs on the rare one. (``method="insert"`` uses a batched INSERT
instead; loadtest/bench_spend_logs.py measures both.) The primary key is
(request_id, "startTime") because a partitioned table's unique keys must
hold the partition key; a replayed row carries its original "startTime", so
the pair is as good as the id alone for ids we generate ourselves.

Daily partitions are created ahead of time and on demand for the days of
each batch (a replay can bring old days back); retention drops whole
partitions, which costs nothing like a DELETE.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import asyncpg

from service.store.errors import StoreRejected, map_store_errors
from service.store.migrations import (
    MIGRATIONS_TABLE,
    POSTGRES_MIGRATIONS_DDL,
    check_identifier,
    pending,
    spend_log_migrations,
)
from service.store.query import LogQuery, decode_row
from service.store.rows import COLUMNS, TIME_COLUMNS, SpendLogRow

__all__ = ["PARTITIONS_AHEAD", "PostgresBackend", "partition_day"]

PARTITIONS_AHEAD = 3  # days of partitions created before they are needed
CONNECT_TIMEOUT_S = 5.0
_LOCK_KEY = "guardrail_schema"
_LIST_PARTITIONS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
JOIN pg_namespace n ON n.oid = p.relnamespace
WHERE p.relname = $1 AND n.nspname = current_schema()
"""


def partition_day(seconds: float) -> date:
    """The UTC day whose partition holds a row that started at ``seconds``."""
    return datetime.fromtimestamp(seconds, tz=UTC).date()


def _pg_row(row: SpendLogRow) -> SpendLogRow:
    values = list(row)
    for index in TIME_COLUMNS:
        values[index] = datetime.fromtimestamp(values[index], tz=UTC)
    return tuple(values)


class PostgresBackend:
    """PostgreSQL through one asyncpg connection per writer (the production store)."""

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        table: str = "spend_logs",
        *,
        method: Literal["copy", "insert"] = "copy",
    ) -> None:
        self._url = url
        self._table = check_identifier(table)
        self._stage = f"{self._table}_stage"
        self._method = method
        self._conn: asyncpg.Connection | None = None
        self._days: set[date] = set()
        columns = ", ".join(f'"{c}"' for c in COLUMNS)
        marks = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        self._insert = (
            f"INSERT INTO {self._table} ({columns}) VALUES ({marks})"
            " ON CONFLICT DO NOTHING"
        )
        self._insert_staged = (
            f"INSERT INTO {self._table} ({columns}) SELECT {columns} FROM {self._stage}"
            " ON CONFLICT DO NOTHING"
        )

    async def open(self) -> None:
        """Connect, apply pending migrations and create the coming partitions."""
        with map_store_errors():
            conn = await self._connect()
            await self._upgrade(conn)
            await self._ensure_days(conn, self._coming_days(datetime.now(UTC)))

    async def upgrade(self) -> list[str]:
        with map_store_errors():
            done = await self._upgrade(await self._connect())
            await self._ensure_days(self._require(), self._coming_days(datetime.now(UTC)))
        return done

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
        self._conn = conn
        return conn

    def _require(self) -> asyncpg.Connection:
        if self._conn is None:
            raise StoreRejected("PostgresBackend used before open()")
        return self._conn

    async def _upgrade(self, conn: asyncpg.Connection) -> list[str]:
        done = []
        async with conn.transaction():
            # Several workers may start at once; CREATE ... IF NOT EXISTS still races.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _LOCK_KEY)
            await conn.execute(POSTGRES_MIGRATIONS_DDL)
            rows = await conn.fetch(f"SELECT component, version FROM {MIGRATIONS_TABLE}")
            applied = {(r["component"], r["version"]) for r in rows}
            for step in pending(spend_log_migrations(self._table), applied):
                for statement in step.postgres:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (component, version, description)"
                    " VALUES ($1, $2, $3)",
                    step.component, step.version, step.description,
                )  # fmt: skip
                done.append(f"{step.component} v{step.version}: {step.description}")
        return done

    async def _prepare_stage(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {self._stage}"
            f" (LIKE {self._table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )

    def _coming_days(self, now: datetime) -> list[date]:
        today = now.astimezone(UTC).date()
        return [today + timedelta(days=d) for d in range(-1, PARTITIONS_AHEAD + 1)]

    async def _ensure_days(self, conn: asyncpg.Connection, days: Iterable[date]) -> None:
        missing = sorted(set(days) - self._days)
        if not missing:
            return
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _LOCK_KEY)
            for day in missing:
                await conn.execute(self._partition_ddl(day))
        self._days.update(missing)

    def _partition_ddl(self, day: date) -> str:
        after = day + timedelta(days=1)
        return (
            f"CREATE TABLE IF NOT EXISTS {self._table}_p{day:%Y%m%d}"
            f" PARTITION OF {self._table}"
            f" FOR VALUES FROM ('{day.isoformat()} 00:00:00+00')"
            f" TO ('{after.isoformat()} 00:00:00+00')"
        )

    async def insert_many(self, rows: Sequence[SpendLogRow]) -> None:
        """Insert all rows or none; a known (request_id, startTime) is skipped."""
        with map_store_errors():
            try:
                conn = await self._connect()
                days = {partition_day(r[TIME_COLUMNS[0]]) for r in rows}
                await self._ensure_days(conn, days)
                await self._write(conn, [_pg_row(r) for r in rows])
            except asyncpg.PostgresError as exc:
                if isinstance(exc, asyncpg.PostgresConnectionError):
                    self._discard()
                raise
            except BaseException:
                # Cancelled (timeout), connection lost, or a client-side
                # encoding error mid-protocol: never reuse the connection.
                self._discard()
                raise

    async def _write(self, conn: asyncpg.Connection, records: list[SpendLogRow]) -> None:
        if self._method == "insert":
            async with conn.transaction():
                await conn.executemany(self._insert, records)
            return
        try:
            async with conn.transaction():
                await conn.copy_records_to_table(
                    self._table, records=records, columns=list(COLUMNS)
                )
            return
        except asyncpg.UniqueViolationError:
            pass  # a replayed row: the staging path below skips what is stored
        async with conn.transaction():
            await self._prepare_stage(conn)
            await conn.copy_records_to_table(
                self._stage, records=records, columns=list(COLUMNS)
            )
            await conn.execute(self._insert_staged)

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def ping(self) -> None:
        with map_store_errors():
            try:
                conn = await self._connect()
                await conn.execute("SELECT 1")
            except BaseException:
                self._discard()
                raise

    async def ensure_partitions(self, now: datetime) -> None:
        """Create the partitions from yesterday to ``PARTITIONS_AHEAD`` days on."""
        with map_store_errors():
            await self._ensure_days(await self._connect(), self._coming_days(now))

    async def apply_retention(self, days: int, now: datetime) -> int:
        """Drop daily partitions wholly older than ``days``; partitions dropped."""
        if days <= 0:
            return 0
        cutoff = (now.astimezone(UTC) - timedelta(days=days)).date()
        with map_store_errors():
            conn = await self._connect()
            names = [r["relname"] for r in await conn.fetch(_LIST_PARTITIONS, self._table)]
            old = [n for n in names if (d := self._day_of(n)) is not None and d < cutoff]
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _LOCK_KEY)
                for name in old:
                    await conn.execute(f"DROP TABLE IF EXISTS {name}")
        self._days = {d for d in self._days if d >= cutoff}
        return len(old)

    def _day_of(self, partition: str) -> date | None:
        suffix = partition.removeprefix(f"{self._table}_p")
        if len(suffix) != 8 or not suffix.isdigit():
            return None
        return date(int(suffix[:4]), int(suffix[4:6]), int(suffix[6:]))

    async def recent(self, query: LogQuery) -> list[dict[str, Any]]:
        """Rows matching ``query``, newest first."""
        where: list[str] = []
        args: list[Any] = []
        if query.since is not None:
            args.append(query.since)
            where.append(f'"startTime" >= ${len(args)}')
        for column, value in (("status", query.status), ("decision", query.decision)):
            if value:
                args.append(value)
                where.append(f"{column} = ${len(args)}")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (
            f"SELECT * FROM {self._table} {clause}"
            f' ORDER BY "startTime" DESC LIMIT {int(query.limit)}'
        )
        with map_store_errors():
            rows = await (await self._connect()).fetch(sql, *args)
        return [decode_row(dict(r)) for r in rows]

    async def close(self) -> None:
        if self._conn is None:
            return
        try:
            await self._conn.close(timeout=2)
        except Exception:  # unreachable or hung: closing politely is not possible
            self._conn.terminate()
        self._conn = None
