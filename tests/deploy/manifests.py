"""Loads the deployment files once, for the tests beside this module.

Ports, uid and version come from the code (Settings defaults, pyproject) so a
change there shows up here as a failing manifest, not as a second copy.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from service.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose"


def default(field: str) -> Any:
    """A setting's default, as the service would use it with no environment."""
    return Settings.model_fields[field].get_default(call_default_factory=True)


GRPC_PORT: int = default("port")
METRICS_PORT: int = default("metrics_port")


@cache
def project_version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def setting_field(env_name: str) -> str | None:
    """``GUARDRAIL_FOO_BAR`` -> ``foo_bar`` if that is a real setting, else None."""
    if not env_name.startswith(ENV_PREFIX):
        return None
    field = env_name.removeprefix(ENV_PREFIX).lower()
    return field if field in Settings.model_fields else None


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"})


@cache
def kubernetes_objects() -> tuple[dict[str, Any], ...]:
    objects: list[dict[str, Any]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objects.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return tuple(objects)


def one(kind: str) -> dict[str, Any]:
    found = [o for o in kubernetes_objects() if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def mapping(value: Any) -> dict[str, Any]:
    """``value`` checked to be a YAML mapping."""
    assert isinstance(value, dict), f"expected a mapping, got {type(value).__name__}"
    return value


@cache
def kustomization() -> dict[str, Any]:
    return mapping(yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text()))


@cache
def compose() -> dict[str, Any]:
    return mapping(yaml.safe_load((COMPOSE / "compose.yaml").read_text()))


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None (shell form)."""
        text = self.argument.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


@cache
def dockerfile() -> tuple[Instruction, ...]:
    """Instructions of the Dockerfile, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, argument = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), argument.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return tuple(instructions)


def final_stage() -> list[Instruction]:
    instructions = list(dockerfile())
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def dockerfile_env() -> dict[str, str]:
    """ENV of the final stage (``ENV A=1 B=2`` form)."""
    env: dict[str, str] = {}
    for ins in final_stage():
        if ins.keyword == "ENV":
            for word in shlex.split(ins.argument):
                name, _, value = word.partition("=")
                env[name] = value
    return env
