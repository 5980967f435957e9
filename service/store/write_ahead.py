"""The write-ahead file: each answered call's row on disk before its answer goes.

A worker answers a call before the writer task has put the call's row in
the database; rows waiting in memory would die with the process. So
``append`` writes the row, framed as in the outage journal (``length |
crc32 | JSON row``) and followed by an end mark (a zero-length frame), to
this worker slot's file with one ``pwrite(2)`` before the interceptor lets
the answer go. The writer ``settle``s rows once the database (or the outage
journal, or the dead-letter file) holds them; once every row of a segment
is settled, a sealed segment is deleted and the open one starts again from
its first byte (an end mark there first). Rewriting pages already in the
page cache costs half what appending and truncating does (about 1 µs
against 2 µs per row); the end mark keeps the stale rows after it unread.
A worker that starts in the same slot, after a crash or not, replays what
is left; inserts are idempotent on request_id, so a row that was committed
just before the crash is not stored twice.

Durability: the write goes to the page cache and is not fsynced, so the row
survives the death of the process (SIGKILL, OOM kill, a crash) but a crash
of the host can lose the last rows, unless
``GUARDRAIL_SPEND_LOG_WRITE_AHEAD_FSYNC`` is on (an fdatasync per call:
safe, and far slower). The file is bounded: a row that does not fit is not made
durable, the call still answers, and the writer counts and logs it.

One process owns a slot directory at a time (an exclusive ``flock``).
"""

from __future__ import annotations

import os
from pathlib import Path

from service.store.journal import (
    END_MARK,
    frame,
    lock_directory,
    read_frames,
    segment_size_for,
    unlock_directory,
)
from service.store.rows import SpendLogRow

__all__ = ["Segment", "WriteAhead"]

_PREFIX, _SUFFIX = "rows-", ".wal"
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC


def _sequence(path: Path) -> int:
    return int(path.name.removeprefix(_PREFIX).removesuffix(_SUFFIX))


class Segment:
    """One file of the write-ahead log: where its rows end, how many are unsettled."""

    __slots__ = ("fd", "path", "size", "unsettled")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, _FLAGS, 0o600)
        self.size = 0
        self.unsettled = 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class WriteAhead:
    """A worker slot's rows, written before the answer, dropped once stored."""

    def __init__(self, directory: Path, max_bytes: int, *, fsync: bool = False) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_size_for(max_bytes)
        self.fsync = fsync
        self._active: Segment | None = None
        self._sealed: list[Segment] = []  # older segments with unsettled rows
        self._size = 0
        self._next = 1
        self._lock: int | None = None

    @property
    def size_bytes(self) -> int:
        return self._size

    def open(self) -> list[Path]:
        """Lock the slot; the files a previous process left, oldest first.

        The caller replays each one and then ``discard``s it.
        """
        self._lock = lock_directory(self.directory)
        found = sorted(self.directory.glob(f"{_PREFIX}*{_SUFFIX}"), key=_sequence)
        self._next = _sequence(found[-1]) + 1 if found else 1
        left = []
        for path in found:
            if path.stat().st_size == 0:
                path.unlink()
            else:
                left.append(path)
        return left

    @staticmethod
    def read(path: Path) -> tuple[list[SpendLogRow], int]:
        """The rows of a left-over file, and how many bytes were torn or corrupt."""
        return read_frames(path.read_bytes(), end_mark=True)

    @staticmethod
    def discard(path: Path) -> None:
        """Forget a left-over file once its rows are stored."""
        path.unlink(missing_ok=True)

    # -- the hot path ---------------------------------------------------------

    def append(self, row: SpendLogRow) -> Segment | None:
        """Write one row with one pwrite(2); its segment, or None when full."""
        record = frame(row)
        if self._size + len(record) > self.max_bytes:
            return None
        segment = self._active
        if segment is None or self._no_room(segment, len(record)):
            segment = self._rotate()
        data = record + END_MARK
        written = os.pwrite(segment.fd, data, segment.size)
        if written != len(data):  # a full disk: the next row overwrites the torn one
            raise OSError(f"short write to {segment.path}: {written} of {len(data)}")
        if self.fsync:
            os.fdatasync(segment.fd)
        segment.size += len(record)
        segment.unsettled += 1
        self._size += len(record)
        return segment

    def _no_room(self, segment: Segment, size: int) -> bool:
        # An empty segment takes any row, even one larger than a segment.
        return segment.size > 0 and segment.size + size > self.segment_bytes

    def _rotate(self) -> Segment:
        """Seal the open segment (deleting it if settled) and open the next."""
        old = self._active
        if old is not None:
            old.close()
            if old.unsettled:
                self._sealed.append(old)
            else:
                self._delete(old)
        self._active = Segment(self.directory / f"{_PREFIX}{self._next:012d}{_SUFFIX}")
        self._next += 1
        return self._active

    # -- the writer's side ----------------------------------------------------

    def settle(self, segment: Segment, count: int = 1) -> None:
        """``count`` rows of ``segment`` are stored: drop the segment once all are."""
        segment.unsettled -= count
        if segment.unsettled > 0:
            return
        if segment is self._active:
            if segment.size:  # start again at the first byte: no open(2), warm pages
                os.pwrite(segment.fd, END_MARK, 0)
                self._size -= segment.size
                segment.size = 0
            return
        if segment in self._sealed:
            self._sealed.remove(segment)
            self._delete(segment)

    def _delete(self, segment: Segment) -> None:
        segment.close()
        segment.path.unlink(missing_ok=True)
        self._size -= segment.size
        segment.size = 0

    def close(self) -> None:
        """Close the files; settled ones are deleted, unsettled ones are kept."""
        for segment in [*self._sealed, self._active]:
            if segment is None:
                continue
            segment.close()
            if not segment.unsettled:
                segment.path.unlink(missing_ok=True)
        self._sealed.clear()
        self._active = None
        if self._lock is not None:
            unlock_directory(self._lock)
            self._lock = None
