"""Persistent records: the SpendLogs table, its writer, journal and commands."""

from __future__ import annotations

from service.store.backends import SpendLogBackend, open_backend
from service.store.errors import StoreError, StoreRejected, StoreUnavailable
from service.store.journal import Journal
from service.store.query import LogQuery
from service.store.rows import COLUMNS, to_row
from service.store.spend_logs import SpendLogWriter

__all__ = [
    "COLUMNS",
    "Journal",
    "LogQuery",
    "SpendLogBackend",
    "SpendLogWriter",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "open_backend",
    "to_row",
]
