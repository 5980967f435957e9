"""Server spans: one per RPC, continued from the caller's W3C ``traceparent``.

The SDK is configured only by the standard ``OTEL_*`` variables, which the SDK
reads itself (sampler, resource, batch processor, OTLP endpoint). The one we
look up ourselves is ``OTEL_TRACES_EXPORTER``, the way the SDK's
auto-configuration does, except that unset means ``none``: nothing is exported
and no span is made unless an operator asks for it.
"""

from __future__ import annotations

import os
import time
from importlib.metadata import entry_points

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import AttributeValue

from service import __version__
from service.errors import SettingsError
from service.settings import Settings
from service.telemetry.correlation import TraceIds
from service.types import (
    Action,
    CallRecord,
    Decision,
    Direction,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
)

__all__ = [
    "DEFAULT_SERVICE_NAME",
    "SERVER_FAULT_CODES",
    "ServerSpan",
    "ServerTracer",
    "Tracing",
    "build_resource",
    "configure_tracing",
    "remote_parent",
    "shutdown",
]

DEFAULT_SERVICE_NAME = "guardrail-service"
TRACER_NAME = "service.api"
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

MAX_FINDING_EVENTS = 64  # gen_ai.security.finding events per call
# The conventions' decision and target values for ours.
DECISION_TYPES = {
    Decision.ALLOW: "allow", Decision.MASK: "modify",
    Decision.BLOCK: "deny", Decision.FLAG: "warn",
}  # fmt: skip
TARGET_TYPES = {
    Direction.INPUT: "llm_input", Direction.OUTPUT: "llm_output",
    Direction.TOOL_DESCRIPTION: "tool_definition", Direction.TOOL_RESULT: "tool_result",
}  # fmt: skip
_ACTION_DECISIONS = {Action.BLOCK: "deny", Action.MASK: "modify", Action.FLAG: "warn"}
STATUS_DECISIONS = {
    (status, action): (
        _ACTION_DECISIONS[action] if status is GuardrailStatus.INTERVENED else "allow"
    )
    for status in GuardrailStatus
    for action in Action
}
EXPORTER_PROTOCOLS = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")

_current: Tracing | None = None


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
        name = raw.strip()
        name = _otlp_by_protocol() if name == "otlp" else name
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            raise SettingsError(
                f"{OTEL_TRACES_EXPORTER}={names!r}: no trace exporter named {name!r}"
            )
        exporters.append(next(iter(found)).load()())

    return exporters


def _otlp_by_protocol() -> str:
    # "otlp" means the transport OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL names
    # (default grpc), the way the SDK's auto-configuration reads it.
    for variable in _PROTOCOL_VARIABLES:
        protocol = os.environ.get(variable, "").strip()
        if not protocol:
            continue
        if protocol not in EXPORTER_PROTOCOLS:
            raise SettingsError(f"{variable}={protocol!r}: not one of grpc, http/protobuf")
        return EXPORTER_PROTOCOLS[protocol]

    return EXPORTER_PROTOCOLS["grpc"]


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
    """A started server span and the ids its log lines carry."""

    __slots__ = ("ids", "span", "start_ns")

    def __init__(self, span: Span, ids: TraceIds | None, start_ns: int) -> None:
        self.span = span
        self.ids = ids
        self.start_ns = start_ns


def remote_parent(parsed: tuple[int, int, int] | None) -> Context | None:
    """The OTel context of a parsed traceparent (None: a new trace)."""
    if parsed is None:
        return None
    trace_id, span_id, flags = parsed
    parent = SpanContext(trace_id, span_id, True, TraceFlags(flags & 0x01))

    return trace.set_span_in_context(NonRecordingSpan(parent))


class ServerTracer:
    """Starts and finishes the one server span of each RPC.

    The span is not attached as OTel's current context (nothing in the
    service starts spans of its own inside a handler, and attaching costs a
    few µs per call); log lines take its ids from ``correlation.current_ids``.
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start(
        self,
        full_method: str,
        service: str,
        parent: tuple[int, int, int] | None,
    ) -> ServerSpan:
        """Start the server span as a child of the caller's (parsed) traceparent."""
        start_ns = time.time_ns()
        span = self._tracer.start_span(
            full_method,
            context=remote_parent(parent),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",  # older conventions
                "rpc.system.name": "grpc",  # current conventions
                "rpc.service": service,  # older conventions
                "rpc.method": full_method,  # current: "pkg.Service/Method"
            },
            start_time=start_ns,
        )
        context = span.get_span_context()
        ids = TraceIds.of(context.trace_id, context.span_id) if context.is_valid else None

        return ServerSpan(span, ids, start_ns)

    def finish(self, started: ServerSpan, record: CallRecord) -> None:
        """Describe the outcome (never content) and end the span."""
        span = started.span
        if not span.is_recording():
            span.end()
            return
        span.set_attributes(_outcome_attributes(record))
        if not record.outcomes and record.grpc_code != "OK":
            # An error before any guardrail ran: say so on the span itself.
            span.add_event("gen_ai.guardrail.not_evaluated", {"error.type": record.grpc_code})
        if record.grpc_code in SERVER_FAULT_CODES:
            span.set_status(Status(StatusCode.ERROR, record.error_reason or None))
        self._guardrail_spans(span, started.start_ns, record)
        span.end()

    def _guardrail_spans(self, parent: Span, start_ns: int, record: CallRecord) -> None:
        # Sampled calls only (the caller checked is_recording). The engine
        # scans all guardrails in one pass, so each child spans the scan.
        if not record.outcomes:
            return
        context = trace.set_span_in_context(parent)
        end_ns = start_ns + max(record.scan_ns, 1)
        target = TARGET_TYPES.get(record.direction) if record.direction else None
        by_guardrail: dict[str, list[Finding]] = {}
        for finding in record.findings[:MAX_FINDING_EVENTS]:
            by_guardrail.setdefault(finding.guardrail, []).append(finding)
        for outcome in record.outcomes:
            child = self._tracer.start_span(
                f"apply_guardrail {outcome.name}",
                context=context,
                kind=SpanKind.INTERNAL,
                attributes=_guardrail_attributes(outcome, target),
                start_time=start_ns,
            )
            for finding in by_guardrail.get(outcome.name, ()):
                child.add_event("gen_ai.security.finding", _finding_event(finding))
            if outcome.status is GuardrailStatus.FAILED_OPEN:
                child.add_event("gen_ai.guardrail.failed_open", {"reason": outcome.reason})
            child.end(end_time=end_ns)


