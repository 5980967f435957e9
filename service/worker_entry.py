"""The first code a spawned worker process runs; kept free of heavy imports.

A SIGTERM that arrives while the worker is still importing the service is
remembered here and honoured as soon as the server has started, so a worker
told to stop during start-up drains instead of dying mid-start.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

__all__ = ["stop_requested_early", "worker_main"]

_early_stop = False


def _remember_stop(signum: int, frame: FrameType | None) -> None:
    global _early_stop
    _early_stop = True


def stop_requested_early() -> bool:
    return _early_stop


def worker_main(slot: int, port: int, socket_path: str, metrics_dir: str) -> None:
    """Entry point of a worker process (spawned: it re-reads the environment)."""
    signal.signal(signal.SIGTERM, _remember_stop)
    signal.signal(signal.SIGINT, _remember_stop)
    from service.app import run_worker

    run_worker(slot, port, socket_path, Path(metrics_dir) if metrics_dir else None)
