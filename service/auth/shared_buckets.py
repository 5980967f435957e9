"""Token buckets in one file that every worker process of an instance maps.

The kernel hands each connection to one worker (SO_REUSEPORT), so buckets
kept per process would give a client with one connection only its worker's
share of the rate. Here each key has one bucket for the whole instance: a
slot of ``(tag, tokens, updated)`` in a memory-mapped file in the instance's
runtime directory, read and written under an exclusive ``lockf`` lock (two
system calls per call, a few µs; the lock is held for a few loads and stores).
Times are ``time.monotonic()``, one clock for every process of the host.

Slots are found by the key's tag with linear probing. When every probe is
taken by other keys (more keys than ``SLOTS`` / ``PROBES`` spreads), the home
slot is reused and the key it held starts again with a full bucket: a known,
bounded leniency, never a refusal.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
from pathlib import Path

__all__ = ["FILE_NAME", "SharedBuckets"]

FILE_NAME = "rate-limit.bin"
SLOTS = 4096
PROBES = 8
_SLOT = struct.Struct("<Qdd")  # key tag (0: empty), tokens, updated


def _tag(key_id: str) -> int:
    digest = hashlib.blake2b(key_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class SharedBuckets:
    """One token bucket per key, shared by the processes that map ``path``."""

    def __init__(self, path: Path, slots: int = SLOTS) -> None:
        size = slots * _SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < size:
            os.ftruncate(self._fd, size)  # zero-filled: every slot empty
        self._map = mmap.mmap(self._fd, size)
        self._slots = slots
        self._tags: dict[str, int] = {}

    def take(self, key_id: str, rate: float, capacity: float, now: float) -> float:
        """Take one token: 0.0 when taken, else the seconds until one is due."""
        tag = self._tags.get(key_id)
        if tag is None:
            tag = self._tags[key_id] = _tag(key_id)
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            offset = self._find(tag)
            stored, tokens, updated = _SLOT.unpack_from(self._map, offset)
            if stored != tag:
                tokens = capacity
            else:
                tokens = min(capacity, tokens + max(0.0, now - updated) * rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate
            _SLOT.pack_into(self._map, offset, tag, tokens, now)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

        return wait

    def _find(self, tag: int) -> int:
        home = tag % self._slots
        for probe in range(PROBES):
            offset = ((home + probe) % self._slots) * _SLOT.size
            stored = _SLOT.unpack_from(self._map, offset)[0]
            if stored in (tag, 0):
                return offset
        return home * _SLOT.size

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
