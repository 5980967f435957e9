"""A real server with API keys configured; spans captured in memory."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import service.app
from service.app import RunningServer, start_server
from service.auth.keys import hash_key, key_id, new_key
from service.telemetry.logging import reset_logging
from service.telemetry.tracing import Tracing
from tests.conftest import make_settings


@dataclass(frozen=True)
class Keys:
    check: str  # scope check, team "red", tenant "acme"
    admin: str  # scope admin only
    both: str
    path: Path

    @staticmethod
    def prefix(key: str) -> str:
        return key_id(hash_key(key))


def write_keys(directory: Path, **rates: float) -> Keys:
    keys = Keys(new_key(), new_key(), new_key(), directory / "keys.json")
    entries = [
        {"name": "gateway", "hash": hash_key(keys.check), "team": "red", "tenant": "acme",
         "scopes": ["check"]},
        {"name": "ops", "hash": hash_key(keys.admin), "team": "ops", "tenant": "acme",
         "scopes": ["admin"]},
        {"name": "all", "hash": hash_key(keys.both), "team": "blue", "tenant": "zeta",
         "scopes": ["check", "admin"], **rates},
    ]  # fmt: skip
    keys.path.write_text(json.dumps({"keys": entries}))
    return keys


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Every span the next started server exports."""
    exporter = InMemorySpanExporter()
    original = Tracing.from_settings.__func__  # type: ignore[attr-defined]

    def in_memory(cls: type[Tracing], settings, **_: object) -> Tracing:
        return original(
            cls, settings, processor=SimpleSpanProcessor(exporter), set_global=False
        )

    monkeypatch.setattr(service.app.Tracing, "from_settings", classmethod(in_memory))
    yield exporter


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Everything the next started server logs (its access lines included)."""
    buffer = io.StringIO()
    original = service.app.configure_logging

    def into_buffer(settings, **kwargs: object) -> None:
        original(settings, stream=buffer, cache_loggers=False)

    monkeypatch.setattr(service.app, "configure_logging", into_buffer)
    yield buffer
    reset_logging()


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return write_keys(tmp_path)


@pytest.fixture
async def auth_server(
    tmp_path: Path, keys: Keys, spans: InMemorySpanExporter, log_lines: io.StringIO
) -> AsyncIterator[RunningServer]:
    settings = make_settings(
        tmp_path, workers=1, api_keys_file=keys.path, log_level="info"
    )
    running = await start_server(settings)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)
