"""Read the ghz configs in ``loadtest/ghz`` into something our driver can send.

A config names a method (``call``) and a body (``data`` or ``data-file``); the
body is parsed with protobuf's ``json_format`` into the method's request
message, as ghz parses it with protojson. For unary calls a list body is used
round-robin, one element per call; for streaming calls the list is the stream.
Paths in the configs are relative to the repository root, like ghz run there.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from guardrail.v1 import guardrail_pb2 as pb

__all__ = [
    "GHZ_DIR",
    "REPO_ROOT",
    "REQUIRED_KEYS",
    "Scenario",
    "find_method",
    "load_body",
    "load_scenario",
    "parse_go_duration",
    "render_metadata",
    "scenario_names",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
GHZ_DIR = REPO_ROOT / "loadtest" / "ghz"
REQUIRED_KEYS = frozenset(
    {"proto", "import-paths", "call", "concurrency", "insecure", "host"}
)
_SERVICE = pb.DESCRIPTOR.services_by_name["GuardrailService"]
_DURATION_PART = re2.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


@dataclass(frozen=True)
class Scenario:
    """One ghz config, resolved: the method, its request messages, its limits."""

    name: str
    config: dict[str, Any]
    method: MethodDescriptor
    messages: tuple[Message, ...]
    metadata: dict[str, str]

    @property
    def path(self) -> str:
        """The gRPC path, ``/guardrail.v1.GuardrailService/Check``."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def streaming(self) -> bool:
        return bool(self.method.client_streaming or self.method.server_streaming)

    @property
    def concurrency(self) -> int:
        return int(self.config["concurrency"])

    @property
    def duration_s(self) -> float | None:
        value = self.config.get("duration")
        return parse_go_duration(value) if value else None

    @property
    def total(self) -> int | None:
        value = self.config.get("total")
        return int(value) if value else None

    def bodies(self) -> list[bytes]:
        return [m.SerializeToString() for m in self.messages]


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``10s``, ``1m30s``, ``500ms``."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def find_method(call: str) -> MethodDescriptor:
    """The method a ghz ``call`` names (``pkg.Service.Method`` or ``pkg.Service/Method``)."""
    service, _, method = call.replace("/", ".").rpartition(".")
    if service != _SERVICE.full_name or method not in _SERVICE.methods_by_name:
        raise KeyError(f"{call!r} is not a method of {_SERVICE.full_name}")
    return _SERVICE.methods_by_name[method]


def load_body(config: dict[str, Any], root: Path = REPO_ROOT) -> list[dict[str, Any]]:
    """The config's body as a list of JSON objects (inline ``data`` or ``data-file``)."""
    if "data" in config:
        body = config["data"]
    else:
        body = json.loads((root / config["data-file"]).read_text(encoding="utf-8"))
    return body if isinstance(body, list) else [body]


def render_metadata(
    metadata: dict[str, str], request_number: int
) -> tuple[tuple[str, str], ...]:
    """Fill the ghz template fields we support: RequestNumber and UUID."""
    return tuple(
        (
            key,
            value.replace("{{.RequestNumber}}", str(request_number)).replace(
                "{{.UUID}}", str(uuid.uuid4()) if "{{.UUID}}" in value else ""
            ),
        )
        for key, value in metadata.items()
    )


def scenario_names(ghz_dir: Path = GHZ_DIR) -> list[str]:
    return sorted(p.stem for p in ghz_dir.glob("*.json"))


def load_scenario(name_or_path: str | Path, root: Path = REPO_ROOT) -> Scenario:
    """Load ``loadtest/ghz/NAME.json`` (or a path) and parse its body."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = root / "loadtest" / "ghz" / f"{name_or_path}.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    missing = REQUIRED_KEYS - config.keys()
    if missing:
        raise ValueError(f"{path}: missing keys {sorted(missing)}")
    method = find_method(config["call"])
    request_class = GetMessageClass(method.input_type)
    messages = tuple(
        json_format.ParseDict(item, request_class()) for item in load_body(config, root)
    )
    return Scenario(
        path.stem, config, method, messages, dict(config.get("metadata") or {})
    )
