"""Read guardrail definitions (pack files, Register payloads) into specs.

Stage one of two: shapes and types only, every problem collected before
raising. Stage two (``compiler.compile_guardrail``) checks what a definition
means: names, patterns, validators and the samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TypeVar

import yaml

from service.errors import FieldViolation, GuardrailDefinitionError
from service.types import (
    Action,
    Direction,
    FailMode,
    GuardrailMode,
    GuardrailSpec,
    RuleSpec,
    Severity,
)

__all__ = ["builtin_specs", "load_pack_file", "spec_from_mapping"]

PACKS_DIR = Path(__file__).with_name("packs")

_GUARDRAIL_KEYS = frozenset(
    {
        "name", "description", "action", "directions", "default_on", "fail_mode",
        "score_threshold", "version", "rules", "mode",
    }
)  # fmt: skip
_RULE_KEYS = frozenset(
    {
        "id", "category", "severity", "pattern", "keywords",
        "keywords_match_substrings", "prefilter", "validator", "must_match",
        "must_not_match", "mask_label", "weight", "ignore_case", "match_on",
    }
)  # fmt: skip

_E = TypeVar("_E", bound=Enum)
_T = TypeVar("_T")


class _Reader:
    """Typed access to one mapping; problems go to a shared list."""

    def __init__(
        self, data: Mapping[str, object], prefix: str, problems: list[FieldViolation]
    ) -> None:
        self.data = data
        self.prefix = prefix
        self.problems = problems

    def field(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, description: str) -> None:
        self.problems.append(FieldViolation(self.field(key), description))

    def reject_unknown(self, allowed: frozenset[str]) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail(str(key), f"unknown key {str(key)!r}")

    def typed(self, key: str, kind: type[_T], default: _T, label: str) -> _T:
        value = self.data.get(key, default)
        if value is None:
            return default
        # bool is an int in Python; a YAML "yes" must not pass for a number.
        is_bool_as_number = kind is not bool and isinstance(value, bool)
        if isinstance(value, kind) and not is_bool_as_number:
            return value
        self.fail(key, f"must be {label}, got {type(value).__name__}")
        return default

    def text(self, key: str, default: str = "") -> str:
        return self.typed(key, str, default, "a string")

    def flag(self, key: str, default: bool = False) -> bool:
        return self.typed(key, bool, default, "true or false")

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
        self.fail(key, f"must be a finite number, got {value!r}")
        return default

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(key, f"must be a list of strings, got {type(value).__name__}")
            return ()
        good = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                good.append(item)
            else:
                self.fail(f"{key}[{index}]", f"must be a string, got {item!r}")
        return tuple(good)

    def choice(self, key: str, kind: type[_E], default: _E | None) -> _E | None:
        value = self.data.get(key)
        if value is None:
            if default is None:
                self.fail(key, "is required")
            return default
        return _enum_value(kind, value, self.field(key), self.problems) or default


def _enum_value(
    kind: type[_E], value: object, field: str, problems: list[FieldViolation]
) -> _E | None:
    for member in kind:
        if member.value == value:
            return member
    allowed = ", ".join(str(member.value) for member in kind)
    problems.append(FieldViolation(field, f"must be one of {allowed}, got {value!r}"))
    return None


def _directions(reader: _Reader) -> frozenset[Direction]:
    values = reader.strings("directions")
    found = set()
    for index, value in enumerate(values):
        member = _enum_value(
            Direction, value, reader.field(f"directions[{index}]"), reader.problems
        )
        if member is not None:
            found.add(member)
    return frozenset(found)


def _rule(data: object, index: int, problems: list[FieldViolation]) -> RuleSpec | None:
    prefix = f"rules[{index}]"
    if not isinstance(data, Mapping):
        problems.append(FieldViolation(prefix, "must be a mapping"))
        return None
    read = _Reader(data, prefix + ".", problems)
    read.reject_unknown(_RULE_KEYS)

    return RuleSpec(
        id=read.text("id"),
        category=read.text("category"),
        severity=read.choice("severity", Severity, Severity.MEDIUM) or Severity.MEDIUM,
        pattern=read.text("pattern"),
        keywords=read.strings("keywords"),
        keywords_match_substrings=read.flag("keywords_match_substrings"),
        prefilter=read.strings("prefilter"),
        validator=read.text("validator"),
        must_match=read.strings("must_match"),
        must_not_match=read.strings("must_not_match"),
        mask_label=read.text("mask_label"),
        weight=read.number("weight", 1.0),
        ignore_case=read.flag("ignore_case"),
        match_on=read.text("match_on", "normalized") or "normalized",
    )


def _rules(reader: _Reader) -> tuple[RuleSpec, ...]:
    value = reader.data.get("rules")
    if value is None:
        reader.fail("rules", "is required")
        return ()
    if not isinstance(value, list):
        reader.fail("rules", f"must be a list, got {type(value).__name__}")
        return ()
    parsed = (_rule(item, i, reader.problems) for i, item in enumerate(value))
    return tuple(rule for rule in parsed if rule is not None)


def spec_from_mapping(
    data: Mapping[str, object], *, builtin: bool = False
) -> GuardrailSpec:
    """Parse one definition; raise GuardrailDefinitionError listing every problem."""
    problems: list[FieldViolation] = []
    read = _Reader(data, "", problems)
    read.reject_unknown(_GUARDRAIL_KEYS)
    name = read.text("name")
    if "name" not in data:
        read.fail("name", "is required")
    spec = GuardrailSpec(
        name=name,
        rules=_rules(read),
        action=read.choice("action", Action, None) or Action.BLOCK,
        description=read.text("description"),
        directions=_directions(read),
        default_on=read.flag("default_on"),
        fail_mode=read.choice("fail_mode", FailMode, FailMode.CLOSED)
        or FailMode.CLOSED,
        score_threshold=read.number("score_threshold", 0.0),
        version=read.typed("version", int, 1, "an integer"),
        builtin=builtin,
        mode=read.choice("mode", GuardrailMode, GuardrailMode.ENFORCE) or GuardrailMode.ENFORCE,
    )
    if problems:
        raise GuardrailDefinitionError(name, problems)

    return spec


def _with_file_name(
    path: Path, error: GuardrailDefinitionError
) -> GuardrailDefinitionError:
    # Operators read these at start-up: the file comes first, as in
    # "pii.yaml: guardrail 'pii' is invalid: rules[2].pattern: ...".
    renamed = GuardrailDefinitionError(error.name, error.violations)
    renamed.message = f"{path.name}: {renamed.message}"
    renamed.args = (renamed.message,)
    return renamed


def _read_yaml(path: Path) -> Mapping[str, object]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = FieldViolation("", f"cannot read pack file: {exc}")
        raise GuardrailDefinitionError(path.stem, [problem]) from exc
    if not isinstance(data, Mapping):
        problem = FieldViolation("", "a pack file must hold one mapping")
        raise GuardrailDefinitionError(path.stem, [problem])
    return data


def load_pack_file(path: Path, *, builtin: bool = False) -> GuardrailSpec:
    """Parse and fully validate (compile, samples) one pack file."""
    from service.engine.compiler import compile_guardrail  # compiler imports us

    try:
        spec = spec_from_mapping(_read_yaml(path), builtin=builtin)
        compile_guardrail(spec)
    except GuardrailDefinitionError as exc:
        raise _with_file_name(path, exc) from exc

    return spec


@functools.cache
def _builtin_specs() -> tuple[GuardrailSpec, ...]:
    paths = sorted(PACKS_DIR.glob("*.yaml"))
    return tuple(load_pack_file(path, builtin=True) for path in paths)


def builtin_specs() -> list[GuardrailSpec]:
    """The guardrails shipped in ``service/engine/packs`` (validated once)."""
    return list(_builtin_specs())

