"""Policy/fail-mode/MCP-pin fixtures: real servers with chosen settings, spans kept in memory."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import service.app
from service.app import RunningServer, start_server
from service.telemetry.tracing import Tracing
from tests.conftest import make_settings

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Servers started in this test export their spans here (no OTEL env needed)."""
    exporter = InMemorySpanExporter()
    original = Tracing.from_settings

    def in_memory(settings: Any, **_: Any) -> Tracing:
        return original(settings, processor=SimpleSpanProcessor(exporter), set_global=False)

    monkeypatch.setattr(service.app.Tracing, "from_settings", staticmethod(in_memory))
    return exporter


Started = Callable[..., Awaitable[tuple[RunningServer, pb_grpc.GuardrailServiceStub]]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Started]:
    """Start servers with settings overrides; each is stopped at the end."""
    running: list[tuple[RunningServer, grpc.aio.Channel]] = []

    async def _start(**overrides: object) -> tuple[RunningServer, pb_grpc.GuardrailServiceStub]:
        server = await start_server(make_settings(tmp_path, **overrides))
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        running.append((server, channel))
        return server, pb_grpc.GuardrailServiceStub(channel)

    yield _start
    for server, channel in running:
        await channel.close()
        await server.stop(grace=1.0)


async def stop(started: tuple[RunningServer, Any]) -> None:
    await started[0].stop(grace=1.0)


def write_policy(tmp_path: Path, document: dict[str, Any], suffix: str = ".yaml") -> Path:
    path = tmp_path / f"policy-{uuid.uuid4().hex[:6]}{suffix}"
    path.write_text(json.dumps(document))  # JSON is YAML too
    return path


async def rows_of(server: RunningServer) -> list[dict[str, Any]]:
    """Every SpendLogs row, metadata parsed, after flushing the writer."""
    await server.writer.flush()
    url = server.settings.database_url.get_secret_value()
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM spend_logs")]
    else:
        conn = await asyncpg.connect(url)
        try:
            rows = [dict(r) for r in await conn.fetch("SELECT * FROM spend_logs")]
        finally:
            await conn.close()
    for row in rows:
        if isinstance(row["metadata"], str):
            row["metadata"] = json.loads(row["metadata"])
    return rows


async def row_for(server: RunningServer, request_id: str) -> dict[str, Any]:
    for _ in range(50):
        found = [r for r in await rows_of(server) if r["request_id"] == request_id]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no SpendLogs row for {request_id}")


def scrape(server: RunningServer) -> str:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


async def _pg_or_give_up() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        reason = f"PostgreSQL at {PG_URL} is unreachable: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must run the PostgreSQL tests, not skip them
        pytest.skip(reason)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    admin = await _pg_or_give_up()
    schema = f"test_pins_{uuid.uuid4().hex[:10]}"
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'guardrail.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
