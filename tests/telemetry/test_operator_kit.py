"""The dashboard and alert rules only name metrics the service exports."""

from __future__ import annotations

import json
import shutil
import string
import subprocess
from pathlib import Path

import yaml

from service.telemetry.metrics import Metrics

KIT = Path(__file__).resolve().parents[2] / "deploy" / "observability"
_IDENTIFIER = set(string.ascii_letters + string.digits + "_")
# A label and the name-regex prefixes of the cardinality panel, not metrics.
NOT_METRICS = {"guardrail_name", "grpc_server_", "guardrail_"}


def metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name our metrics."""
    cleaned = "".join(c if c in _IDENTIFIER else " " for c in expr)
    words = set(cleaned.split()) - NOT_METRICS
    return {w for w in words if w.startswith(("grpc_server_", "guardrail_"))}


def exported_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def alert_rules() -> list[dict]:
    document = yaml.safe_load((KIT / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((KIT / "dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_alert_rules_are_complete_and_name_exported_metrics():
    """Each rule has a name, expression, severity and summary over real metrics."""
    exported = exported_names()
    rules = alert_rules()

    names = {rule["alert"] for rule in rules}
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket", "info"}
        assert rule["annotations"]["summary"]
        assert metric_names(rule["expr"]) and metric_names(rule["expr"]) <= exported
    assert {
        "GuardrailServerErrorRatioHigh", "GuardrailCheckLatencyP99High",
        "GuardrailFailedOpenRateHigh", "GuardrailSpendLogRowsDropped",
        "GuardrailRegistryReloadFailures",
    } <= names  # fmt: skip


def test_dashboard_queries_name_exported_metrics():
    """Every dashboard query reads metrics the service declares."""
    exported = exported_names()

    for expr in dashboard_exprs():
        assert metric_names(expr) <= exported, expr
    assert len(dashboard_exprs()) >= 13


def test_promtool_accepts_the_rules():
    """promtool (Debian package prometheus), when installed, accepts the rule file."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return  # the YAML checks above still ran
    result = subprocess.run(
        [promtool, "check", "rules", str(KIT / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