def _outcome_attributes(record: CallRecord) -> dict[str, AttributeValue]:
    code = record.grpc_code
    attributes: dict[str, AttributeValue] = {
        "rpc.grpc.status_code": GRPC_CODE_NUMBERS.get(code, 2),  # older
        "rpc.response.status_code": code,  # current
        "guardrail.request_id": record.request_id,
    }
    if code in SERVER_FAULT_CODES:
        attributes["error.type"] = code
    if record.error_reason:
        attributes["guardrail.error_reason"] = record.error_reason
    if record.decision is not None:
        attributes["gen_ai.guardrail.decision"] = record.decision.value
        attributes["gen_ai.security.decision.type"] = DECISION_TYPES[record.decision]
    if record.direction is not None:
        attributes["gen_ai.guardrail.direction"] = record.direction.value
        attributes["gen_ai.security.target.type"] = TARGET_TYPES[record.direction]
    if record.no_guardrails:
        attributes["gen_ai.guardrail.no_guardrails"] = True
    if record.outcomes:
        outcomes = record.outcomes[:MAX_LISTED]
        attributes["gen_ai.guardrail.names"] = [o.name for o in outcomes]
        attributes["gen_ai.guardrail.statuses"] = [o.status.value for o in outcomes]
        attributes["gen_ai.guardrail.count"] = len(record.outcomes)
        intervened = sum(o.status is GuardrailStatus.INTERVENED for o in record.outcomes)
        attributes["gen_ai.guardrail.intervened_count"] = intervened
        failed_open = sum(o.status is GuardrailStatus.FAILED_OPEN for o in record.outcomes)
        attributes["gen_ai.guardrail.failed_open_count"] = failed_open
    attributes["gen_ai.guardrail.finding_count"] = len(record.findings)
    if record.findings:
        rule_ids = sorted({f.rule_id for f in record.findings})
        attributes["gen_ai.guardrail.rule_ids"] = rule_ids[:MAX_LISTED]
        categories = sorted({f.category for f in record.findings})
        attributes["gen_ai.guardrail.categories"] = categories[:MAX_LISTED]
    if record.registry_generation:
        attributes["gen_ai.guardrail.registry_generation"] = record.registry_generation
    if record.stream_end:
        attributes["gen_ai.guardrail.stream_end"] = record.stream_end
        attributes["gen_ai.guardrail.chunk_count"] = record.chunk_count

    return attributes


def _guardrail_attributes(
    outcome: GuardrailOutcome, target: str | None
) -> dict[str, AttributeValue]:
    # The conventions' guardian is the evaluating service; our guardrails
    # are its policies (gen_ai.security.policy.*).
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "apply_guardrail",
        "gen_ai.guardian.name": DEFAULT_SERVICE_NAME,
        "gen_ai.security.policy.name": outcome.name,
        "gen_ai.security.policy.version": str(outcome.version),
        "gen_ai.security.decision.type": STATUS_DECISIONS[(outcome.status, outcome.action)],
        "gen_ai.guardrail.name": outcome.name,
        "gen_ai.guardrail.status": outcome.status.value,
        "gen_ai.guardrail.finding_count": outcome.finding_count,
    }
    if target:
        attributes["gen_ai.security.target.type"] = target
    if outcome.status is GuardrailStatus.INTERVENED and outcome.action is Action.MASK:
        attributes["gen_ai.security.content.redacted"] = True
    if outcome.status is GuardrailStatus.FAILED_OPEN:
        attributes["error.type"] = "failed_open"
    if outcome.reason:  # fixed texts of ours (NOT_RUN / FAILED_OPEN), never content
        attributes["gen_ai.guardrail.reason"] = outcome.reason
    attributes["gen_ai.guardrail.mode"] = outcome.mode.value

    return attributes


def _finding_event(finding: Finding) -> dict[str, AttributeValue]:
    return {
        "gen_ai.security.risk.category": finding.category,
        "gen_ai.security.risk.severity": finding.severity.value,
        "gen_ai.security.policy.id": finding.rule_id,
        "gen_ai.security.risk.metadata": [
            f"path:{finding.path}", f"start:{finding.start}", f"end:{finding.end}",
        ],  # fmt: skip
    }
