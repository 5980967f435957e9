"""Shared fixtures: a real in-process server on an ephemeral port."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.app import RunningServer, start_server
from service.settings import Settings, load_settings

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not DATASETS.exists():  # CI lays shared/ beside the clone
    DATASETS = Path(os.environ.get("GUARDRAIL_DATASETS", "../shared/datasets")).resolve()


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "database_url": f"sqlite:///{tmp_path / 'spend.db'}",
        "log_format": "json",
        "log_level": "warning",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(make_settings(tmp_path))
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def stub(server: RunningServer) -> AsyncIterator[pb_grpc.GuardrailServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.GuardrailServiceStub(channel)


def spend_rows(server: RunningServer) -> list[dict[str, object]]:
    """Every SpendLogs row of a SQLite-backed server, as dicts."""
    url = server.settings.database_url.get_secret_value()
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM spend_logs")]


@pytest.fixture
def datasets() -> Iterator[Path]:
    if not DATASETS.exists():
        pytest.fail(f"evaluation datasets not found at {DATASETS}")
    yield DATASETS
