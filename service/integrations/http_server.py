"""The optional HTTP/JSON endpoint (LiteLLM's Generic Guardrail API).

aiohttp's server runs on the running asyncio loop (``AppRunner`` +
``TCPSite``), so it shares the gRPC server's loop, checker, registry and
records; it needs no thread and no second event loop. Every HTTP call gets
one ``CallRecord`` built as the recording interceptor builds one (request id,
api-key hash, client request id, trace headers) and handed to the same sinks
(metrics, span, access log, SpendLogs) through the interceptor's ``deliver``.

Authentication: with GUARDRAIL_API_KEYS_FILE set, a call needs a key with
the ``check`` scope, as ``Authorization: Bearer <key>`` or ``x-api-key: <key>``
(what LiteLLM's ``api_key`` option sends); the same keys, hashes and rate
limit as the gRPC side (service/auth). Refusals are 401 / 403 / 429.

Errors: a GuardrailError answers with the HTTP status matching its gRPC code
and a JSON body naming the reason; anything else is a 500 with a fixed
message and the request id, logged once with its traceback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from dataclasses import dataclass

import grpc
from aiohttp import web

from service.api.call_context import current_call
from service.api.interceptors.recording import REQUEST_ID_KEY, RecordingInterceptor
from service.auth import Authenticator
from service.checking import Checker
from service.errors import GuardrailError, RateLimitedError
from service.integrations.generic_api import DEFAULT_HOLDBACK_CAP, PATH, answer
from service.request_ids import new_request_id
from service.store.spend_logs import SpendLogWriter
from service.telemetry.logging import get_logger
from service.telemetry.metrics import MethodMetrics, Metrics
from service.telemetry.tracing import Tracing
from service.types import CallRecord

__all__ = ["HTTP_METHOD", "HttpEndpoint", "start_http"]

#: How HTTP calls are labelled in metrics, spans and SpendLogs rows.
HTTP_SERVICE = "litellm.GenericGuardrailApi"
HTTP_METHOD = "Apply"
CALL_TYPE = "generic_guardrail_api"
MAX_CLIENT_REQUEST_ID = 128

_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,  # RATE_LIMITED answers 429
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNAVAILABLE: 503,
}


@dataclass(slots=True)
class _Plan:
    """What ``RecordingInterceptor.deliver`` needs of a method."""

    metrics: MethodMetrics


def _api_key_hash(request: web.Request) -> str:
    # Same hash as the gRPC side: sha256 of the token without "Bearer ".
    token = request.headers.get("authorization") or request.headers.get("x-api-key")
    if not token:
        return ""
    if token[:7].lower() == "bearer ":
        token = token[7:]
    return hashlib.sha256(token.strip().encode()).hexdigest()


class _Handler:
    """One POST = one scan = one record."""

    def __init__(
        self,
        checker: Checker,
        recorder: RecordingInterceptor,
        offload_chars: int,
        authenticator: Authenticator | None = None,
        holdback_cap: int = DEFAULT_HOLDBACK_CAP,
    ) -> None:
        self._holdback_cap = holdback_cap
        self._auth = authenticator or Authenticator(None)
        self._checker = checker
        self._recorder = recorder
        self._offload_chars = offload_chars
        path = f"/{HTTP_SERVICE}/{HTTP_METHOD}"
        self._plan = _Plan(recorder.metrics.for_method(path, "unary"))
        self._log = get_logger("service.integrations.http")

    def _begin(self, request: web.Request) -> CallRecord:
        record = CallRecord(
            request_id=new_request_id(),
            method=HTTP_METHOD,
            call_type=CALL_TYPE,
            start_time=time.time(),
            start_ns=time.perf_counter_ns(),
            worker=self._recorder.worker,
            api_key_hash=_api_key_hash(request),
            client_request_id=request.headers.get(REQUEST_ID_KEY, "")[
                :MAX_CLIENT_REQUEST_ID
            ],
        )
        current_call.set(record)
        self._plan.metrics.started.inc()
        self._plan.metrics.received.inc()
        return record

    async def handle(self, request: web.Request) -> web.Response:
        record = self._begin(request)
        tracer = self._recorder.tracer
        carrier = {
            k: v for k in ("traceparent", "tracestate") if (v := request.headers.get(k))
        }
        span = None
        if tracer is not None:
            name = f"{HTTP_SERVICE}/{HTTP_METHOD}"
            span = tracer.start(name, HTTP_SERVICE, HTTP_METHOD, carrier or None)
        try:
            response = await self._respond(request, record)
        finally:
            record.end_time = time.time()
            record.duration_ns = time.perf_counter_ns() - record.start_ns
            self._recorder.deliver(record, self._plan, span)  # type: ignore[arg-type]
        response.headers[REQUEST_ID_KEY] = record.request_id
        return response

    async def _respond(self, request: web.Request, record: CallRecord) -> web.Response:
        try:
            self._authorize(request, record)
            raw = await request.read()
            body = json.loads(raw) if raw else None
            if len(raw) > self._offload_chars:
                result = await asyncio.to_thread(
                    answer, self._checker, body, holdback_cap=self._holdback_cap
                )
            else:
                result = answer(self._checker, body, holdback_cap=self._holdback_cap)
        except (ValueError, RecursionError) as exc:
            record.grpc_code, record.error_reason = "INVALID_ARGUMENT", "BAD_JSON"
            record.error_message = "body is not JSON"
            return _error(400, "BAD_JSON", f"body is not JSON: {exc}", record)
        except GuardrailError as exc:
            record.grpc_code, record.error_reason = exc.code.name, exc.reason
            record.error_message = exc.message
            status = 429 if isinstance(exc, RateLimitedError) else _HTTP_STATUS.get(exc.code, 500)
            response = _error(status, exc.reason, exc.message, record)
            if isinstance(exc, RateLimitedError):
                response.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
            return response
        except Exception as exc:
            record.grpc_code, record.error_reason = "INTERNAL", "INTERNAL"
            record.error_message = "internal error"
            self._log.error(
                "unhandled exception in HTTP call",
                request_id=record.request_id,
                exc_info=exc,
            )
            return _error(500, "INTERNAL", "internal error", record)
        self._plan.metrics.sent.inc()
        return web.json_response(result.body)

    def _authorize(self, request: web.Request, record: CallRecord) -> None:
        if self._auth.enabled:  # the record then holds only the key's hash prefix
            self._auth.authorize("check", _authorization(request), record)


def _authorization(request: web.Request) -> str:
    value = request.headers.get("authorization")
    if value:
        return value
    key = request.headers.get("x-api-key", "").strip()
    return f"Bearer {key}" if key else ""


def _error(status: int, reason: str, message: str, record: CallRecord) -> web.Response:
    error = {"reason": reason, "message": message, "request_id": record.request_id}
    return web.json_response({"error": error}, status=status)


@dataclass(slots=True)
class HttpEndpoint:
    """A started HTTP endpoint; ``stop()`` finishes in-flight calls, then closes."""

    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_http(
    checker: Checker,
    *,
    host: str,
    port: int,
    metrics: Metrics,
    tracing: Tracing | None,
    writer: SpendLogWriter,
    offload_chars: int = 64 * 1024,
    max_body_bytes: int = 4 * 1024 * 1024,
    reuse_port: bool = False,
    authenticator: Authenticator | None = None,
    holdback_cap: int = DEFAULT_HOLDBACK_CAP,
) -> HttpEndpoint:
    """Serve the Generic Guardrail API on ``host:port`` on the running loop."""
    recorder = RecordingInterceptor(metrics, tracing, writer)
    app = web.Application(client_max_size=max_body_bytes)
    handler = _Handler(checker, recorder, offload_chars, authenticator, holdback_cap)
    app.router.add_post(PATH, handler.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, reuse_port=reuse_port)
    await site.start()
    bound = runner.addresses[0][1]  # the real port when 0 was asked for
    return HttpEndpoint(runner, bound)
