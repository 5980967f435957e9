"""structlog configuration and the one access-log line per RPC.

JSON lines on stdout (console rendering on a tty), filtered by level before
any processor runs, each line carrying ``trace_id``/``span_id`` and Datadog's
``dd.*`` correlation fields. No stdlib ``logging`` on the hot path; records
that grpc, asyncio, OpenTelemetry and other libraries log through stdlib
``logging`` are rendered by the same processors (structlog's
ProcessorFormatter on the root logger), so every line has one format.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry import trace
from structlog.typing import EventDict, FilteringBoundLogger, Processor

from service import __version__
from service.settings import Settings
from service.telemetry.correlation import LOW_64_BITS, current_ids
from service.types import CallRecord

__all__ = [
    "AccessLog",
    "access_fields",
    "configure_logging",
    "get_logger",
    "reset_logging",
]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
MAX_RULE_IDS = 64
#: Libraries whose stdlib log records we keep only from WARNING up.
QUIET_LIBRARIES = ("grpc", "asyncio", "opentelemetry", "aiosqlite", "asyncpg", "urllib3")
_HANDLER_NAME = "guardrail-structlog"


class _Timestamp:
    """ISO-8601 UTC with milliseconds; the seconds part is formatted once a second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, _: Any, __: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        millis = int((now - second) * 1000)
        event_dict["timestamp"] = f"{self._prefix}.{millis:03d}Z"

        return event_dict


class _TraceCorrelation:
    """Adds the current span's ids, in OTel hex and in Datadog's decimal form."""

    __slots__ = ("_static",)

    def __init__(self, service: str, env: str, version: str) -> None:
        self._static = {"dd.service": service, "dd.env": env, "dd.version": version}

    def __call__(self, _: Any, __: str, event_dict: EventDict) -> EventDict:
        ids = current_ids.get()
        if ids is not None:  # the RPC in flight (set by the recording interceptor)
            event_dict["trace_id"], event_dict["span_id"] = ids.trace_id, ids.span_id
            event_dict["dd.trace_id"], event_dict["dd.span_id"] = ids.dd_trace_id, ids.dd_span_id
            event_dict.update(self._static)
            return event_dict
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            trace_id, span_id = context.trace_id, context.span_id
            event_dict["trace_id"] = format(trace_id, "032x")
            event_dict["span_id"] = format(span_id, "016x")
            # Datadog correlates on the low 64 bits of a 128-bit trace id.
            event_dict["dd.trace_id"] = str(trace_id & LOW_64_BITS)
            event_dict["dd.span_id"] = str(span_id)
        event_dict.update(self._static)

        return event_dict


def _redacted_traceback(exc: BaseException) -> str:
    # Exception messages can quote request content (a KeyError on a prompt
    # fragment, say), so we keep the frames and the exception types only.
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 20:
        kind = type(current)
        frames = "".join(traceback.format_tb(current.__traceback__))
        parts.append(f"{frames}{kind.__module__}.{kind.__qualname__}\n")
        current = current.__cause__ or current.__context__
    header = "Traceback (most recent call last, messages withheld):\n"

    return header + "\nwhich happened while handling:\n".join(reversed(parts))


def _format_exc_info(_: Any, __: str, event_dict: EventDict) -> EventDict:
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if isinstance(exc_info, BaseException):
        exc: BaseException | None = exc_info
    else:
        exc = sys.exc_info()[1] if exc_info is True else exc_info[1]
    if exc is not None:
        event_dict["exception"] = _redacted_traceback(exc)

    return event_dict


def _json_renderer() -> Processor:
    # orjson: ~5x faster than the json module on an access line.
    dumps = orjson.dumps

    def render(_: Any, __: str, event_dict: EventDict) -> str:
        return dumps(event_dict, default=str).decode()

    return render


