"""Persistent records: the SpendLogs table and its writer."""

from __future__ import annotations

from service.store.backends import SpendLogBackend, open_backend
from service.store.spend_logs import SpendLogWriter, to_row

__all__ = ["SpendLogBackend", "SpendLogWriter", "open_backend", "to_row"]
