from __future__ import annotations

import asyncio

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from service.api.status import INTERNAL_MESSAGE

from .conftest import SECRET

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def trailer(metadata, key):
    return dict(metadata or ()).get(key)


def handled(metrics, method, code):
    labels = {
        "grpc_type": "unary", "grpc_service": "test.v1.Fake",
        "grpc_method": method, "grpc_code": code,
    }  # fmt: skip
    return metrics.registry.get_sample_value("grpc_server_handled_total", labels)


async def test_ok_call_is_recorded_once_with_request_id(fake_server):
    """An OK call gives one record whose request id the caller gets as x-request-id."""
    call = fake_server.unary("Ok")(b"hi", metadata=(("authorization", "Bearer k1"),))
    assert await call == b"ok:hi"

    (record,) = fake_server.sink.records
    assert trailer(await call.trailing_metadata(), "x-request-id") == record.request_id
    assert (record.method, record.call_type, record.grpc_code) == ("Ok", "ok", "OK")
    assert record.worker == 3 and record.duration_ns > 0 and record.end_time > 0
    assert len(record.api_key_hash) == 64 and "k1" not in record.api_key_hash
    assert handled(fake_server.metrics, "Ok", "OK") == 1


async def test_guardrail_error_becomes_its_status_with_error_info(fake_server):
    """A raised GuardrailError is its code, with ErrorInfo and the request id in trailers."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await fake_server.unary("Missing")(b"")

    error = caught.value
    (record,) = fake_server.sink.records
    status = rpc_status.from_call(error)
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert (info.reason, info.domain) == ("GUARDRAIL_NOT_FOUND", "guardrail.v1")
    assert info.metadata["request_id"] == record.request_id
    assert trailer(error.trailing_metadata(), "x-request-id") == record.request_id
    assert (record.grpc_code, record.error_reason) == ("NOT_FOUND", "GUARDRAIL_NOT_FOUND")


async def test_unexpected_exception_is_internal_and_logged_once(fake_server, logs):
    """A bug is INTERNAL with the fixed message, logged once with a traceback, no content."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await fake_server.unary("Boom")(b"")

    (record,) = fake_server.sink.records
    errors = [line for line in logs.lines() if line["level"] == "error"]
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert caught.value.details() == INTERNAL_MESSAGE
    assert trailer(caught.value.trailing_metadata(), "x-request-id") == record.request_id
    assert record.grpc_code == "INTERNAL"
    assert len(errors) == 1 and errors[0]["request_id"] == record.request_id
    assert "builtins.RuntimeError" in errors[0]["exception"]
    assert SECRET not in logs.stream.getvalue()


async def test_handler_abort_records_the_code_it_set(fake_server):
    """When the handler aborts itself, the record carries the handler's code."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await fake_server.unary("Abort")(b"")

    (record,) = await fake_server.records(1)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert trailer(caught.value.trailing_metadata(), "x-request-id") == record.request_id
    assert (record.grpc_code, record.error_message) == ("PERMISSION_DENIED", "not for you")


async def test_deadline_and_cancellation_each_leave_one_record(fake_server):
    """A call past its deadline is DEADLINE_EXCEEDED; a cancelled one is CANCELLED."""
    with pytest.raises(grpc.aio.AioRpcError):
        await fake_server.unary("Slow")(b"", timeout=0.2)
    call = fake_server.unary("Slow")(b"")
    await asyncio.sleep(0.2)
    call.cancel()

    deadline, cancelled = await fake_server.records(2)
    assert (deadline.grpc_code, deadline.stream_end) == ("DEADLINE_EXCEEDED", "deadline")
    assert (cancelled.grpc_code, cancelled.stream_end) == ("CANCELLED", "cancelled")


async def test_bidi_stream_is_one_record_with_message_counts(fake_server):
    """A bidi stream is one record; messages in and out are counted."""
    call = fake_server.stream("Chat")(iter([b"a", b"b", b"c"]))
    replies = [reply async for reply in call]

    (record,) = await fake_server.records(1)
    labels = {"grpc_type": "bidi_stream", "grpc_service": "test.v1.Fake", "grpc_method": "Chat"}
    registry = fake_server.metrics.registry
    assert replies == [b"re:a", b"re:b", b"re:c"]
    assert (record.method, record.call_type) == ("Chat", "chat")
    assert trailer(await call.trailing_metadata(), "x-request-id") == record.request_id
    assert registry.get_sample_value("grpc_server_msg_received_total", labels) == 3
    assert registry.get_sample_value("grpc_server_msg_sent_total", labels) == 3


async def test_health_calls_are_not_recorded(fake_server, spans, logs):
    """Health checks produce no record, span, log line or metric."""
    stub = health_pb2_grpc.HealthStub(fake_server.channel)
    await stub.Check(health_pb2.HealthCheckRequest())

    started = fake_server.metrics.registry.get_sample_value(
        "grpc_server_started_total",
        {"grpc_type": "unary", "grpc_service": "unknown", "grpc_method": "unknown"},
    )
    assert fake_server.sink.records == []
    assert spans.get_finished_spans() == ()
    assert logs.lines() == []
    assert started is None


async def test_span_continues_the_callers_traceparent(fake_server, spans, logs):
    """The server span is a child of the incoming traceparent, and the log line says so."""
    await fake_server.unary("Ok")(b"x", metadata=(("traceparent", TRACEPARENT),))

    (span,) = spans.get_finished_spans()
    (line,) = [entry for entry in logs.lines() if entry["event"] == "rpc"]
    assert span.name == "test.v1.Fake/Ok"
    assert span.kind.name == "SERVER"
    assert format(span.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(span.parent.span_id, "016x") == "b7ad6b7169203331"
    assert span.attributes["rpc.grpc.status_code"] == 0
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["span_id"] == format(span.context.span_id, "016x")


async def test_a_failing_sink_does_not_fail_the_call(fake_server):
    """A sink that raises is logged and skipped; the caller still gets its answer."""

    def broken(record):
        raise RuntimeError("disk on fire")

    fake_server.sink.submit = broken  # type: ignore[method-assign]
    assert await fake_server.unary("Ok")(b"x") == b"ok:x"
