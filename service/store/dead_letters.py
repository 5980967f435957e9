"""Rows the database refused for good, kept in a JSONL file with the reason.

A poison row is isolated by bisecting its batch; it lands here instead of
sinking the rest. The file is bounded like the journal; past the bound the
row is only counted (``failed``) and logged by request id.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import BinaryIO

from service.store.rows import COLUMNS, SpendLogRow

__all__ = ["DeadLetters"]

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, default=str).encode


class DeadLetters:
    """Append-only ``dead-letter.jsonl``: one ``{at, reason, row}`` per line."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._file: BinaryIO | None = None
        self._size = 0

    def add(self, row: SpendLogRow, reason: str) -> bool:
        """Keep one refused row; False when the file is full."""
        line = _encode({"at": time.time(), "reason": reason, "row": dict(zip(COLUMNS, row))})
        data = (line + "\n").encode()
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - kept open
            self._size = self._file.tell()
        if self._size + len(data) > self.max_bytes:
            return False
        self._file.write(data)
        self._file.flush()
        self._size += len(data)
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
