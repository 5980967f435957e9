"""deploy/compose: the local stack's files exist and its services agree on ports and names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import (
    COMPOSE,
    DEPLOY,
    GRPC_PORT,
    METRICS_PORT,
    ROOT,
    compose,
    project_version,
)

REQUIRED = {"guardrail", "postgres", "envoy", "otel-collector", "prometheus", "grafana"}


def _services() -> dict[str, Any]:
    return dict(compose()["services"])


def _bind_mounts() -> list[tuple[str, Path, str]]:
    mounts = []
    for name, spec in _services().items():
        for volume in spec.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                mounts.append((name, (COMPOSE / source).resolve(), target))
    return mounts


def _mount_source(service: str, target: str) -> Path:
    for name, source, mounted in _bind_mounts():
        if name == service and mounted == target:
            return source
    raise AssertionError(f"{service} mounts nothing at {target}")


def test_the_stack_has_every_part() -> None:
    assert REQUIRED <= set(_services())


@pytest.mark.parametrize("mount", _bind_mounts(), ids=lambda m: f"{m[0]}:{m[2]}")
def test_bind_mounted_files_exist(mount: tuple[str, Path, str]) -> None:
    _, source, _ = mount
    assert source.exists(), source
    assert source.is_relative_to(ROOT), "the stack uses only files from this checkout"


def test_the_service_builds_from_this_checkout_with_the_project_version() -> None:
    spec = _services()["guardrail"]
    context = (COMPOSE / spec["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / spec["build"]["dockerfile"]).is_file()
    assert spec["image"] == f"guardrail-service:{project_version()}"
    env = spec["environment"]
    assert env["GUARDRAIL_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["GUARDRAIL_DATABASE_URL"]
    assert spec["ports"] == [f"127.0.0.1:{GRPC_PORT}:{GRPC_PORT}"]
    assert int(env.get("GUARDRAIL_PORT", GRPC_PORT)) == GRPC_PORT
    assert int(env.get("GUARDRAIL_METRICS_PORT", METRICS_PORT)) == METRICS_PORT
    assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"]


def test_depends_on_names_real_services() -> None:
    services = _services()
    for name, spec in services.items():
        for dependency in spec.get("depends_on", []):
            assert dependency in services, f"{name} -> {dependency}"


def test_host_ports_bind_to_loopback_only() -> None:
    for name, spec in _services().items():
        for port in spec.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_envoy_uses_the_shared_config_and_reaches_the_service() -> None:
    source = _mount_source("envoy", "/etc/envoy/envoy.yaml")
    assert source == DEPLOY / "envoy" / "envoy.yaml"
    config = yaml.safe_load(source.read_text())
    (cluster,) = [
        c for c in config["static_resources"]["clusters"] if c["name"] == "guardrail"
    ]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert address["address"] == "guardrail" and address["port_value"] == GRPC_PORT


def test_prometheus_scrapes_the_metrics_port_and_loads_the_alert_rules() -> None:
    config = yaml.safe_load(
        _mount_source("prometheus", "/etc/prometheus/prometheus.yml").read_text()
    )
    targets = {
        t
        for job in config["scrape_configs"]
        for s in job["static_configs"]
        for t in s["targets"]
    }
    assert f"guardrail:{METRICS_PORT}" in targets
    for rule_file in config["rule_files"]:
        source = _mount_source("prometheus", rule_file)
        assert source == DEPLOY / "observability" / "alerts.yml"
        assert yaml.safe_load(source.read_text())["groups"]


def test_traces_go_to_the_collectors_otlp_receiver() -> None:
    endpoint = _services()["guardrail"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    config = yaml.safe_load(
        _mount_source("otel-collector", "/etc/otelcol/config.yaml").read_text()
    )
    receiver = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert endpoint == "http://otel-collector:" + receiver.rpartition(":")[2]
    assert "otlp" in config["service"]["pipelines"]["traces"]["receivers"]


def test_grafana_provisions_the_datasource_and_the_dashboard() -> None:
    provisioning = "/etc/grafana/provisioning"
    datasources = _mount_source("grafana", f"{provisioning}/datasources")
    (source,) = yaml.safe_load((datasources / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = _mount_source("grafana", f"{provisioning}/dashboards")
    (provider,) = yaml.safe_load((providers / "guardrail.yaml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboard = _mount_source("grafana", f"{folder}/dashboard.json")
    assert dashboard == DEPLOY / "observability" / "dashboard.json"
