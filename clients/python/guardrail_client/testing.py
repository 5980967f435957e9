"""A real in-process guardrail-service for your own tests.

    # conftest.py
    pytest_plugins = ["guardrail_client.testing"]

    def test_my_gateway(guardrail_target):          # "127.0.0.1:PORT"
        with GuardrailClient(guardrail_target) as client:
            assert client.check("hi").allowed

The server runs on its own thread and event loop, so the fixtures work in
plain and in asyncio tests alike. It needs the service package
(``guardrail-service``) installed beside the client; it records to a SQLite
file in the test's temporary directory. Installing ``guardrail-client``
registers this module as a pytest plugin (entry point ``guardrail``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

__all__ = ["GuardrailServer", "guardrail_server", "guardrail_target"]

START_TIMEOUT_S = 60.0


class GuardrailServer:
    """The service on a background thread; ``target`` is its gRPC address."""

    def __init__(self, directory: Path, **settings: Any) -> None:
        self._settings = {
            "host": "127.0.0.1",
            "port": 0,
            "metrics_port": 0,
            "metrics_enabled": False,
            "workers": 1,
            "database_url": f"sqlite:///{directory / 'guardrail-spend.db'}",
            "log_level": "warning",
            **settings,
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._running: Any = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> Any:
        """The service's ``RunningServer`` (settings, registry, writer, ...)."""
        return self._running

    def start(self) -> GuardrailServer:
        from service.app import start_server  # the service package, not the client
        from service.settings import load_settings

        settings = load_settings(**self._settings)
        self._thread.start()
        future: Future[Any] = asyncio.run_coroutine_threadsafe(
            start_server(settings), self._loop
        )
        self._running = future.result(timeout=START_TIMEOUT_S)
        self.port = self._running.port
        return self

    def stop(self) -> None:
        if self._running is not None:
            stopping = asyncio.run_coroutine_threadsafe(
                self._running.stop(grace=1.0), self._loop
            )
            stopping.result(timeout=START_TIMEOUT_S)
            self._running = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=START_TIMEOUT_S)
        self._loop.close()


@pytest.fixture(scope="session")
def guardrail_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GuardrailServer]:
    """A started guardrail-service shared by the session's tests."""
    server = GuardrailServer(tmp_path_factory.mktemp("guardrail-service")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def guardrail_target(guardrail_server: GuardrailServer) -> str:
    """The gRPC address (``127.0.0.1:PORT``) of the session's service."""
    return guardrail_server.target
