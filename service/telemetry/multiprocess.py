"""Exact metric totals across the worker processes of one instance.

prometheus_client's multiprocess mode, with two changes:

* files are named after the worker's **slot** (0..N-1), not its pid, so a
  restarted worker reopens its predecessor's file and continues its values:
  restarts mint no series, and whatever a worker counted before a SIGKILL is
  already in the page cache of the shared file;
* the value class writes straight into the mmap under one lock, skipping the
  library's per-write pid check (a worker never forks after configuring its
  slot), which makes an increment ~3x cheaper;
* the bound children the recording path increments (``telemetry/fast.py``)
  use ``unlocked_inc``: the value's offset in the file is looked up once and
  each increment is one 16-byte store into the mmap, without the lock. Only
  the event loop's thread increments those children, and every other writer
  (``set`` from the queue-depth thread, values created later) writes other
  offsets under the lock, so nothing is lost; a file that grows is remapped
  by prometheus_client without closing the old mapping, and both map the
  same shared file.

Each instance keeps its files in its own private directory, which the
supervisor prepares before starting workers and serves merged on /metrics.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = [
    "configure_worker_metrics",
    "is_multiprocess",
    "mark_worker_dead",
    "prepare_metrics_dir",
    "remove_metrics_dir",
    "serve_merged_metrics",
]

_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads it when a value is made
_state: dict[str, Any] = {"slot": None}
_pack_value = struct.Struct("dd").pack  # value, timestamp: prometheus_client's layout


def _slot_value_class(slot: int) -> type:
    base: type = values.MultiProcessValue(lambda: slot)
    lock = threading.Lock()

    class SlotValue(base):  # type: ignore[misc, valid-type]
        """An mmapped float in the slot's file; ``inc``/``set`` skip the pid check."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Offsets never move: the file only grows at its end.
            self._offset = self._file._positions[self._key]

        def unlocked_inc(self, amount: float = 1.0) -> None:
            """``inc`` for a value only the event loop's thread writes."""
            value = self._value = self._value + amount
            offset = self._offset
            self._file._m[offset : offset + 16] = _pack_value(value, 0.0)

        def inc(self, amount: float) -> None:
            with lock:
                self._value += amount
                self._file.write_value(self._key, self._value, 0.0)

        def set(self, value: float, timestamp: float | None = None) -> None:
            with lock:
                self._value = value
                self._file.write_value(self._key, value, timestamp or 0.0)

    return SlotValue


def configure_worker_metrics(directory: Path, slot: int) -> None:
    """Make this process count into ``directory`` as worker ``slot``.

    Call it in the worker before any metric is created (before
    ``Metrics()``); metrics created earlier keep counting in memory only.
    """
    if slot < 0:
        raise ValueError(f"worker slot must be >= 0, not {slot}")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ[_ENV] = str(directory)
    values.ValueClass = _slot_value_class(slot)
    _state["slot"] = slot


def is_multiprocess() -> bool:
    """True in a worker configured by ``configure_worker_metrics``."""
    return _state["slot"] is not None


def prepare_metrics_dir(directory: Path) -> Path:
    """Create the instance's private metrics directory, emptied of old files.

    Called by the supervisor before it starts workers: a new instance starts
    its counters from zero, as a restarted single process would.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in directory.glob("*.db"):
        stale.unlink()

    return directory


def remove_metrics_dir(directory: Path) -> None:
    """Delete the directory and its files (supervisor exit)."""
    shutil.rmtree(directory, ignore_errors=True)


def mark_worker_dead(directory: Path, slot: int) -> None:
    """Drop a dead worker's ``live*`` gauges (queue depth) until its slot restarts.

    Counters and histograms stay: they are totals, and the restarted worker
    continues them.
    """
    mark_process_dead(slot, str(directory))  # type: ignore[arg-type]


def serve_merged_metrics(
    directory: Path, host: str, port: int
) -> tuple[Any, int]:
    """Serve every worker's metrics merged on ``host:port``/metrics (a thread).

    Returns the HTTP server (``shutdown()`` stops it) and the bound port.
    """
    registry = CollectorRegistry(auto_describe=True)
    MultiProcessCollector(registry, path=str(directory))
    server, _thread = start_http_server(port, host, registry=registry)

    return server, int(server.server_port)
