"""Spans leave over real OTLP/gRPC, and log lines name the same trace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent import futures

import grpc
import pytest
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)

from service.app import start_server
from service.telemetry.logging import configure_logging
from tests.conftest import make_settings
from tests.tokens import aws_access_key_id

TRACE_ID = "5b8efff798038103d269b633813fc60c"
PARENT_SPAN_ID = "eee19b7ec3c1b174"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
CHECK = "guardrail.v1.GuardrailService/Check"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver that keeps every request it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):  # noqa: N802 (the proto's name)
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self):
        return [
            span
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    keeper = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(keeper, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield keeper, port
    server.stop(None)


@pytest.fixture
async def traced_server(tmp_path, receiver, monkeypatch, logs) -> AsyncIterator:
    _, port = receiver
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "guardrail-test")
    settings = make_settings(tmp_path, log_level="info")
    running = await start_server(settings)
    configure_logging(settings, stream=logs.stream, cache_loggers=False)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


def attributes(span) -> dict[str, object]:
    values = {}
    for item in span.attributes:
        value = item.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            values[item.key] = [v.string_value for v in value.array_value.values]
        else:
            values[item.key] = getattr(value, kind)
    return values


async def check_with_secret(running) -> str:
    secret = aws_access_key_id(11)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = pb_grpc.GuardrailServiceStub(channel)
        text = f"deploy with key {secret} and mail ann@example.org"
        response = await stub.Check(
            pb.CheckRequest(payload=pb.Payload(text=text)),
            metadata=(("traceparent", TRACEPARENT), ("authorization", "Bearer k-1")),
        )
    assert response.decision == pb.DECISION_BLOCK
    return secret


async def exported(keeper: Receiver, running, count: int):
    running.tracing.provider.force_flush()
    for _ in range(100):
        if len(keeper.spans()) >= count:
            break
        await asyncio.sleep(0.05)
    return keeper.spans()


async def test_spans_arrive_over_otlp_with_parentage_and_no_content(
    traced_server, receiver
):
    """The server span continues the traceparent, guardrail spans are its
    children, the attributes follow both conventions, and no content is sent."""
    keeper, _ = receiver
    secret = await check_with_secret(traced_server)

    spans = await exported(keeper, traced_server, 2)
    (server,) = [s for s in spans if s.name == CHECK]
    children = [s for s in spans if s.name.startswith("apply_guardrail ")]
    server_attributes = attributes(server)
    wire = b"".join(r.SerializeToString() for r in keeper.requests)
    assert server.trace_id.hex() == TRACE_ID
    assert server.parent_span_id.hex() == PARENT_SPAN_ID
    assert server.kind == server.SPAN_KIND_SERVER
    assert server_attributes["rpc.system"] == "grpc"
    assert server_attributes["rpc.system.name"] == "grpc"
    assert server_attributes["rpc.method"] == CHECK
    assert server_attributes["rpc.grpc.status_code"] == 0
    assert server_attributes["rpc.response.status_code"] == "OK"
    assert server_attributes["gen_ai.guardrail.decision"] == "BLOCK"
    assert server_attributes["gen_ai.security.decision.type"] == "deny"
    assert "secrets" in server_attributes["gen_ai.guardrail.names"]
    assert {"secrets", "pii"} <= {s.name.split(" ", 1)[1] for s in children}
    assert all(c.parent_span_id == server.span_id for c in children)
    assert all(c.trace_id == server.trace_id for c in children)
    assert any(e.name == "gen_ai.security.finding" for c in children for e in c.events)
    assert secret.encode() not in wire and b"ann@example.org" not in wire
    assert b"guardrail-test" in wire  # OTEL_SERVICE_NAME reached the resource


async def test_log_line_carries_the_exported_trace_id(traced_server, receiver, logs):
    """The access line names the same trace and span as the exported server span."""
    keeper, _ = receiver
    await check_with_secret(traced_server)

    spans = await exported(keeper, traced_server, 1)
    (server,) = [s for s in spans if s.name == CHECK]
    (access,) = [line for line in logs.lines() if line.get("event") == "rpc"]
    assert access["trace_id"] == server.trace_id.hex() == TRACE_ID
    assert access["span_id"] == server.span_id.hex()
    assert access["dd.trace_id"] == str(int(TRACE_ID[16:], 16))
    assert access["dd.span_id"] == str(int(server.span_id.hex(), 16))
    assert access["decision"] == "BLOCK" and access["code"] == "OK"
