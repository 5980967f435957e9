"""Where MCP tool pins persist: the SpendLogs database (SQLite or PostgreSQL).

Same URL, same connection libraries (aiosqlite, asyncpg) and the same
``schema_migrations`` table as the SpendLogs store, under the component
``mcp_pins``. Every change bumps ``mcp_pin_generation`` in the same
transaction, which is what other workers poll to know they must reload.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import aiosqlite
import asyncpg

from service.store.migrations import (
    MIGRATIONS_TABLE,
    POSTGRES_MIGRATIONS_DDL,
    SQLITE_MIGRATIONS_DDL,
    mcp_pin_migrations,
    pending,
)
from service.store.sqlite import BUSY_TIMEOUT_MS, iso

__all__ = ["PinStore", "open_pin_store"]

PinRow = tuple[str, str, str, str]  # scope, server, tool, sha256
_BUMP = "UPDATE mcp_pin_generation SET generation = generation + 1 WHERE id = 1"


class PinStore(Protocol):
    async def open(self) -> None: ...

    async def generation(self) -> int: ...

    async def load_all(self) -> list[PinRow]: ...

    async def replace(self, scope: str, server: str, tools: Mapping[str, str]) -> None: ...

    async def clear(self, scope: str, server: str) -> int: ...

    async def close(self) -> None: ...


class SqlitePinStore:
    def __init__(self, path: str) -> None:
        self._path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(self._path, isolation_level=None)
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._db = db
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute(SQLITE_MIGRATIONS_DDL)
            cursor = await db.execute(f"SELECT component, version FROM {MIGRATIONS_TABLE}")
            applied = {(r[0], r[1]) for r in await cursor.fetchall()}
            for step in pending(mcp_pin_migrations(), applied):
                for statement in step.sqlite:
                    await db.execute(statement)
                await db.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} VALUES (?, ?, ?, ?)",
                    (step.component, step.version, step.description, iso(time.time())),
                )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("pin store used before open()")
        return self._db

    async def generation(self) -> int:
        cursor = await self._require().execute(
            "SELECT generation FROM mcp_pin_generation WHERE id = 1"
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def load_all(self) -> list[PinRow]:
        cursor = await self._require().execute(
            "SELECT scope, server, tool, sha256 FROM mcp_pins"
        )
        return [tuple(r) for r in await cursor.fetchall()]  # type: ignore[misc]

    async def replace(self, scope: str, server: str, tools: Mapping[str, str]) -> None:
        db = self._require()
        now = iso(time.time())
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.execute(
                "DELETE FROM mcp_pins WHERE scope = ? AND server = ?", (scope, server)
            )
            await db.executemany(
                "INSERT INTO mcp_pins VALUES (?, ?, ?, ?, ?)",
                [(scope, server, tool, digest, now) for tool, digest in tools.items()],
            )
            await db.execute(_BUMP)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def clear(self, scope: str, server: str) -> int:
        db = self._require()
        await db.execute("BEGIN IMMEDIATE")
        try:
            if server:
                cursor = await db.execute(
                    "DELETE FROM mcp_pins WHERE scope = ? AND server = ?", (scope, server)
                )
            else:
                cursor = await db.execute("DELETE FROM mcp_pins WHERE scope = ?", (scope,))
            await db.execute(_BUMP)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return cursor.rowcount

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None


class PostgresPinStore:
    def __init__(self, url: str) -> None:
        self._url = url
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(self._url, min_size=1, max_size=2, timeout=10)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('mcp_pins'))")
            await conn.execute(POSTGRES_MIGRATIONS_DDL)
            rows = await conn.fetch(f"SELECT component, version FROM {MIGRATIONS_TABLE}")
            applied = {(r["component"], r["version"]) for r in rows}
            for step in pending(mcp_pin_migrations(), applied):
                for statement in step.postgres:
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (component, version, description)"
                    " VALUES ($1, $2, $3)",
                    step.component, step.version, step.description,
                )  # fmt: skip

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("pin store used before open()")
        return self._pool

    async def generation(self) -> int:
        value = await self._require().fetchval(
            "SELECT generation FROM mcp_pin_generation WHERE id = 1"
        )
        return int(value or 0)

    async def load_all(self) -> list[PinRow]:
        rows = await self._require().fetch("SELECT scope, server, tool, sha256 FROM mcp_pins")
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    async def replace(self, scope: str, server: str, tools: Mapping[str, str]) -> None:
        async with self._require().acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM mcp_pins WHERE scope = $1 AND server = $2", scope, server
            )
            await conn.executemany(
                "INSERT INTO mcp_pins (scope, server, tool, sha256) VALUES ($1, $2, $3, $4)",
                [(scope, server, tool, digest) for tool, digest in tools.items()],
            )
            await conn.execute(_BUMP)

    async def clear(self, scope: str, server: str) -> int:
        async with self._require().acquire() as conn, conn.transaction():
            if server:
                status = await conn.execute(
                    "DELETE FROM mcp_pins WHERE scope = $1 AND server = $2", scope, server
                )
            else:
                status = await conn.execute("DELETE FROM mcp_pins WHERE scope = $1", scope)
            await conn.execute(_BUMP)
        return int(status.split()[-1])

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


def open_pin_store(url: str) -> PinStore:
    """A store for the SpendLogs URL (not yet opened)."""
    if url.startswith("sqlite:///"):
        return SqlitePinStore(url.removeprefix("sqlite:///"))
    return PostgresPinStore(url)
