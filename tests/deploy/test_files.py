"""Every deployment file parses, and every GUARDRAIL_* name in them is a real setting."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.settings import ENV_PREFIX, load_settings
from tests.deploy.manifests import (
    COMPOSE,
    DEPLOY,
    KUBERNETES,
    ROOT,
    compose,
    dockerfile_env,
    kubernetes_objects,
    setting_field,
    yaml_files,
)


def test_the_deploy_tree_has_what_the_issue_asks_for() -> None:
    names = {p.name for p in yaml_files()}
    assert {
        "compose.yaml",
        "kustomization.yaml",
        "deployment.yaml",
        "envoy.yaml",
    } <= names


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents, f"{path} is empty"
    assert all(isinstance(d, dict) for d in documents)


def test_grafana_dashboard_is_json() -> None:
    dashboard = json.loads((DEPLOY / "observability" / "dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]


def _env_sources() -> dict[str, dict[str, str]]:
    """Every place that sets environment variables, by a readable name."""
    sources: dict[str, dict[str, str]] = {"Dockerfile": dockerfile_env()}
    for obj in kubernetes_objects():
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "ConfigMap":
            sources[name] = dict(obj["data"])
        elif obj["kind"] == "Secret":
            sources[name] = dict(obj.get("stringData", {}))
        elif obj["kind"] == "Deployment":
            for container in obj["spec"]["template"]["spec"]["containers"]:
                env = {
                    e["name"]: str(e.get("value", "")) for e in container.get("env", [])
                }
                sources[f"{name}/{container['name']}"] = env
    for service, spec in compose()["services"].items():
        env = spec.get("environment", {})
        assert isinstance(env, dict), (
            f"compose {service}: use the mapping form of environment"
        )
        sources[f"compose/{service}"] = {k: str(v) for k, v in env.items()}
    return sources


def test_every_guardrail_variable_is_a_real_setting() -> None:
    unknown = [
        f"{source}: {name}"
        for source, env in _env_sources().items()
        for name in env
        if name.startswith(ENV_PREFIX) and setting_field(name) is None
    ]
    assert unknown == [], "not fields of service.settings.Settings: " + ", ".join(
        unknown
    )


@pytest.mark.parametrize("source", sorted(_env_sources()))
def test_the_values_are_valid_settings(source: str) -> None:
    # The service itself validates them: a value it would reject at start-up
    # fails here instead of in a crash-looping pod.
    env = _env_sources()[source]
    overrides: dict[str, Any] = {}
    for name, value in env.items():
        field = setting_field(name)
        if field is not None:
            overrides[field] = value
    load_settings(**overrides)


def test_the_database_url_is_a_secret_in_kubernetes() -> None:
    for obj in kubernetes_objects():
        if obj["kind"] == "ConfigMap":
            assert "GUARDRAIL_DATABASE_URL" not in obj["data"]
    secrets = [o for o in kubernetes_objects() if o["kind"] == "Secret"]
    assert any("GUARDRAIL_DATABASE_URL" in s.get("stringData", {}) for s in secrets)


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "tests", "*.db"} <= ignored


def test_security_md_has_its_parts_and_names_only_real_settings() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    for heading in (
        "## Reporting a vulnerability",
        "## Threat model",
        "### What the service defends against",
        "### What it does NOT defend against",
        "## Hardening checklist",
    ):
        assert heading in text, heading
    names = set(re.findall(r"GUARDRAIL_[A-Z0-9_]+", text))
    assert names, "the checklist names the settings it means"
    assert sorted(n for n in names if setting_field(n) is None) == []


def test_comments_in_our_deploy_files_name_only_real_settings() -> None:
    paths = [ROOT / "Dockerfile", *KUBERNETES.rglob("*.yaml"), *COMPOSE.rglob("*.yaml")]
    unknown = {
        f"{path.name}: {name}"
        for path in paths
        for name in re.findall(r"GUARDRAIL_[A-Z0-9_]+", path.read_text())
        if setting_field(name) is None
    }
    assert sorted(unknown) == []
