"""Server spans: one per RPC, continued from the caller's W3C ``traceparent``.

The SDK is configured only by the standard ``OTEL_*`` variables, which the SDK
reads itself (sampler, resource, batch processor, OTLP endpoint). The one we
look up ourselves is ``OTEL_TRACES_EXPORTER``, the way the SDK's
auto-configuration does, except that unset means ``none``: nothing is exported
and no span is made unless an operator asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import entry_points

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service import __version__
from service.errors import SettingsError
from service.settings import Settings
from service.types import CallRecord

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "SERVER_FAULT_CODES",
    "ServerSpan",
    "ServerTracer",
    "Tracing",
    "build_resource",
    "configure_tracing",
    "shutdown",
]

DEFAULT_SERVICE_NAME = "guardrail-service"
TRACER_NAME = "service.api"
EXPORTER_ALIASES = {"otlp": "otlp_proto_grpc"}
MAX_LISTED = 64  # rule ids / categories per span attribute
# Client-fault codes leave the span status unset (the otel grpc convention).
SERVER_FAULT_CODES = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE"}
    | {"DATA_LOSS"}
)
GRPC_CODE_NUMBERS = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5, "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
    "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13,
    "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}  # fmt: skip

_current: Tracing | None = None
# W3C trace context only: the global composite (tracecontext + baggage)
# costs twice as much per call and we use no baggage.
_W3C = TraceContextTextMapPropagator()


def build_resource() -> Resource:
    """The SDK resource from ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``."""
    resource = Resource.create({SERVICE_VERSION: __version__})
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if name.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))

    return resource


def _exporters_from_env() -> list[SpanExporter]:
    names = os.environ.get(OTEL_TRACES_EXPORTER, "").strip()
    if not names or names.lower() == "none":
        return []
    exporters = []
    for raw in names.split(","):
        name = EXPORTER_ALIASES.get(raw.strip(), raw.strip())
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            raise SettingsError(
                f"{OTEL_TRACES_EXPORTER}={names!r}: no trace exporter named {name!r}"
            )
        exporters.append(next(iter(found)).load()())

    return exporters


class Tracing:
    """The tracer provider of this process and its server tracer, if any.

    ``tracer`` is None when tracing is off or nothing would be exported, so
    the interceptor then pays nothing for spans.
    """

    def __init__(
        self, provider: TracerProvider | None, tracer: ServerTracer | None
    ) -> None:
        self.provider = provider
        self.tracer = tracer

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        processor: SpanProcessor | None = None,
        set_global: bool = True,
    ) -> Tracing:
        """Build from ``OTEL_*``; ``processor`` replaces the env-chosen exporters.

        Tests pass ``SimpleSpanProcessor(InMemorySpanExporter())``.
        """
        global _current
        if not settings.tracing_enabled:
            return cls(None, None)
        processors = [processor] if processor else [
            BatchSpanProcessor(exporter) for exporter in _exporters_from_env()
        ]  # fmt: skip
        if not processors:
            return cls(None, None)

        provider = TracerProvider(resource=build_resource())  # sampler: OTEL_TRACES_*
        for each in processors:
            provider.add_span_processor(each)
        if set_global:
            trace.set_tracer_provider(provider)
        tracer = ServerTracer(provider.get_tracer(TRACER_NAME, __version__))
        _current = cls(provider, tracer)

        return _current

    def shutdown(self) -> None:
        """Flush pending spans and stop the exporters."""
        if self.provider is None:
            return
        self.provider.force_flush()
        self.provider.shutdown()
        self.provider = None
        self.tracer = None


def configure_tracing(settings: Settings) -> Tracing:
    """``Tracing.from_settings`` with the defaults, for ``service.app``."""
    return Tracing.from_settings(settings)


def shutdown() -> None:
    """Flush and stop the most recently configured provider."""
    if _current is not None:
        _current.shutdown()


class ServerSpan:
    """A started server span and the context token that made it current."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span, token: object) -> None:
        self.span = span
        self.token = token


class ServerTracer:
    """Starts and finishes the one server span of each RPC."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start(
        self,
        full_method: str,
        service: str,
        method: str,
        carrier: Mapping[str, str] | None,
    ) -> ServerSpan:
        """Start the span as a child of the caller's trace and make it current.

        ``carrier`` holds the propagation headers from the call metadata
        (``traceparent``, ``tracestate``), or None when absent.
        """
        parent = _W3C.extract(carrier) if carrier else None
        span = self._tracer.start_span(
            full_method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": method,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))

        return ServerSpan(span, token)

    def finish(self, started: ServerSpan, record: CallRecord) -> None:
        """Describe the outcome (never content), end the span, restore context."""
        span = started.span
        try:
            if span.is_recording():
                span.set_attributes(_outcome_attributes(record))
                if record.grpc_code in SERVER_FAULT_CODES:
                    span.set_status(Status(StatusCode.ERROR, record.error_reason))
            span.end()
        finally:
            otel_context.detach(started.token)  # type: ignore[arg-type]


def _outcome_attributes(record: CallRecord) -> dict[str, str | int | list[str]]:
    code = record.grpc_code
    attributes: dict[str, str | int | list[str]] = {
        "rpc.grpc.status_code": GRPC_CODE_NUMBERS.get(code, 2),
        "rpc.response.status_code": code,
        "guardrail.request_id": record.request_id,
    }
    if record.error_reason:
        attributes["error.type"] = record.error_reason
    if record.decision is not None:
        attributes["gen_ai.guardrail.decision"] = record.decision.value
    if record.direction is not None:
        attributes["gen_ai.guardrail.direction"] = record.direction.value
    if record.outcomes:
        attributes["gen_ai.guardrail.names"] = [o.name for o in record.outcomes]
        attributes["gen_ai.guardrail.statuses"] = [
            o.status.value for o in record.outcomes
        ]
    if record.findings:
        attributes["gen_ai.guardrail.finding_count"] = len(record.findings)
        rule_ids = sorted({f.rule_id for f in record.findings})
        attributes["gen_ai.guardrail.rule_ids"] = rule_ids[:MAX_LISTED]
        categories = sorted({f.category for f in record.findings})
        attributes["gen_ai.guardrail.categories"] = categories[:MAX_LISTED]
    if record.registry_generation:
        attributes["gen_ai.guardrail.registry_generation"] = record.registry_generation

    return attributes
