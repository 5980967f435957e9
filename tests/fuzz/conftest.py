"""One real in-process server per fuzz module, driven by blocking clients.

Hypothesis runs plain (synchronous) test functions, so the server runs on its
own event loop in a background thread, and the tests call it over a real
socket with grpc's blocking stubs. ``FuzzServer.rows_for`` flushes the
SpendLogs writer (on the server's loop) before it counts rows.
"""

from __future__ import annotations

import asyncio
import collections
import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.app import RunningServer, start_server
from tests.conftest import make_settings

# Small enough that the fuzzers reach it cheaply; large enough for real payloads.
MAX_MESSAGE_BYTES = 256 * 1024
CASES_FILE = os.environ.get("GUARDRAIL_FUZZ_CASES_FILE", "")


@dataclass
class FuzzServer:
    running: RunningServer
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    stub: pb_grpc.GuardrailServiceStub
    cases: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    @property
    def db(self) -> str:
        return self.running.settings.database_url.get_secret_value().removeprefix(
            "sqlite:///"
        )

    def on_loop(self, coro: Any, timeout: float = 60.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def flush(self) -> None:
        self.on_loop(self.running.writer.flush())

    def row_count(self) -> int:
        self.flush()
        with sqlite3.connect(self.db, timeout=30) as db:
            return int(db.execute("SELECT count(*) FROM spend_logs").fetchone()[0])

    def rows_for(self, request_ids: list[str]) -> collections.Counter[str]:
        """How many rows each request id has (after a flush)."""
        self.flush()
        found: collections.Counter[str] = collections.Counter()
        with sqlite3.connect(self.db, timeout=30) as db:
            for start in range(0, len(request_ids), 500):
                chunk = request_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = (
                    f"SELECT request_id FROM spend_logs WHERE request_id IN ({marks})"
                )
                found.update(row[0] for row in db.execute(query, chunk))
        return found

    def alive(self) -> bool:
        """The server still answers a plain List call."""
        from guardrail.v1 import guardrail_pb2 as pb

        with grpc.insecure_channel(self.target) as channel:
            answer = pb_grpc.GuardrailServiceStub(channel).ListGuardrails(
                pb.ListGuardrailsRequest(), timeout=10
            )
        return len(answer.guardrails) > 0


def _serve_in_thread(
    settings: Any,
) -> tuple[RunningServer, asyncio.AbstractEventLoop, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-server", daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(start_server(settings), loop).result(120)
    return running, loop, thread


@pytest.fixture(scope="module")
def fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[FuzzServer]:
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    settings = make_settings(tmp_path, max_message_bytes=MAX_MESSAGE_BYTES)
    running, loop, thread = _serve_in_thread(settings)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    server = FuzzServer(running, loop, channel, pb_grpc.GuardrailServiceStub(channel))
    try:
        yield server
    finally:
        channel.close()
        asyncio.run_coroutine_threadsafe(running.stop(grace=1.0), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        _report_cases(request.module.__name__, server.cases)


def _report_cases(module: str, cases: collections.Counter[str]) -> None:
    """Print the case counts (visible with -s) and append them to a file if asked."""
    line = f"fuzz cases {module}: " + ", ".join(
        f"{k}={v}" for k, v in sorted(cases.items())
    )
    print(f"\n{line}")
    if CASES_FILE:
        with open(CASES_FILE, "a", encoding="utf-8") as out:
            out.write(line + "\n")
