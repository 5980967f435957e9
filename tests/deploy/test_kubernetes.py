"""deploy/kubernetes: the Deployment can run the image the Dockerfile builds."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from service.app import GRACE_SECONDS
from service.auth.keys import load_keys
from tests.deploy.manifests import (
    GRPC_PORT,
    KUBERNETES,
    METRICS_PORT,
    default,
    dockerfile_env,
    final_stage,
    kubernetes_objects,
    kustomization,
    mapping,
    one,
    project_version,
)

QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}


def _bytes(quantity: str) -> int:
    for suffix, factor in QUANTITY.items():
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(quantity)


def _cpu(quantity: str) -> float:
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _pod() -> dict[str, Any]:
    return mapping(one("Deployment")["spec"]["template"])


def _container() -> dict[str, Any]:
    containers = _pod()["spec"]["containers"]
    assert len(containers) == 1
    return mapping(containers[0])


def _config() -> dict[str, str]:
    return dict(one("ConfigMap")["data"])


def _secret(name: str) -> dict[str, Any]:
    (found,) = [
        o
        for o in kubernetes_objects()
        if o["kind"] == "Secret" and o["metadata"]["name"] == name
    ]
    return found


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_kustomization_lists_every_manifest_and_nothing_else() -> None:
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization()["resources"]) == on_disk


def test_the_required_kinds_are_present() -> None:
    kinds = {o["kind"] for o in kubernetes_objects()}
    required = {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    assert required | {"ConfigMap", "Secret"} <= kinds


def test_image_matches_the_kustomize_image_and_the_project_version() -> None:
    image = _container()["image"]
    name, _, tag = image.rpartition(":")
    (entry,) = kustomization()["images"]
    assert entry["name"] == name
    assert tag == entry["newTag"] == project_version()


def test_container_ports_are_the_settings_defaults() -> None:
    ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
    config = _config()
    assert int(config.get("GUARDRAIL_PORT", GRPC_PORT)) == GRPC_PORT
    assert int(config.get("GUARDRAIL_METRICS_PORT", METRICS_PORT)) == METRICS_PORT


@pytest.mark.parametrize("probe", ["startupProbe", "readinessProbe", "livenessProbe"])
def test_probes_use_native_grpc_health_on_the_grpc_port(probe: str) -> None:
    spec = _container()[probe]
    assert spec["grpc"]["port"] == GRPC_PORT  # grpc probes take a number only
    assert spec.get("grpc", {}).get("service", "") == ""  # the server's overall status
    assert spec["timeoutSeconds"] >= 1 and spec["periodSeconds"] >= 1


def test_readiness_notices_draining_within_the_drain_delay() -> None:
    readiness = _container()["readinessProbe"]
    drain = float(_config()["GUARDRAIL_DRAIN_DELAY_S"])
    assert drain > 0, "without a drain delay the port closes before endpoints update"
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < drain


def test_grace_period_outlasts_drain_calls_and_the_last_flush() -> None:
    config = _config()
    drain = float(config.get("GUARDRAIL_DRAIN_DELAY_S", default("drain_delay_s")))
    write = float(
        config.get(
            "GUARDRAIL_SPEND_LOG_WRITE_TIMEOUT_S", default("spend_log_write_timeout_s")
        )
    )
    grace = one("Deployment")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace > drain + GRACE_SECONDS + write
    # The supervisor kills workers still alive 30 s after SIGTERM (service/workers.py).
    assert grace > 30


def test_resources_are_sized_for_the_configured_workers() -> None:
    workers = int(_config()["GUARDRAIL_WORKERS"])
    resources = _container()["resources"]
    for part in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[part]), part
    assert _cpu(resources["requests"]["cpu"]) >= workers / 2
    assert _cpu(resources["limits"]["cpu"]) >= workers
    # ~140 MiB per worker plus the supervisor, measured idle; leave headroom.
    assert _bytes(resources["requests"]["memory"]) >= (workers * 160 + 80) * 2**20
    assert _bytes(resources["limits"]["memory"]) >= _bytes(
        resources["requests"]["memory"]
    )


def test_runs_as_the_images_non_root_user_with_a_read_only_root() -> None:
    (user,) = [i.argument for i in final_stage() if i.keyword == "USER"]
    uid = int(user.split(":")[0])
    pod = _pod()["spec"]["securityContext"]
    container = _container()["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid != 0
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert _pod()["spec"]["automountServiceAccountToken"] is False


def test_writable_paths_are_empty_dirs_and_the_journal_fits_its_volume() -> None:
    volumes = {v["name"]: v for v in _pod()["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container()["volumeMounts"]}
    journal = _config()["GUARDRAIL_SPEND_LOG_JOURNAL_PATH"]
    assert journal == dockerfile_env()["GUARDRAIL_SPEND_LOG_JOURNAL_PATH"]
    assert journal in mounts and "/tmp" in mounts  # /tmp: supervisor socket and metrics
    for mount in _container()["volumeMounts"]:
        if not mount.get("readOnly", False):
            assert "emptyDir" in volumes[mount["name"]], mount["name"]
    size = _bytes(volumes[mounts[journal]]["emptyDir"]["sizeLimit"])
    quota = int(_config()["GUARDRAIL_SPEND_LOG_JOURNAL_MAX_BYTES"])
    assert quota < size, (
        "past the sizeLimit the pod is evicted instead of rows being dropped"
    )
    limit = _bytes(_container()["resources"]["limits"]["ephemeral-storage"])
    assert size <= limit


def test_env_comes_from_the_configmap_and_the_secret() -> None:
    refs = _container()["envFrom"]
    assert {r["configMapRef"]["name"] for r in refs if "configMapRef" in r} == {
        one("ConfigMap")["metadata"]["name"]
    }
    (secret,) = [r["secretRef"]["name"] for r in refs if "secretRef" in r]
    assert "GUARDRAIL_DATABASE_URL" in _secret(secret)["stringData"]


def test_the_api_keys_file_is_a_mounted_secret_the_service_can_load(
    tmp_path: Path,
) -> None:
    path = PurePosixPath(_config()["GUARDRAIL_API_KEYS_FILE"])
    mounts = {m["mountPath"]: m for m in _container()["volumeMounts"]}
    mount = mounts[str(path.parent)]
    assert mount["readOnly"] is True
    volumes = {v["name"]: v for v in _pod()["spec"]["volumes"]}
    secret = _secret(volumes[mount["name"]]["secret"]["secretName"])
    local = tmp_path / path.name
    local.write_text(secret["stringData"][path.name])
    keys = load_keys(local)
    assert len(keys) >= 1


def test_selectors_match_the_pod_labels() -> None:
    labels = _pod()["metadata"]["labels"]
    deployment = one("Deployment")
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert _matches(one("Service")["spec"]["selector"], labels)
    assert _matches(
        one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels
    )
    assert _matches(one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"], labels)
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        deployment["metadata"]["name"],
    )


def test_service_ports_reach_the_container_ports() -> None:
    container_ports = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    ports = {p["name"]: p for p in one("Service")["spec"]["ports"]}
    assert ports["grpc"]["port"] == GRPC_PORT and ports["grpc"]["appProtocol"] == "grpc"
    assert ports["metrics"]["port"] == METRICS_PORT
    for port in ports.values():
        assert port["targetPort"] in container_ports
    assert one("Service")["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_network_policy_opens_only_the_two_ports() -> None:
    ports = {
        p["port"]
        for rule in one("NetworkPolicy")["spec"]["ingress"]
        for p in rule["ports"]
    }
    assert ports == {GRPC_PORT, METRICS_PORT}


def test_autoscaler_and_disruption_budget_keep_one_pod_serving() -> None:
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] >= hpa["minReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    pdb = one("PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable", 0) < hpa["minReplicas"]
    strategy = one("Deployment")["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_renders_the_whole_set() -> None:
    done = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    namespace = kustomization()["namespace"]
    assert len(rendered) == len(kubernetes_objects())
    for obj in rendered:
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == namespace, obj["kind"]
