"""The registry's tables: stored guardrails, their history, the generation.

Every change runs in one transaction that serialises with every other change
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a row lock on ``registry_state``),
bumps the generation, writes the definition and appends a history row with
before and after. On PostgreSQL the commit also sends ``NOTIFY
guardrail_registry`` so other instances sharing the database reload at once;
``watch`` waits for that or for ``poll_s`` to pass, whichever comes first.

Specs are opaque bytes here (serialized ``guardrail.v1.Guardrail``): this
module never parses or validates them. Versions only grow: a new version is
one above every version the name ever had (and above the built-in's), so a
deleted and re-registered guardrail never reuses a number.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import asyncpg

from service.store.errors import map_store_errors
from service.store.migrations import (
    MIGRATIONS_TABLE,
    POSTGRES_MIGRATIONS_DDL,
    SQLITE_MIGRATIONS_DDL,
    pending,
    registry_migrations,
)

__all__ = [
    "NOTIFY_CHANNEL",
    "HistoryEntry",
    "RegistryState",
    "RegistryStore",
    "StoredGuardrail",
    "open_registry_store",
]

NOTIFY_CHANNEL = "guardrail_registry"
_LOCK_KEY = "guardrail_schema"  # the same advisory lock the SpendLogs migrations take
CONNECT_TIMEOUT_S = 5.0
BUSY_TIMEOUT_MS = 5000


@dataclass(frozen=True, slots=True)
class StoredGuardrail:
    name: str
    version: int
    spec: bytes
    source: str  # "api" or "config"
    disabled: bool
    updated_at: float  # epoch seconds
    updated_by: str


@dataclass(frozen=True, slots=True)
class RegistryState:
    generation: int
    guardrails: tuple[StoredGuardrail, ...]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    generation: int
    name: str
    version: int
    action: str  # create, update, override, delete
    actor: str
    source: str
    at: float
    before: bytes | None
    after: bytes | None


@dataclass(frozen=True, slots=True)
class Put:
    """One definition to store: its bytes and what they say about themselves."""

    name: str
    spec: bytes
    disabled: bool = False
    builtin_version: int = 0  # the built-in's version when this overrides one


class _Tx(Protocol):
    async def rows(self, sql: str, *args: object) -> list[Mapping[str, Any]]: ...

    async def run(self, sql: str, *args: object) -> None: ...


class RegistryStore:
    """The registry tables of one database; one connection per process."""

    dialect: str = ""

    # -- per dialect

    async def open(self) -> None:
        raise NotImplementedError

    def transaction(self) -> Any:
        raise NotImplementedError

    async def watch(self, poll_s: float) -> None:
        """Return when another process may have changed the registry."""
        await asyncio.sleep(poll_s)

    async def close(self) -> None:
        raise NotImplementedError

    def _time(self, seconds: float) -> object:
        raise NotImplementedError

    def _seconds(self, value: object) -> float:
        raise NotImplementedError

    async def _notify(self, tx: _Tx, generation: int) -> None:
        """Tell other instances (PostgreSQL only)."""

    # -- shared logic

    async def generation(self) -> int:
        with map_store_errors():
            async with self.transaction(read_only=True) as tx:
                rows = await tx.rows("SELECT generation FROM registry_state WHERE id = 1")
        return int(rows[0]["generation"])

    async def load(self) -> RegistryState:
        with map_store_errors():
            async with self.transaction(read_only=True) as tx:
                state = await tx.rows("SELECT generation FROM registry_state WHERE id = 1")
                rows = await tx.rows(
                    "SELECT name, version, spec, source, disabled, updated_at, updated_by"
                    " FROM registry_guardrails ORDER BY name"
                )
        return RegistryState(int(state[0]["generation"]), tuple(self._stored(r) for r in rows))

    def _stored(self, row: Mapping[str, Any]) -> StoredGuardrail:
        return StoredGuardrail(
            name=row["name"],
            version=int(row["version"]),
            spec=bytes(row["spec"]),
            source=row["source"],
            disabled=bool(row["disabled"]),
            updated_at=self._seconds(row["updated_at"]),
            updated_by=row["updated_by"],
        )

    async def put(self, item: Put, *, source: str, actor: str) -> tuple[StoredGuardrail, int]:
        """Store (create or replace) one definition; (stored row, new generation)."""
        with map_store_errors():
            async with self.transaction() as tx:
                generation = await self._bump(tx)
                stored = await self._put(tx, item, source, actor, generation)
                await self._notify(tx, generation)
        return stored, generation

    async def delete(self, name: str, *, actor: str) -> int | None:
        """Remove a stored definition; the new generation, None if there was none."""
        with map_store_errors():
            async with self.transaction() as tx:
                existing = await self._current(tx, name)
                if existing is None:
                    return None
                generation = await self._bump(tx)
                await self._delete(tx, existing, actor, generation)
                await self._notify(tx, generation)
        return generation

    async def sync_source(
        self, source: str, items: Sequence[Put], *, actor: str
    ) -> int | None:
        """Make the rows of ``source`` exactly ``items`` (changed ones only).

        The new generation, or None when nothing had to change.
        """
        wanted = {item.name: item for item in items}
        with map_store_errors():
            async with self.transaction() as tx:
                generation: int | None = None
                for item in items:
                    current = await self._current(tx, item.name)
                    same = (
                        current is not None
                        and current.source == source
                        and current.spec == item.spec
                        and current.disabled == item.disabled
                    )
                    if not same:
                        generation = generation or await self._bump(tx)
                        await self._put(tx, item, source, actor, generation)
                rows = await tx.rows(
                    "SELECT name, version, spec, source, disabled, updated_at, updated_by"
                    " FROM registry_guardrails WHERE source = ?",
                    source,
                )
                for row in rows:
                    if row["name"] not in wanted:
                        generation = generation or await self._bump(tx)
                        await self._delete(tx, self._stored(row), actor, generation)
                if generation is not None:
                    await self._notify(tx, generation)
        return generation

    async def history(self, name: str, limit: int = 100) -> list[HistoryEntry]:
        """Changes of one guardrail, newest first."""
        with map_store_errors():
            async with self.transaction(read_only=True) as tx:
                rows = await tx.rows(
                    "SELECT generation, name, version, action, actor, source, at, before, after"
                    f" FROM registry_history WHERE name = ? ORDER BY id DESC LIMIT {int(limit)}",
                    name,
                )
        return [
            HistoryEntry(
                generation=int(r["generation"]),
                name=r["name"],
                version=int(r["version"]),
                action=r["action"],
                actor=r["actor"],
                source=r["source"],
                at=self._seconds(r["at"]),
                before=None if r["before"] is None else bytes(r["before"]),
                after=None if r["after"] is None else bytes(r["after"]),
            )
            for r in rows
        ]

    async def _bump(self, tx: _Tx) -> int:
        await tx.run("UPDATE registry_state SET generation = generation + 1 WHERE id = 1")
        rows = await tx.rows("SELECT generation FROM registry_state WHERE id = 1")
        return int(rows[0]["generation"])

    async def _current(self, tx: _Tx, name: str) -> StoredGuardrail | None:
        rows = await tx.rows(
            "SELECT name, version, spec, source, disabled, updated_at, updated_by"
            " FROM registry_guardrails WHERE name = ?",
            name,
        )
        return self._stored(rows[0]) if rows else None

    async def _put(
        self, tx: _Tx, item: Put, source: str, actor: str, generation: int
    ) -> StoredGuardrail:
        before = await self._current(tx, item.name)
        rows = await tx.rows(
            "SELECT max(version) AS top FROM registry_history WHERE name = ?", item.name
        )
        top = rows[0]["top"] or 0
        version = max(int(top), item.builtin_version) + 1
        now = time.time()
        await tx.run("DELETE FROM registry_guardrails WHERE name = ?", item.name)
        await tx.run(
            "INSERT INTO registry_guardrails"
            " (name, version, spec, source, disabled, updated_at, updated_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            item.name, version, item.spec, source, item.disabled, self._time(now), actor,
        )  # fmt: skip
        if before is not None:
            action = "update"
        else:
            action = "override" if item.builtin_version else "create"
        await self._record(
            tx, generation, item.name, version, action, actor, source, now,
            before.spec if before else None, item.spec,
        )  # fmt: skip
        return StoredGuardrail(
            item.name, version, item.spec, source, item.disabled, now, actor
        )

    async def _delete(
        self, tx: _Tx, existing: StoredGuardrail, actor: str, generation: int
    ) -> None:
        await tx.run("DELETE FROM registry_guardrails WHERE name = ?", existing.name)
        await self._record(
            tx, generation, existing.name, existing.version, "delete", actor,
            existing.source, time.time(), existing.spec, None,
        )  # fmt: skip

    async def _record(
        self, tx: _Tx, generation: int, name: str, version: int, action: str,
        actor: str, source: str, at: float, before: bytes | None, after: bytes | None,
    ) -> None:  # fmt: skip
        await tx.run(
            "INSERT INTO registry_history"
            " (generation, name, version, action, actor, source, at, before, after)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            generation, name, version, action, actor, source, self._time(at), before, after,
        )  # fmt: skip


# -- SQLite ---------------------------------------------------------------------


class _SqliteTx:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    async def rows(self, sql: str, *args: object) -> list[Mapping[str, Any]]:
        cursor = await self._db.execute(sql, args)
        return [dict(r) for r in await cursor.fetchall()]

    async def run(self, sql: str, *args: object) -> None:
        await self._db.execute(sql, args)


class SqliteRegistryStore(RegistryStore):
    """The registry in the SpendLogs SQLite file; other processes poll the generation."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        with map_store_errors():
            if self._path != ":memory:":
                Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self._path, isolation_level=None)
            await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode=WAL")
            db.row_factory = aiosqlite.Row
            self._db = db
            async with self.transaction() as tx:
                await tx.run(SQLITE_MIGRATIONS_DDL)
                rows = await tx.rows(f"SELECT component, version FROM {MIGRATIONS_TABLE}")
                applied = {(r["component"], r["version"]) for r in rows}
                for step in pending(registry_migrations(), applied):
                    for statement in step.sqlite:
                        await tx.run(statement)
                    await tx.run(
                        f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, ?, ?)",
                        step.component, step.version, step.description,
                        self._time(time.time()),
                    )  # fmt: skip

    @asynccontextmanager
    async def transaction(self, read_only: bool = False) -> AsyncIterator[_Tx]:
        if self._db is None:
            raise RuntimeError("registry store used before open()")
        async with self._lock:  # one transaction at a time on this connection
            await self._db.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(self._db)
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    def _time(self, seconds: float) -> object:
        return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="microseconds")

    def _seconds(self, value: object) -> float:
        return datetime.fromisoformat(str(value)).timestamp()


