"""The outage journal: append-only segment files of checksummed rows.

When the database is unreachable or slow, rows are appended here and later
replayed, oldest segment first. Each record is ``length | crc32 | JSON row``,
so a write torn by a crash is detected (and counted) instead of replayed as
garbage. The journal is bounded: ``append`` stores what fits under
``max_bytes`` and says how many rows it took; the caller counts the rest as
dropped. One process owns a journal directory (an exclusive ``flock``).

Appends are flushed to the OS per batch and fsynced when a segment is
sealed: a process crash loses nothing written, a machine crash can lose the
unsynced tail of the open segment.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import zlib
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

from service.store.rows import SpendLogRow, check_row

__all__ = [
    "END_MARK",
    "Journal",
    "JournalBusy",
    "frame",
    "lock_directory",
    "read_frames",
    "segment_size_for",
    "unlock_directory",
]

_HEADER = struct.Struct("<II")  # payload length, crc32 of the payload
_PREFIX, _SUFFIX = "segment-", ".jnl"
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
END_MARK = _HEADER.pack(0, 0)  # a zero-length frame: "nothing follows" (read_frames)


class JournalBusy(RuntimeError):
    """Another process holds this journal directory."""


def segment_size_for(max_bytes: int) -> int:
    """Segments of a sixteenth of the journal, 64 KiB to 8 MiB (replay reads one whole)."""
    return min(max(max_bytes // 16, 64 * 1024), 8 * 1024 * 1024)


def _sequence(path: Path) -> int:
    return int(path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX))


def frame(row: SpendLogRow) -> bytes:
    """One record: ``length | crc32 | JSON row``."""
    try:
        payload = orjson.dumps(row)  # much faster; the write-ahead file frames per call
    except TypeError:  # a lone surrogate: orjson refuses what json escapes
        payload = _encode(list(row)).encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(data: bytes, *, end_mark: bool = False) -> tuple[list[SpendLogRow], int]:
    """The rows framed in ``data``, and how many bytes were torn or corrupt.

    With ``end_mark``, a zero-length frame ends the data: what follows it is
    stale (the write-ahead file rewrites itself from the start).
    """
    rows: list[SpendLogRow] = []
    offset = bad = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        if end_mark and length == 0:
            return rows, bad
        start = offset + _HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break  # torn tail: nothing after it can be framed reliably
        offset = start + length
        try:
            rows.append(check_row(json.loads(payload.decode("utf-8", "surrogatepass"))))
        except ValueError:
            bad += _HEADER.size + length  # framed and summed, yet not a row
    return rows, bad + len(data) - offset


def lock_directory(directory: Path) -> int:
    """Create ``directory`` and hold its exclusive lock; JournalBusy if taken."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise JournalBusy(f"{directory} is used by another process") from None
    return fd


def unlock_directory(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


class Journal:
    """Spilled rows on local disk, bounded, replayed oldest first."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_size_for(max_bytes)
        self._sealed: deque[Path] = deque()
        self._size = 0
        self._next = 1
        self._active: BinaryIO | None = None
        self._active_path: Path | None = None
        self._active_bytes = 0
        self._lock: int | None = None

    @property
    def pending(self) -> bool:
        """Whether any row waits to be replayed."""
        return bool(self._sealed) or self._active_bytes > 0

    @property
    def size_bytes(self) -> int:
        return self._size

    def open(self) -> None:
        """Lock the directory and find the segments a previous run left."""
        self._lock = lock_directory(self.directory)
        found = sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}"), key=_sequence)
        for path in found:
            if path.stat().st_size == 0:
                path.unlink()
                continue
            self._sealed.append(path)
            self._size += path.stat().st_size
        self._next = _sequence(found[-1]) + 1 if found else 1

    def append(self, rows: Sequence[SpendLogRow]) -> int:
        """Append rows in order while they fit; how many were taken."""
        taken = 0
        chunks: list[bytes] = []
        for row in rows:
            record = frame(row)
            if self._size + len(record) > self.max_bytes:
                break
            if self._active_bytes and self._active_bytes + len(record) > self.segment_bytes:
                self._write(chunks)
                chunks = []
                self._seal()
            chunks.append(record)
            self._size += len(record)
            self._active_bytes += len(record)
            taken += 1
        self._write(chunks)
        return taken

    def _write(self, chunks: list[bytes]) -> None:
        if not chunks:
            return
        if self._active is None:
            self._active_path = self.directory / f"{_PREFIX}{self._next:012d}{_SUFFIX}"
            self._next += 1
            self._active = open(self._active_path, "ab")  # noqa: SIM115 - kept open
        self._active.write(b"".join(chunks))
        self._active.flush()

    def _seal(self) -> None:
        if self._active is None or self._active_path is None:
            return
        os.fsync(self._active.fileno())
        self._active.close()
        self._sealed.append(self._active_path)
        self._active, self._active_path, self._active_bytes = None, None, 0

    def oldest(self) -> Path | None:
        """The oldest segment to replay, sealing the open one if it is all there is."""
        if not self._sealed:
            self._seal()
        return self._sealed[0] if self._sealed else None

    def read(self, path: Path) -> tuple[list[SpendLogRow], int]:
        """The rows of a segment, and how many bytes were torn or corrupt."""
        return read_frames(path.read_bytes())

    def remove(self, path: Path) -> None:
        """Forget a replayed segment."""
        self._size -= path.stat().st_size
        path.unlink()
        self._sealed.remove(path)

    def close(self) -> None:
        """Seal the open segment and release the directory."""
        self._seal()
        if self._lock is not None:
            unlock_directory(self._lock)
            self._lock = None