def _logger_name(_: Any, __: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    if record is not None:
        event_dict["logger.name"] = record.name
    return event_dict


def _route_stdlib(
    stream: TextIO, level: int, chain: list[Processor], renderer: Processor
) -> None:
    """Render stdlib ``logging`` records with our processors, on our stream."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, _logger_name, *chain],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    _unroute_stdlib()
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def _unroute_stdlib() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)


class _LineWriter:
    """Writes access lines to the stream and flushes once per loop iteration.

    structlog's WriteLogger flushes after every line: one write(2) per RPC.
    Lines written while the event loop runs are flushed together by a
    callback at the end of the current loop iteration, before the loop waits
    for I/O again, so a line reaches the file descriptor as soon as the
    callbacks ready with it have run. Outside a running loop each line is
    flushed at once, unless a flush is already due in a running loop (a line
    from another thread then goes with it). A loop that stopped with a flush
    due is noticed by the next line. Other log lines share the stream and
    flush it themselves, so the order of lines is kept.
    """

    __slots__ = ("_flush", "_pending", "_write")

    def __init__(self, stream: TextIO) -> None:
        self._write = stream.write
        self._flush = stream.flush
        self._pending: asyncio.AbstractEventLoop | None = None  # a flush is due there

    def __call__(self, line: str) -> None:
        self._write(line)
        pending = self._pending
        if pending is not None:
            if pending.is_running():
                return  # its flush comes at the end of this iteration
            self._pending = None  # that loop stopped before flushing
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush()
            return
        self._pending = loop
        loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._pending = None
        try:
            self._flush()
        except (OSError, ValueError):  # stdout closed or gone: the call went on
            pass


class _AccessPipeline:
    """The configured processors, run without a BoundLogger around them.

    The access line is the one line every RPC writes; skipping the bound
    logger's context copy and dispatch halves its cost. Level filtering and
    rendering are the same as for every other line.
    """

    __slots__ = ("enabled", "processors", "write")

    def __init__(self, enabled: bool, processors: list[Processor], stream: TextIO) -> None:
        self.enabled = enabled
        self.processors = processors
        self.write = _LineWriter(stream)

    def emit(self, event_dict: EventDict) -> None:
        for processor in self.processors:
            event_dict = processor(None, "info", event_dict)
        self.write(f"{event_dict}\n")


_access: _AccessPipeline | None = None


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(
    settings: Settings,
    *,
    stream: TextIO | None = None,
    service_name: str = "guardrail-service",
    cache_loggers: bool = True,
) -> None:
    """Configure structlog once at start-up (tests pass a ``stream``)."""
    global _access
    stream = stream or sys.stdout
    console = settings.log_format == "console" or (
        settings.log_format == "auto" and _is_tty(stream)
    )
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=_is_tty(stream))
        if console
        else _json_renderer()
    )
    timestamp = _Timestamp()
    correlation = _TraceCorrelation(service_name, settings.environment, __version__)
    level = LEVELS[settings.log_level]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamp,
            correlation,
            _format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=cache_loggers,
    )
    _access = _AccessPipeline(
        level <= LEVELS["info"],
        [timestamp, correlation, renderer],
        stream,
    )
    _route_stdlib(stream, level, [timestamp, correlation, _format_exc_info], renderer)


def reset_logging() -> None:
    """Back to structlog's defaults (tests)."""
    global _access
    structlog.reset_defaults()
    _unroute_stdlib()
    _access = None


def get_logger(name: str) -> FilteringBoundLogger:
    """A lazily bound logger that names its module in each line."""
    # "logger.name" is Datadog's standard attribute for it.
    logger: FilteringBoundLogger = structlog.get_logger(**{"logger.name": name})
    return logger


def access_fields(record: CallRecord) -> dict[str, Any]:
    """The access-log fields of one call: ids, codes and counts, never content."""
    fields: dict[str, Any] = {
        "method": record.method,
        "call_type": record.call_type,
        "code": record.grpc_code,
        # ._value_ rather than .value: a plain attribute, not Enum's descriptor.
        "decision": record.decision._value_ if record.decision else "",
        "duration_ms": round(record.duration_ns / 1e6, 3),
        "request_id": record.request_id,
        "client_request_id": record.client_request_id,
        "api_key_hash": record.api_key_hash,
        "worker": record.worker,
    }
    if record.direction is not None:
        fields["direction"] = record.direction._value_
    if record.outcomes:
        fields["guardrails"] = [
            {"name": o.name, "status": o.status._value_, "findings": o.finding_count}
            for o in record.outcomes
        ]
    if record.findings:
        fields["rule_ids"] = sorted({f.rule_id for f in record.findings})[:MAX_RULE_IDS]
    if record.registry_generation:
        fields["registry_generation"] = record.registry_generation
    if record.stream_end:
        fields["stream_end"] = record.stream_end
        fields["chunk_count"] = record.chunk_count
        fields["stream_bytes"] = record.stream_bytes
    if record.error_reason:
        fields["error_reason"] = record.error_reason
        fields["error_message"] = record.error_message

    return fields


class AccessLog:
    """The access-log sink: one line per finished RPC."""

    def __init__(self, logger: FilteringBoundLogger | None = None) -> None:
        self._log = logger or get_logger("service.access")

    def write(self, record: CallRecord) -> None:
        pipeline = _access
        if pipeline is None:  # logging not configured: structlog's defaults
            self._log.info("rpc", **access_fields(record))
            return
        if not pipeline.enabled:
            return
        fields = access_fields(record)
        fields["event"] = "rpc"
        fields["level"] = "info"
        fields["logger.name"] = "service.access"
        pipeline.emit(fields)
