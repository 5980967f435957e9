from __future__ import annotations

import pytest
from opentelemetry.trace import StatusCode

from service.errors import SettingsError
from service.settings import load_settings
from service.telemetry.correlation import parse_traceparent
from service.telemetry.tracing import Tracing, build_resource
from service.types import (
    Action,
    CallRecord,
    Decision,
    Direction,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
    Severity,
)

from .conftest import SECRET

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def finished_record(code: str = "OK") -> CallRecord:
    return CallRecord(
        request_id="req-1",
        method="Check",
        call_type="check",
        start_time=0.0,
        start_ns=0,
        grpc_code=code,
        direction=Direction.INPUT,
        decision=Decision.MASK,
        outcomes=[GuardrailOutcome("secrets", 2, GuardrailStatus.INTERVENED, Action.MASK, 1)],
        findings=[
            Finding(
                "secrets", "openai-key", "credential", Severity.HIGH, Action.MASK,
                "messages[0].content", 4, 40, redacted_preview=SECRET,
            )
        ],  # fmt: skip
        registry_generation=3,
    )


def run_span(tracing, record, traceparent=None):
    parent = parse_traceparent(traceparent) if traceparent else None
    started = tracing.tracer.start(
        "guardrail.v1.GuardrailService/Check", "guardrail.v1.GuardrailService", parent
    )
    tracing.tracer.finish(started, record)


def server_and_child(spans):
    (server,) = [s for s in spans.get_finished_spans() if s.kind.name == "SERVER"]
    (child,) = [s for s in spans.get_finished_spans() if s.kind.name == "INTERNAL"]
    return server, child


def test_span_has_name_attributes_and_no_content(tracing, spans):
    """The server span is named after the method and carries outcomes, never text."""
    run_span(tracing, finished_record())

    span, child = server_and_child(spans)
    attributes = dict(span.attributes)
    assert span.name == "guardrail.v1.GuardrailService/Check"
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "guardrail.v1.GuardrailService"
    assert attributes["rpc.system.name"] == "grpc"
    assert attributes["rpc.method"] == "guardrail.v1.GuardrailService/Check"
    assert attributes["gen_ai.security.decision.type"] == "modify"
    assert attributes["gen_ai.security.target.type"] == "llm_input"
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["rpc.response.status_code"] == "OK"
    assert attributes["gen_ai.guardrail.decision"] == "MASK"
    assert attributes["gen_ai.guardrail.names"] == ("secrets",)
    assert attributes["gen_ai.guardrail.statuses"] == ("intervened",)
    assert attributes["gen_ai.guardrail.rule_ids"] == ("openai-key",)
    assert attributes["gen_ai.guardrail.finding_count"] == 1
    assert attributes["gen_ai.guardrail.intervened_count"] == 1
    assert child.name == "apply_guardrail secrets"
    assert child.parent.span_id == span.context.span_id
    assert child.attributes["gen_ai.security.policy.name"] == "secrets"
    assert child.attributes["gen_ai.security.decision.type"] == "modify"
    (finding,) = child.events
    assert finding.name == "gen_ai.security.finding"
    assert finding.attributes["gen_ai.security.policy.id"] == "openai-key"
    assert finding.attributes["gen_ai.security.risk.severity"] == "high"
    assert SECRET not in repr([s.to_json() for s in spans.get_finished_spans()])
    assert span.status.status_code is StatusCode.UNSET


def test_parent_is_continued_from_traceparent(tracing, spans):
    """A W3C traceparent in the metadata makes the span its child."""
    run_span(tracing, finished_record(), TRACEPARENT)

    span, _ = server_and_child(spans)
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert span.parent.is_remote


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("INTERNAL", StatusCode.ERROR),
        ("UNAVAILABLE", StatusCode.ERROR),
        ("DEADLINE_EXCEEDED", StatusCode.ERROR),
        ("INVALID_ARGUMENT", StatusCode.UNSET),
        ("NOT_FOUND", StatusCode.UNSET),
        ("CANCELLED", StatusCode.UNSET),
    ],
)
def test_only_server_faults_mark_the_span_as_error(tracing, spans, code, status):
    """Server-fault codes set span status ERROR; client faults leave it unset."""
    run_span(tracing, finished_record(code))

    span, _ = server_and_child(spans)
    assert span.status.status_code is status


def test_no_exporter_configured_means_no_tracer(monkeypatch):
    """With OTEL_TRACES_EXPORTER unset or 'none', no span is ever made."""
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert Tracing.from_settings(load_settings(), set_global=False).tracer is None

    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert Tracing.from_settings(load_settings(), set_global=False).tracer is None


def test_tracing_disabled_by_setting(monkeypatch, spans):
    """GUARDRAIL_TRACING_ENABLED=false wins over any OTEL_* exporter."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    settings = load_settings(tracing_enabled=False)

    assert Tracing.from_settings(settings, set_global=False).tracer is None


def test_unknown_exporter_stops_start_up(monkeypatch):
    """An exporter name nobody provides is a settings error naming the variable."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "carrier-pigeon")

    with pytest.raises(SettingsError, match="OTEL_TRACES_EXPORTER='carrier-pigeon'"):
        Tracing.from_settings(load_settings(), set_global=False)


def test_service_name_defaults_and_yields_to_otel_service_name(monkeypatch):
    """service.name is guardrail-service unless OTEL_SERVICE_NAME says otherwise."""
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert build_resource().attributes["service.name"] == "guardrail-service"

    monkeypatch.setenv("OTEL_SERVICE_NAME", "guardrail-eu")
    assert build_resource().attributes["service.name"] == "guardrail-eu"


@pytest.mark.parametrize(
    "value",
    [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future",
    ],
)
def test_valid_traceparents_parse(value):
    """Version 00 and longer future-version traceparents give their ids."""
    trace_id, span_id, flags = parse_traceparent(value)

    assert (format(trace_id, "032x"), format(span_id, "016x"), flags) == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1,
    )  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        "00-0x f7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
    ],
)
def test_invalid_traceparents_start_a_new_trace(value):
    """A malformed traceparent is ignored rather than half-parsed."""
    assert parse_traceparent(value) is None


def test_otlp_protocol_picks_the_exporter(monkeypatch):
    """OTEL_EXPORTER_OTLP_PROTOCOL must name a known transport."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")

    with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        Tracing.from_settings(load_settings(), set_global=False)
