"""Where SpendLogs rows go: one interface, SQLite or PostgreSQL by URL.

Column names follow LiteLLM's ``LiteLLM_SpendLogs`` where the meaning matches
(see ``rows.COLUMNS``); camelCase ones are quoted in both dialects. Inserts
are idempotent on ``request_id``, so a replayed batch never duplicates a row.
Every method raises only ``StoreUnavailable`` or ``StoreRejected``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from service.store.postgres import PostgresBackend
from service.store.query import LogQuery
from service.store.rows import COLUMNS, SpendLogRow
from service.store.sqlite import SqliteBackend

__all__ = [
    "COLUMNS",
    "PostgresBackend",
    "SpendLogBackend",
    "SpendLogRow",
    "SqliteBackend",
    "open_backend",
]


class SpendLogBackend(Protocol):
    """Stores rows; ``insert_many`` is all-or-nothing for its batch."""

    dialect: str

    async def open(self) -> None: ...  # connect and migrate

    async def upgrade(self) -> list[str]: ...  # migrations applied now

    async def insert_many(self, rows: Sequence[SpendLogRow]) -> None: ...

    async def ping(self) -> None: ...

    async def ensure_partitions(self, now: datetime) -> None: ...

    async def apply_retention(self, days: int, now: datetime) -> int: ...

    async def recent(self, query: LogQuery) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


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
