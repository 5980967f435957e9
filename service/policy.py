"""Policies: which guardrails apply to a call, in which mode and fail mode.

A policy file (``GUARDRAIL_POLICY_FILE``, YAML or JSON) has up to three kinds
of layers, each with the same keys::

    default:              # every call
      add: [name, ...]          # run on calls that name no guardrails
      remove: [name, ...]       # drop from those calls' defaults
      required: [name, ...]     # always run; a request cannot drop them
      allowed: [name, ...]      # the only names a request may list (absent: any)
      modes: {name: enforce|monitor|dry_run}
      fail_modes: {name: open|closed}
    tenants: {tenant-id: {...same keys...}}
    teams:   {team-id:   {...same keys...}}

The caller is the authenticated principal (its team and tenant) when there
is one, else the request's ``caller.team_id`` (a team, never a tenant).

Precedence, applied in this order:

1. Layers: ``default``, then the caller's tenant, then the caller's team;
   later layers win for ``modes``/``fail_modes``; ``required`` accumulates;
   ``allowed`` is the intersection of the layers that set it.
2. Base list: the request's explicit guardrail names when it lists any
   (each must be in ``allowed``, else ``PERMISSION_DENIED``); otherwise the
   registry's default-on guardrails for the direction, plus every layer's
   ``add`` and minus every layer's ``remove``, layer by layer.
3. ``required`` guardrails are appended whatever the request said.
4. Direction: a guardrail that does not apply to the call's direction is
   reported ``NOT_RUN`` with the reason (defaults are already filtered).
5. Mode: policy override > the guardrail's own mode > enforce. Fail mode:
   policy override > the guardrail's own fail mode.

Every name, in a request or in the policy, must exist in the registry at
call time: an unknown one is ``NOT_FOUND``, never skipped. The file is
validated at start-up (shape, values, and names against the registry then in
force); a bad file stops start-up with every problem listed.
Known shortcoming: the file is read once at start-up (restart to change it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from service.errors import PermissionDeniedError, SettingsError
from service.types import FailMode, GuardrailMode, Principal

__all__ = ["Policy", "PolicyLayer", "Resolution", "load_policy", "parse_policy"]

_LAYER_KEYS = frozenset({"add", "remove", "required", "allowed", "modes", "fail_modes"})
_TOP_KEYS = frozenset({"default", "tenants", "teams"})


@dataclass(frozen=True, slots=True)
class PolicyLayer:
    label: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    allowed: frozenset[str] | None = None
    modes: Mapping[str, GuardrailMode] = field(default_factory=dict)
    fail_modes: Mapping[str, FailMode] = field(default_factory=dict)

    def names(self) -> set[str]:
        allowed = self.allowed or frozenset()
        return {*self.add, *self.remove, *self.required, *allowed, *self.modes, *self.fail_modes}


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of policy resolution for one call (before the registry lookup)."""

    names: list[str]  # in order, unique; explicit or defaults, then required
    explicit: bool
    layers: list[str]
    modes: dict[str, GuardrailMode]
    fail_modes: dict[str, FailMode]


@dataclass(frozen=True, slots=True)
class Policy:
    default: PolicyLayer | None = None
    tenants: Mapping[str, PolicyLayer] = field(default_factory=dict)
    teams: Mapping[str, PolicyLayer] = field(default_factory=dict)

    def layers_for(self, tenant: str, team: str) -> list[PolicyLayer]:
        found = [self.default, self.tenants.get(tenant) if tenant else None]
        found.append(self.teams.get(team) if team else None)
        return [layer for layer in found if layer is not None]

    def names(self) -> set[str]:
        layers = [self.default, *self.tenants.values(), *self.teams.values()]
        return {n for layer in layers if layer is not None for n in layer.names()}

    def resolve(
        self,
        *,
        principal: Principal | None,
        request_team: str,
        explicit: Sequence[str],
        defaults: Iterable[str],
    ) -> Resolution:
        tenant = principal.tenant if principal is not None else ""
        team = principal.team if principal is not None else request_team
        layers = self.layers_for(tenant, team)
        if explicit:
            _check_allowed(layers, explicit)
            names = list(dict.fromkeys(explicit))
        else:
            names = list(defaults)
            for layer in layers:
                names = [n for n in [*names, *layer.add] if n not in layer.remove]
        for layer in layers:
            names.extend(layer.required)
        modes: dict[str, GuardrailMode] = {}
        fail_modes: dict[str, FailMode] = {}
        for layer in layers:
            modes.update(layer.modes)
            fail_modes.update(layer.fail_modes)
        return Resolution(
            names=list(dict.fromkeys(names)),
            explicit=bool(explicit),
            layers=[layer.label for layer in layers],
            modes=modes,
            fail_modes=fail_modes,
        )