# -- PostgreSQL -----------------------------------------------------------------


def _dollar(sql: str) -> str:
    """``?`` placeholders as asyncpg's ``$n`` (our SQL has no '?' literals)."""
    parts = sql.split("?")
    out = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        out.append(f"${index}{part}")
    return "".join(out)


class _PgTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def rows(self, sql: str, *args: object) -> list[Mapping[str, Any]]:
        return [dict(r) for r in await self._conn.fetch(_dollar(sql), *args)]

    async def run(self, sql: str, *args: object) -> None:
        await self._conn.execute(_dollar(sql), *args)


class PostgresRegistryStore(RegistryStore):
    """The registry in PostgreSQL; changes are announced with NOTIFY."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: asyncpg.Connection | None = None
        self._listener: asyncpg.Connection | None = None
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        with map_store_errors():
            self._conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
            async with self._conn.transaction():
                await self._conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext($1))", _LOCK_KEY
                )
                await self._conn.execute(POSTGRES_MIGRATIONS_DDL)
                rows = await self._conn.fetch(
                    f"SELECT component, version FROM {MIGRATIONS_TABLE}"
                )
                applied = {(r["component"], r["version"]) for r in rows}
                for step in pending(registry_migrations(), applied):
                    for statement in step.postgres:
                        await self._conn.execute(statement)
                    await self._conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (component, version, description)"
                        " VALUES ($1, $2, $3)",
                        step.component, step.version, step.description,
                    )  # fmt: skip

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
        return self._conn

    @asynccontextmanager
    async def transaction(self, read_only: bool = False) -> AsyncIterator[_Tx]:
        async with self._lock:
            conn = await self._connection()
            async with conn.transaction():
                if not read_only:
                    # Serialises every change across instances.
                    await conn.execute(
                        "SELECT generation FROM registry_state WHERE id = 1 FOR UPDATE"
                    )
                yield _PgTx(conn)

    async def _notify(self, tx: _Tx, generation: int) -> None:
        await tx.run("SELECT pg_notify(?, ?)", NOTIFY_CHANNEL, str(generation))

    async def watch(self, poll_s: float) -> None:
        try:
            if self._listener is None or self._listener.is_closed():
                self._listener = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
                await self._listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError):
            self._listener = None  # the periodic check still runs
        try:
            await asyncio.wait_for(self._changed.wait(), poll_s)
        except TimeoutError:
            pass
        self._changed.clear()

    def _on_notify(self, *_: object) -> None:
        self._changed.set()

    async def close(self) -> None:
        for conn in (self._listener, self._conn):
            if conn is not None and not conn.is_closed():
                await conn.close()
        self._listener = self._conn = None

    def _time(self, seconds: float) -> object:
        return datetime.fromtimestamp(seconds, tz=UTC)

    def _seconds(self, value: object) -> float:
        assert isinstance(value, datetime)
        return value.timestamp()


def open_registry_store(url: str) -> RegistryStore:
    """The registry store for a database URL (not yet opened)."""
    if url.startswith("sqlite://"):
        rest = url.removeprefix("sqlite://")
        if not rest.startswith("/"):
            raise ValueError("SQLite URLs look like sqlite:///relative or sqlite:////abs")
        return SqliteRegistryStore(rest[1:])
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresRegistryStore(url)
    raise ValueError("database URL must start with sqlite:// or postgresql://")
