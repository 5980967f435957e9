"""Telemetry fixtures: in-memory spans, captured log lines, a fake gRPC service."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.api.interceptors import RecordingInterceptor
from service.errors import NotFoundError
from service.settings import load_settings
from service.telemetry.logging import configure_logging, reset_logging
from service.telemetry.metrics import MethodInfo, Metrics
from service.telemetry.tracing import Tracing
from service.types import CallRecord

FAKE_SERVICE = "test.v1.Fake"
SECRET = "sk-live-4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f"


class ListSink:
    """A SpendLogSink that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def submit(self, record: CallRecord) -> None:
        self.records.append(record)


class LogCapture:
    """structlog configured for JSON into a buffer; ``lines()`` parses them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    settings = load_settings(log_format="json", log_level="info", environment="test")
    configure_logging(settings, stream=capture.stream, cache_loggers=False)
    yield capture
    reset_logging()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(spans: InMemorySpanExporter) -> Iterator[Tracing]:
    traced = Tracing.from_settings(
        load_settings(), processor=SimpleSpanProcessor(spans), set_global=False
    )
    yield traced
    traced.shutdown()


def fake_methods() -> list[MethodInfo]:
    return [
        MethodInfo(FAKE_SERVICE, name, "unary")
        for name in ("Ok", "Missing", "Boom", "Abort", "Slow")
    ] + [MethodInfo(FAKE_SERVICE, "Chat", "bidi_stream")]


async def _ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return b"ok:" + request


async def _missing(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise NotFoundError("guardrail 'nope' is not registered", ["nope"])


async def _boom(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError(f"bug while scanning {SECRET}")


async def _abort(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")
    raise AssertionError("unreachable")


async def _slow(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.sleep(5)
    return b""


async def _chat(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    async for request in requests:
        yield b"re:" + request


def fake_handler() -> grpc.GenericRpcHandler:
    unary = {
        "Ok": _ok, "Missing": _missing, "Boom": _boom, "Abort": _abort, "Slow": _slow,
    }  # fmt: skip
    handlers = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in unary.items()}
    handlers["Chat"] = grpc.stream_stream_rpc_method_handler(_chat)
    return grpc.method_handlers_generic_handler(FAKE_SERVICE, handlers)


class FakeServer:
    def __init__(self, channel: grpc.aio.Channel, sink: ListSink, metrics: Metrics) -> None:
        self.channel = channel
        self.sink = sink
        self.metrics = metrics

    async def records(self, count: int) -> list[CallRecord]:
        """The records once ``count`` arrived (a handler's own abort reaches
        the caller before the interceptor's exit code has run)."""
        for _ in range(100):
            if len(self.sink.records) >= count:
                break
            await asyncio.sleep(0.01)
        return self.sink.records

    def unary(self, name: str) -> Callable[..., Any]:
        return self.channel.unary_unary(f"/{FAKE_SERVICE}/{name}")

    def stream(self, name: str) -> Callable[..., Any]:
        return self.channel.stream_stream(f"/{FAKE_SERVICE}/{name}")


@pytest.fixture
async def fake_server(
    logs: LogCapture, tracing: Tracing
) -> AsyncIterator[FakeServer]:
    """A real grpc.aio server on 127.0.0.1:0 with the recording interceptor."""
    sink, metrics = ListSink(), Metrics(fake_methods())
    interceptor = RecordingInterceptor(metrics, tracing, sink, worker=3)
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((fake_handler(),))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield FakeServer(channel, sink, metrics)
    await server.stop(None)
