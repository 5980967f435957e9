"""Database errors, translated once at the store boundary.

    StoreError            anything the SpendLogs store could not do
    ├── StoreUnavailable  transient: connection lost, timeout, busy, serialization
    │                     failure; retried with backoff, then spilled to the journal
    └── StoreRejected     permanent: the database will never take these rows as
                          they are; the batch is bisected and the bad row
                          dead-lettered

These never reach an RPC (the writer runs off the request path), so they are
not ``GuardrailError``s. The driver's message can quote a value, so only the
exception type and SQLSTATE are kept in ``reason``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

__all__ = ["StoreError", "StoreRejected", "StoreUnavailable", "map_store_errors"]

# sqlite3 primary result codes that mean "try again later".
_SQLITE_TRANSIENT = frozenset({5, 6, 10, 13, 14})  # BUSY, LOCKED, IOERR, FULL, CANTOPEN
_PG_TRANSIENT = (
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.TransactionRollbackError,  # 40001 serialization, 40P01 deadlock
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.LockNotAvailableError,  # 55P03
    asyncpg.InterfaceError,  # "connection is closed" and friends
)


class StoreError(Exception):
    """A store operation failed; ``reason`` is safe to log (no values)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreUnavailable(StoreError):
    """Transient: worth retrying later, and the rows are kept meanwhile."""


class StoreRejected(StoreError):
    """Permanent: these rows will fail the same way on every attempt."""


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "sqlite_errorname", None)
    return f"{type(exc).__name__}({code})" if code else type(exc).__name__


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_TRANSIENT
    return isinstance(exc, _PG_TRANSIENT)


@contextmanager
def map_store_errors() -> Iterator[None]:
    """Raise driver errors as ``StoreUnavailable`` or ``StoreRejected``."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        kind = StoreUnavailable if _is_transient(exc) else StoreRejected
        raise kind(_reason(exc)) from exc
