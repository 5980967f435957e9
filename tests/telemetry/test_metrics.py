from __future__ import annotations

import urllib.request

import pytest
from guardrail.v1 import guardrail_pb2

from service.settings import load_settings
from service.telemetry.metrics import (
    GRPC_CODES,
    MAX_GUARDRAIL_LABELS,
    Metrics,
    service_methods,
)
from service.types import (
    Action,
    CallRecord,
    Decision,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
    Severity,
)

ALLOWED_LABELS = {
    "grpc_server_started": {"grpc_type", "grpc_service", "grpc_method"},
    "grpc_server_handled": {"grpc_type", "grpc_service", "grpc_method", "grpc_code"},
    "grpc_server_msg_received": {"grpc_type", "grpc_service", "grpc_method"},
    "grpc_server_msg_sent": {"grpc_type", "grpc_service", "grpc_method"},
    "grpc_server_handling_seconds": {"grpc_type", "grpc_service", "grpc_method"},
    "guardrail_checks": {"decision"},
    "guardrail_evaluations": {"guardrail_name", "status"},
    "guardrail_findings": {"category"},
    "guardrail_scan_seconds": set(),
    "guardrail_queue_wait_seconds": set(),
    "guardrail_spend_log_queue_depth": set(),
    "guardrail_spend_log_rows": {"result"},
    "guardrail_registry_generation": set(),
    "guardrail_registry_reload_failures": set(),
    "guardrail_metrics_label_values": {"label"},
}


def series_count(metrics: Metrics) -> int:
    return sum(len(family.samples) for family in metrics.registry.collect())


def record_with(names: list[str], category: str = "credential") -> CallRecord:
    return CallRecord(
        request_id="r",
        method="Check",
        call_type="check",
        start_time=0.0,
        start_ns=0,
        decision=Decision.BLOCK,
        scan_ns=5_000,
        outcomes=[
            GuardrailOutcome(n, 1, GuardrailStatus.INTERVENED, Action.BLOCK, 1)
            for n in names
        ],
        findings=[
            Finding(n, "rule", category, Severity.HIGH, Action.BLOCK, "text", 0, 3)
            for n in names
        ],
    )


def test_label_names_are_exactly_the_allowlisted_ones():
    """Every metric is declared once with its fixed label set and nothing else."""
    metrics = Metrics()

    declared = {
        family.name: {
            label
            for sample in family.samples
            for label in sample.labels
            if label not in ("le",)
        }
        for family in metrics.registry.collect()
    }
    assert set(declared) == set(ALLOWED_LABELS)
    for name, labels in declared.items():
        assert labels <= ALLOWED_LABELS[name], name


def test_every_guardrail_service_method_is_pre_created():
    """Each GuardrailService method has its series before any call, for every code."""
    metrics = Metrics()
    service = guardrail_pb2.DESCRIPTOR.services_by_name["GuardrailService"]

    for method in service_methods():
        labels = {
            "grpc_type": method.grpc_type,
            "grpc_service": service.full_name,
            "grpc_method": method.name,
        }
        registry = metrics.registry
        assert registry.get_sample_value("grpc_server_started_total", labels) == 0
        for code in GRPC_CODES:
            sample = registry.get_sample_value(
                "grpc_server_handled_total", {**labels, "grpc_code": code}
            )
            assert sample == 0
    assert {m.name for m in service_methods()} == {m.name for m in service.methods}


def test_ten_thousand_unknown_guardrail_names_add_no_series():
    """Names never registered count as 'other' and never become label values."""
    metrics = Metrics()
    metrics.allow_guardrails(["secrets"])
    metrics.allow_categories(["credential"])
    metrics.observe_call(record_with(["secrets"]))
    before = series_count(metrics)

    for i in range(10_000):
        metrics.observe_call(record_with([f"caller-made-{i}"], category=f"cat-{i}"))

    other = metrics.registry.get_sample_value(
        "guardrail_evaluations_total",
        {"guardrail_name": "other", "status": "intervened"},
    )
    assert series_count(metrics) == before
    assert other == 10_000


def test_registered_guardrail_names_are_capped():
    """Past the cap, registered names share the overflow label too."""
    metrics = Metrics()
    metrics.allow_guardrails(f"g{i}" for i in range(MAX_GUARDRAIL_LABELS + 10))

    metrics.observe_call(record_with([f"g{MAX_GUARDRAIL_LABELS + 5}", "g0"]))

    sample = metrics.registry.get_sample_value
    labels = {"status": "intervened"}
    assert len(metrics.guardrails) == MAX_GUARDRAIL_LABELS
    assert sample("guardrail_evaluations_total", {**labels, "guardrail_name": "g0"}) == 1
    assert sample("guardrail_evaluations_total", {**labels, "guardrail_name": "other"}) == 1


def test_call_outcome_counts_decision_findings_and_scan_time():
    """A finished call counts its decision, findings by category and scan time."""
    metrics = Metrics()
    metrics.allow_categories(["credential"])

    metrics.observe_call(record_with(["a", "b"]))

    sample = metrics.registry.get_sample_value
    assert sample("guardrail_checks_total", {"decision": "BLOCK"}) == 1
    assert sample("guardrail_findings_total", {"category": "credential"}) == 2
    assert sample("guardrail_scan_seconds_count") == 1


def test_unknown_methods_share_one_series_per_type():
    """Calls to methods outside the service descriptor are labelled 'unknown'."""
    metrics = Metrics()

    first = metrics.for_method("/x.Y/Z", "unary")
    second = metrics.for_method("/x.Y/W", "unary")

    assert first is second


@pytest.mark.parametrize("enabled", [True, False])
def test_metrics_server_serves_the_dedicated_registry(enabled):
    """Metrics.start serves /metrics on the configured port (0: any) when enabled."""
    settings = load_settings(metrics_port=0, metrics_enabled=enabled)
    metrics = Metrics.start(settings)
    try:
        if not enabled:
            assert metrics.port == 0
            return
        url = f"http://127.0.0.1:{metrics.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    finally:
        metrics.stop()

    assert "grpc_server_handled_total" in body
    assert "python_gc_objects_collected_total" not in body  # not the global registry
