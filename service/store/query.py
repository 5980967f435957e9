"""Reading SpendLogs back: the filter ``guardrail logs`` sends to a backend."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["JSON_COLUMNS", "LogQuery", "decode_row"]

JSON_COLUMNS = ("request_tags", "metadata", "messages", "response")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Recent rows: newer than ``since``, optionally one status and decision."""

    since: datetime | None = None
    status: str = ""
    decision: str = ""
    limit: int = 50


def decode_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row read from either backend in one shape: JSON parsed, times ISO text."""
    out = dict(row)
    for column in JSON_COLUMNS:
        if isinstance(out.get(column), str):
            out[column] = json.loads(out[column])
    for column in ("startTime", "endTime"):
        if isinstance(out.get(column), datetime):
            out[column] = out[column].isoformat(timespec="microseconds")

    return out
