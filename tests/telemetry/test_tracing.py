from __future__ import annotations

import pytest
from opentelemetry.trace import StatusCode

from service.errors import SettingsError
from service.settings import load_settings
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


def run_span(tracing, record, carrier=None):
    started = tracing.tracer.start(
        "guardrail.v1.GuardrailService/Check", "guardrail.v1.GuardrailService", "Check",
        carrier,
    )  # fmt: skip
    tracing.tracer.finish(started, record)


def test_span_has_name_attributes_and_no_content(tracing, spans):
    """The server span is named after the method and carries outcomes, never text."""
    run_span(tracing, finished_record())

    (span,) = spans.get_finished_spans()
    attributes = dict(span.attributes)
    assert span.name == "guardrail.v1.GuardrailService/Check"
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "guardrail.v1.GuardrailService"
    assert attributes["rpc.method"] == "Check"
    assert attributes["rpc.grpc.status_code"] == 0
    assert attributes["rpc.response.status_code"] == "OK"
    assert attributes["gen_ai.guardrail.decision"] == "MASK"
    assert attributes["gen_ai.guardrail.names"] == ("secrets",)
    assert attributes["gen_ai.guardrail.statuses"] == ("intervened",)
    assert attributes["gen_ai.guardrail.rule_ids"] == ("openai-key",)
    assert attributes["gen_ai.guardrail.finding_count"] == 1
    assert SECRET not in repr(attributes)
    assert span.status.status_code is StatusCode.UNSET


def test_parent_is_continued_from_traceparent(tracing, spans):
    """A W3C traceparent in the metadata makes the span its child."""
    run_span(tracing, finished_record(), {"traceparent": TRACEPARENT})

    (span,) = spans.get_finished_spans()
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

    (span,) = spans.get_finished_spans()
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
