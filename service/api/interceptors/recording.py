"""The recording interceptor: one CallRecord per RPC, handed to every sink.

It wraps the handler once (all four call shapes share one helper), gives the
call a server-generated request id, parses the request bytes itself (so a
body that is not valid protobuf is a recorded INVALID_ARGUMENT, not grpc's
unrecorded UNKNOWN), translates errors into statuses, and at
exit hands the finished record to the metrics, the span, the access log and
the SpendLogs writer. Health and reflection calls pass through untouched.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from service.api.call_context import current_call
from service.api.status import INTERNAL_MESSAGE, internal_status, to_grpc_status
from service.errors import (
    FieldViolation,
    GuardrailError,
    InvalidArgumentError,
    ResourceExhaustedError,
)
from service.request_ids import new_request_id
from service.telemetry.correlation import TraceIds, current_ids, parse_traceparent
from service.telemetry.logging import AccessLog, get_logger
from service.telemetry.metrics import MethodMetrics, Metrics, grpc_type_of
from service.telemetry.tracing import ServerSpan, ServerTracer, Tracing
from service.types import CallRecord, SpendLogSink

__all__ = ["EXCLUDED_PREFIXES", "REQUEST_ID_KEY", "RecordingInterceptor"]

EXCLUDED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
REQUEST_ID_KEY = "x-request-id"
TRACEPARENT = "traceparent"
MAX_CLIENT_REQUEST_ID = 128
_STATUS_DETAILS_KEY = "grpc-status-details-bin"

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
Decoder = Callable[[bytes], Any] | None


class _Status(
    collections.namedtuple("_Status", ("code", "details", "trailing_metadata")),
    grpc.Status,
):
    """A status whose trailers also carry the request id."""


class _Plan:
    """What is fixed per method: names and the bound metric children."""

    __slots__ = ("call_type", "full_name", "metrics", "name", "service")

    def __init__(self, path: str, grpc_type: str, metrics: Metrics) -> None:
        self.full_name = path.lstrip("/")  # span name: "pkg.Service/Method"
        self.service, _, self.name = self.full_name.rpartition("/")
        self.call_type = _snake_case(self.name)
        self.metrics: MethodMetrics = metrics.for_method(path, grpc_type)


def _snake_case(name: str) -> str:
    # "CheckStream" -> "check_stream"; once per method, so no regex needed.
    return "".join(
        f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name)
    )


_key_hashes: dict[str, str] = {}
MAX_CACHED_KEYS = 4096  # gateways present few keys; a flood of new ones just misses


def _hash_api_key(authorization: str) -> str:
    # sha256 per call costs ~1 µs; the same few keys come back all the time.
    cached = _key_hashes.get(authorization)
    if cached is not None:
        return cached
    token = authorization[7:] if authorization[:7].lower() == "bearer " else authorization
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    if len(_key_hashes) < MAX_CACHED_KEYS:
        _key_hashes[authorization] = digest

    return digest


def _error_reason(trailing_metadata: Any) -> str:
    # A handler that aborted with a rich status: take the ErrorInfo reason.
    for key, value in trailing_metadata or ():
        if key != _STATUS_DETAILS_KEY:
            continue
        for detail in status_pb2.Status.FromString(value).details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return str(info.reason)

    return ""


def _decoded(decode: Decoder, raw: Any) -> Any:
    """Parse a request inside the recorded call, so a corrupt body is the
    caller's INVALID_ARGUMENT with a row, not grpc's UNKNOWN with none."""
    if decode is None:
        return raw
    try:
        return decode(raw)
    except DecodeError:
        raise InvalidArgumentError(
            "the request message is not a valid protobuf encoding",
            [FieldViolation("request", "cannot be parsed")],
            reason="MALFORMED_MESSAGE",
        ) from None


def _bounded(decode: Decoder, limit: int | None) -> Decoder:
    """A decoder that refuses a message over ``limit`` bytes inside the recorded
    call: grpc core's own limit is set higher (service/app.py), so a caller who
    sends too much gets the reason, a request id and a row, not a bare refusal."""
    if decode is None or limit is None:
        return decode

    def bounded(raw: bytes) -> Any:
        if len(raw) > limit:
            raise ResourceExhaustedError(
                f"the request message is {len(raw)} bytes; the limit is {limit} "
                "(GUARDRAIL_MAX_MESSAGE_BYTES)",
                reason="MESSAGE_TOO_LARGE",
            )
        return decode(raw)

    return bounded


async def _counted(
    requests: AsyncIterator[Any], plan: _Plan, decode: Decoder = None
) -> AsyncIterator[Any]:
    received = plan.metrics.received
    async for request in requests:
        received.inc()
        yield _decoded(decode, request)


def _log_ids(parent: tuple[int, int, int] | None) -> TraceIds | None:
    # No server span (nothing exported): lines name the caller's trace and
    # its span, which is the one the caller's tracer exports.
    return TraceIds.of(parent[0], parent[1]) if parent is not None else None


class _Recording:
    """The per-call helper every call shape uses: begin, translate errors, end."""

    __slots__ = ("_context", "_owner", "_plan", "_span", "record")

    def __init__(
        self, owner: RecordingInterceptor, plan: _Plan, context: grpc.aio.ServicerContext
    ) -> None:
        self._owner = owner
        self._plan = plan
        self._context = context
        self._span: ServerSpan | None = None

    async def __aenter__(self) -> CallRecord:
        owner, plan, context = self._owner, self._plan, self._context
        record = self.record = CallRecord(
            request_id=new_request_id(),
            method=plan.name,
            call_type=plan.call_type,
            start_time=time.time(),
            start_ns=time.perf_counter_ns(),
            worker=owner.worker,
        )
        parent = self._read_metadata(record)
        context.set_trailing_metadata(((REQUEST_ID_KEY, record.request_id),))
        current_call.set(record)
        plan.metrics.started.inc()
        if owner.tracer is not None:
            span = self._span = owner.tracer.start(plan.full_name, plan.service, parent)
            current_ids.set(span.ids)
        elif parent is not None:
            current_ids.set(_log_ids(parent))

        return record

    def _read_metadata(self, record: CallRecord) -> tuple[int, int, int] | None:
        """Fill the record from the call metadata; the parsed traceparent."""
        parent = None
        for key, value in self._context.invocation_metadata() or ():
            if key == "authorization":
                record.api_key_hash = _hash_api_key(value)
            elif key == REQUEST_ID_KEY:
                record.client_request_id = value[:MAX_CLIENT_REQUEST_ID]
            elif key == TRACEPARENT:
                parent = parse_traceparent(value)

        return parent

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = None
        try:
            status = None if exc is None else self._translate(exc)
        finally:
            # Deliver before aborting: abort sends the status at once, and the
            # row must not lag behind the answer the caller already has.
            self._end(exc is None)
        if status is not None:
            await self._context.abort_with_status(status)  # raises AbortError

    def _expired(self) -> bool:
        remaining = self._context.time_remaining()
        return remaining is not None and remaining <= 0

    def _translate(self, exc: BaseException) -> grpc.Status | None:
        """Record how the call failed; the status to abort with, if any."""
        record = self.record
        if isinstance(exc, GuardrailError):
            record.grpc_code = exc.code.name
            record.error_reason = exc.reason
            record.error_message = exc.message
            if self._expired():
                # grpc has already answered DEADLINE_EXCEEDED (e.g. a
                # CheckStream whose 'open' never came in time): the row says
                # what the caller got; the message keeps the error that followed.
                record.grpc_code = record.error_reason = "DEADLINE_EXCEEDED"
                record.stream_end = "deadline"
            meta = {"request_id": record.request_id}
            return self._with_request_id(to_grpc_status(exc, meta))
        if isinstance(exc, grpc.aio.AbortError):  # the handler aborted itself
            code = self._context.code()
            record.grpc_code = code.name if code is not None else "UNKNOWN"
            record.error_message = self._context.details() or ""
            record.error_reason = _error_reason(self._context.trailing_metadata())
            return None
        if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            expired = self._expired()
            record.grpc_code = "DEADLINE_EXCEEDED" if expired else "CANCELLED"
            record.stream_end = "deadline" if expired else "cancelled"
            return None
        record.grpc_code = "INTERNAL" if isinstance(exc, Exception) else "UNKNOWN"
        record.error_reason = "INTERNAL"
        record.error_message = INTERNAL_MESSAGE
        self._owner.log.error(
            "unhandled exception in RPC",
            request_id=record.request_id,
            method=record.method,
            exc_info=exc,
        )
        if not isinstance(exc, Exception):
            return None  # SystemExit and friends keep propagating

        return self._with_request_id(internal_status(record.request_id))

    def _with_request_id(self, status: grpc.Status) -> grpc.Status:
        # abort_with_status replaces the trailers set at entry; re-add the id.
        trailers = (*status.trailing_metadata, (REQUEST_ID_KEY, self.record.request_id))
        return _Status(status.code, status.details, trailers)

    def _end(self, ok: bool) -> None:
        record = self.record
        record.end_time = time.time()
        record.duration_ns = time.perf_counter_ns() - record.start_ns
        if ok:
            code = self._context.code()  # a handler may set_code() and return
            if code is not None:
                record.grpc_code = code.name
        self._owner.deliver(record, self._plan, self._span)


class RecordingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Records every RPC once: metrics, span, access-log line, SpendLogs row.

    Put it outermost, so that it sees the final status of every call.
    """

    def __init__(
        self,
        metrics: Metrics,
        tracing: Tracing | None,
        spend_log: SpendLogSink,
        *,
        access_log: AccessLog | None = None,
        worker: int = 0,
        max_message_bytes: int | None = None,
    ) -> None:
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes
        self.spend_log = spend_log
        self.access_log = access_log or AccessLog()
        # Read once: a provider without exporters costs nothing per call.
        self.tracer: ServerTracer | None = tracing.tracer if tracing else None
        self.worker = worker
        self.exemplars = metrics.exemplars
        self.log = get_logger("service.api.recording")
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        self._sink_failures = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(EXCLUDED_PREFIXES):
            return handler
        # Handlers are the same object call after call: wrap each one once.
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)

        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """Rebuild a handler of any of the four shapes around one recorder."""
        streaming_in = bool(handler.request_streaming)
        streaming_out = bool(handler.response_streaming)
        plan = _Plan(method, grpc_type_of(streaming_in, streaming_out), self.metrics)
        wrap = self._streaming_response if streaming_out else self._unary_response
        factories = {
            (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
            (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
            (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
            (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
        }
        attribute, factory = factories[(streaming_in, streaming_out)]
        decode = _bounded(handler.request_deserializer, self.max_message_bytes)
        behavior = wrap(plan, getattr(handler, attribute), streaming_in, decode)

        # Raw bytes in: the wrapper parses them where a failure is recorded.
        return factory(
            behavior,
            request_deserializer=None,
            response_serializer=handler.response_serializer,
        )

    def _unary_response(
        self, plan: _Plan, behavior: Behavior, streaming_in: bool, decode: Decoder
    ) -> Behavior:
        sent = plan.metrics.sent

        async def record_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with _Recording(self, plan, context):
                if streaming_in:
                    request = _counted(request, plan, decode)
                else:
                    plan.metrics.received.inc()
                    request = _decoded(decode, request)
                response = behavior(request, context)
                if inspect.isawaitable(response):
                    response = await response
                sent.inc()
                return response

        return record_unary

    def _streaming_response(
        self, plan: _Plan, behavior: Behavior, streaming_in: bool, decode: Decoder
    ) -> Behavior:
        sent = plan.metrics.sent

        async def record_stream(
            request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            async with _Recording(self, plan, context):
                if streaming_in:
                    request = _counted(request, plan, decode)
                else:
                    plan.metrics.received.inc()
                    request = _decoded(decode, request)
                responses = behavior(request, context)
                if not hasattr(responses, "__aiter__"):
                    await responses  # the handler writes with context.write()
                    return
                async for response in responses:
                    sent.inc()
                    yield response

        return record_stream

    def deliver(self, record: CallRecord, plan: _Plan, span: ServerSpan | None) -> None:
        """Hand a finished record to every sink; a failing sink never fails the RPC."""
        try:
            exemplar = ""
            if span is not None and span.ids is not None and self.exemplars:
                exemplar = span.ids.trace_id if span.span.is_recording() else ""
            plan.metrics.finish(record.grpc_code, record.duration_ns / 1e9, exemplar)
            self.metrics.observe_call(record)
        except Exception as exc:
            self._sink_failed("metrics", exc)
        try:
            self.access_log.write(record)
        except Exception as exc:
            self._sink_failed("access_log", exc)
        try:
            # Writes the row to the slot's write-ahead file: done before the
            # answer goes, so a killed worker's successor can store it.
            self.spend_log.submit(record)
        except Exception as exc:
            self._sink_failed("spend_log", exc)
        if span is not None:
            try:
                self.tracer.finish(span, record)  # type: ignore[union-attr]
            except Exception as exc:
                self._sink_failed("tracing", exc)

    def _sink_failed(self, sink: str, exc: Exception) -> None:
        # A broken sink fails on every call: one traceback, then a count.
        self._sink_failures += 1
        try:
            if self._sink_failures == 1:
                self.log.error("recording sink failed", sink=sink, exc_info=exc)
            elif self._sink_failures % 1000 == 0:
                self.log.error(
                    "recording sink still failing", sink=sink, failures=self._sink_failures
                )
        except Exception:  # noqa: S110 - stdout itself is gone; the call goes on
            pass