#: No policy file: the request's names, else the registry defaults.
EMPTY_POLICY = Policy()


def _check_allowed(layers: Sequence[PolicyLayer], explicit: Sequence[str]) -> None:
    for layer in layers:
        if layer.allowed is None:
            continue
        refused = sorted({n for n in explicit if n not in layer.allowed})
        if refused:
            raise PermissionDeniedError(
                f"guardrail(s) {', '.join(refused)} may not be requested"
                f" under policy {layer.label}",
                reason="GUARDRAIL_NOT_ALLOWED",
            )


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def _names(value: Any, where: str, problems: _Problems) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.add(where, "must be a list of guardrail names")
        return ()
    return tuple(value)


def _enum_map(value: Any, kind: type, where: str, problems: _Problems) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(where, "must map guardrail names to values")
        return {}
    allowed = [member.value for member in kind]  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for name, raw in value.items():
        if raw not in allowed:
            problems.add(f"{where}.{name}", f"{raw!r} is not one of {', '.join(allowed)}")
        else:
            out[str(name)] = kind(raw)
    return out


def _layer(raw: Any, label: str, where: str, problems: _Problems) -> PolicyLayer | None:
    if not isinstance(raw, dict):
        problems.add(where, "must be a mapping")
        return None
    for key in sorted(set(raw) - _LAYER_KEYS):
        problems.add(f"{where}.{key}", f"unknown key (expected {', '.join(sorted(_LAYER_KEYS))})")
    allowed = raw.get("allowed")
    return PolicyLayer(
        label=label,
        add=_names(raw.get("add"), f"{where}.add", problems),
        remove=_names(raw.get("remove"), f"{where}.remove", problems),
        required=_names(raw.get("required"), f"{where}.required", problems),
        allowed=None
        if allowed is None
        else frozenset(_names(allowed, f"{where}.allowed", problems)),
        modes=_enum_map(raw.get("modes"), GuardrailMode, f"{where}.modes", problems),
        fail_modes=_enum_map(raw.get("fail_modes"), FailMode, f"{where}.fail_modes", problems),
    )


def _group(raw: Any, kind: str, problems: _Problems) -> dict[str, PolicyLayer]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.add(kind, "must map ids to policy layers")
        return {}
    out = {}
    for key, value in raw.items():
        layer = _layer(value, f"{kind[:-1]}:{key}", f"{kind}.{key}", problems)
        if layer is not None:
            out[str(key)] = layer
    return out


def parse_policy(document: Any, *, known: Iterable[str] | None = None) -> Policy:
    """Validate a parsed policy document; every problem raises at once."""
    problems = _Problems()
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SettingsError("policy: the document must be a mapping")
    for key in sorted(set(document) - _TOP_KEYS):
        problems.add(key, "unknown key (expected default, tenants, teams)")
    default = None
    if document.get("default") is not None:
        default = _layer(document["default"], "default", "default", problems)
    policy = Policy(
        default=default,
        tenants=_group(document.get("tenants"), "tenants", problems),
        teams=_group(document.get("teams"), "teams", problems),
    )
    if known is not None:
        for name in sorted(policy.names() - set(known)):
            problems.add(name, "unknown guardrail")
    if problems.items:
        raise SettingsError("invalid policy: " + "; ".join(problems.items))
    return policy


def load_policy(path: Path | None, *, known: Iterable[str] | None = None) -> Policy:
    """Read GUARDRAIL_POLICY_FILE; no file means the empty policy."""
    if path is None:
        return EMPTY_POLICY
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"GUARDRAIL_POLICY_FILE={str(path)!r}: {exc.strerror}") from None
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SettingsError(f"GUARDRAIL_POLICY_FILE={str(path)!r}: not valid: {exc}") from None
    try:
        return parse_policy(document, known=known)
    except SettingsError as exc:
        raise SettingsError(f"GUARDRAIL_POLICY_FILE={str(path)!r}: {exc}") from None
