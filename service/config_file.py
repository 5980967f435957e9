"""``GUARDRAIL_CONFIG``: guardrail definitions declared in a YAML or JSON file.

The file holds ``guardrails:``, a list of definitions in pack-file form (the
fields of the proto ``Guardrail``: name, description, action, directions,
default_on, fail_mode, score_threshold, rules) plus an optional ``disabled:
true``; a bare list works too. Each is checked exactly as Register checks
it (``service.definition_checks``). At start-up the file's definitions are
stored with source ``config``: changed ones get a new version, ones removed
from the file are deleted, unchanged ones are left alone; a definition with
a built-in's name overrides the built-in. Definitions registered through the
API under other names are untouched. An invalid file stops start-up.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from service.api.convert import spec_to_pb
from service.definition_checks import check_definition
from service.engine.pack import PACKS_DIR
from service.errors import FieldViolation, SettingsError
from service.registry_changes import PublishState, StoredRegistry, storable
from service.settings import Settings
from service.store.registry_store import Put, open_registry_store

__all__ = ["ConfigProblem", "builtin_version", "check_config", "load_config", "open_stored_registry"]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    where: str  # "guardrails[2] (orders)" or "" for the whole file
    violation: FieldViolation

    def __str__(self) -> str:
        field = f"{self.violation.field}: " if self.violation.field else ""
        where = f"{self.where}: " if self.where else ""
        return f"{where}{field}{self.violation.description}"


def _read(path: Path) -> tuple[list[Any], list[ConfigProblem]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [], [ConfigProblem("", FieldViolation("", f"cannot read {path}: {exc}"))]
    if isinstance(data, Mapping):
        unknown = [k for k in data if k != "guardrails"]
        problems = [
            ConfigProblem("", FieldViolation(str(k), f"unknown key {str(k)!r}")) for k in unknown
        ]
        data = data.get("guardrails")
    else:
        problems = []
    if not isinstance(data, list):
        problem = FieldViolation("guardrails", "must be a list of guardrail definitions")
        return [], [*problems, ConfigProblem("", problem)]
    return data, problems


def check_config(path: Path) -> tuple[list[Put], list[ConfigProblem]]:
    """Every definition of the file, ready to store, and every problem found."""
    items, problems = _read(path)
    puts: list[Put] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"guardrails[{index}]"
        if not isinstance(item, Mapping):
            problems.append(ConfigProblem(where, FieldViolation("", "must be a mapping")))
            continue
        definition = dict(item)
        name = definition.get("name")
        if isinstance(name, str) and name:
            where = f"{where} ({name})"
        disabled = definition.pop("disabled", False)
        if not isinstance(disabled, bool):
            problems.append(
                ConfigProblem(where, FieldViolation("disabled", "must be true or false"))
            )
        spec, violations = check_definition(definition)
        problems.extend(ConfigProblem(where, v) for v in violations)
        if isinstance(name, str) and name in first_seen:
            again = FieldViolation("name", f"already defined by guardrails[{first_seen[name]}]")
            problems.append(ConfigProblem(where, again))
            continue
        if isinstance(name, str):
            first_seen[name] = index
        if spec is not None and not violations and isinstance(disabled, bool):
            guardrail = spec_to_pb(spec)
            guardrail.disabled = disabled
            puts.append(Put(spec.name, storable(guardrail), disabled))
    return puts, problems


def load_config(path: Path) -> list[Put]:
    """The file's definitions; SettingsError listing every problem if any."""
    puts, problems = check_config(path)
    if problems:
        listed = "; ".join(str(p) for p in problems)
        raise SettingsError(f"GUARDRAIL_CONFIG={path}: {len(problems)} problem(s): {listed}")
    return puts


@functools.cache
def _builtin_versions() -> Mapping[str, int]:
    # Read, not compiled: the supervisor needs only the numbers.
    versions = {}
    for path in sorted(PACKS_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, Mapping) and isinstance(data.get("name"), str):
            version = data.get("version", 1)
            versions[data["name"]] = version if isinstance(version, int) else 1
    return versions


def builtin_version(name: str) -> int:
    """The version of the built-in called ``name``; 0 when there is none."""
    return _builtin_versions().get(name, 0)


async def open_stored_registry(settings: Settings, publish: PublishState) -> StoredRegistry:
    """Open the registry tables, apply ``GUARDRAIL_CONFIG``, publish the state."""
    config = load_config(settings.config_path) if settings.config_path else None
    store = open_registry_store(settings.database_url.get_secret_value())
    stored = StoredRegistry(store, publish, builtin_version)
    try:
        await stored.start(config)
    except Exception as exc:
        await store.close()
        from service.store.errors import StoreError

        if isinstance(exc, StoreError):
            raise SettingsError(
                f"the registry database is unavailable at start-up ({exc.reason})"
            ) from exc
        raise
    return stored
