"""Registry tests: real servers on real sockets, over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from guardrail.v1 import guardrail_pb2 as pb

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _pg_or_give_up() -> None:
    try:
        asyncio.run(_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {PG_URL} is unreachable: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must run the PostgreSQL tests, not skip them
        pytest.skip(reason)


def fresh_pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new schema, dropped afterwards."""
    _pg_or_give_up()
    schema = f"reg_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?search_path={schema}"
    finally:
        asyncio.run(_admin(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """Each test runs once per backend: a SQLite file, a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'spend.db'}"
    else:
        yield from fresh_pg_url()


def read_rows(url: str, sql: str) -> list[dict[str, Any]]:
    """Rows of a query, read with a separate connection."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30) as db:
            db.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in db.execute(sql)]
            except sqlite3.OperationalError:
                return []  # the table is not there yet

    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return [dict(r) for r in await conn.fetch(sql)]
        except asyncpg.UndefinedTableError:
            return []
        finally:
            await conn.close()

    # A thread of its own: async tests call this from inside their event loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fetch()).result()


def orders(
    name: str = "orders", pattern: str = r"\bZX-\d{4}\b", sample: str = "ZX-1234"
) -> pb.Guardrail:
    rule = pb.Rule(id="order", category="internal", pattern=pattern, must_match=[sample])
    return pb.Guardrail(name=name, action=pb.ACTION_BLOCK, rules=[rule])
