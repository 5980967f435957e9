"""Every problem of one guardrail definition, not just those of the first stage.

The engine validates in two stages (``pack.spec_from_mapping``: shapes and
types; ``compiler.compile_guardrail``: names, patterns, samples), and each
stage stops the next: a bad action hides a bad pattern, an empty category
hides a failing sample. Register and ``guardrail validate`` promise all
problems at once, so this module re-runs both stages on a copy of the
definition in which every field already found wrong is replaced by a
harmless value, and keeps the new problems that appear elsewhere, until no
new ones do. A field that cannot be replaced (a pattern that does not
compile) simply keeps the checks that depend on it from running.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from service.engine import compile_guardrail, spec_from_mapping
from service.errors import FieldViolation, GuardrailDefinitionError
from service.types import GuardrailSpec

__all__ = ["check_definition", "require_valid"]

#: Harmless stand-ins for guardrail fields found wrong (None: remove the key).
_GUARDRAIL_NEUTRAL: dict[str, Any] = {
    "name": "placeholder",
    "description": None,
    "action": "block",
    "directions": None,
    "default_on": None,
    "fail_mode": None,
    "mode": None,
    "score_threshold": None,
    "version": None,
}
_RULE_NEUTRAL: dict[str, Any] = {
    "category": "placeholder",
    "severity": None,
    "keywords_match_substrings": None,
    "prefilter": None,
    "validator": None,
    "mask_label": None,
    "weight": None,
    "ignore_case": None,
    "match_on": None,
}
_MAX_ROUNDS = 4


def _split(field: str) -> tuple[str, int | None, str]:
    """'rules[2].weight' -> ('rules', 2, 'weight'); 'name' -> ('name', None, '')."""
    head, _, rest = field.partition(".")
    key, bracket, index = head.partition("[")
    if not bracket:
        return head, None, ""
    try:
        position = int(index.rstrip("]"))
    except ValueError:
        return key, None, ""
    return key, position, rest.partition("[")[0]


def _patch(data: dict[str, Any], field: str) -> bool:
    """Replace the field named by a violation with a harmless value; False if impossible."""
    key, index, sub = _split(field)
    if key == "rules" and index is not None and sub:
        rules = data.get("rules")
        if not isinstance(rules, list) or index >= len(rules):
            return False
        rule = rules[index]
        if not isinstance(rule, dict):
            return False
        if sub == "id":
            rule["id"] = f"placeholder-{index}"
            return True
        if sub in _RULE_NEUTRAL or sub not in _KNOWN_RULE_KEYS:
            _set(rule, sub, _RULE_NEUTRAL.get(sub))
            return True
        return False
    if key == "rules" and index is None and not isinstance(data.get("rules"), list):
        data["rules"] = []
        return True
    if index is None and key in _GUARDRAIL_NEUTRAL:
        _set(data, key, _GUARDRAIL_NEUTRAL[key])
        return True
    if key == "directions":
        data.pop("directions", None)
        return True
    if index is None and key not in _KNOWN_GUARDRAIL_KEYS and key:
        data.pop(key, None)  # an unknown key
        return True
    return False


_KNOWN_GUARDRAIL_KEYS = frozenset({*_GUARDRAIL_NEUTRAL, "rules"})
_KNOWN_RULE_KEYS = frozenset(
    {*_RULE_NEUTRAL, "id", "pattern", "keywords", "must_match", "must_not_match"}
)


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value


def _one_pass(data: Mapping[str, Any]) -> tuple[GuardrailSpec | None, list[FieldViolation]]:
    try:
        spec = spec_from_mapping(data)
    except GuardrailDefinitionError as exc:
        return None, list(exc.violations)
    try:
        compile_guardrail(spec)
    except GuardrailDefinitionError as exc:
        return spec, list(exc.violations)
    return spec, []


def _covered(field: str, patched: set[str]) -> bool:
    return any(field == p or field.startswith((p + ".", p + "[")) for p in patched)


def check_definition(
    data: Mapping[str, Any],
) -> tuple[GuardrailSpec | None, list[FieldViolation]]:
    """The spec when the definition is valid, else None and every problem found."""
    spec, problems = _one_pass(data)
    if not problems:
        return spec, []
    working = copy.deepcopy(dict(data))
    patched: set[str] = set()
    found = list(problems)
    seen = {(v.field, v.description) for v in found}
    for _ in range(_MAX_ROUNDS):
        progress = False
        for violation in problems:
            if violation.field not in patched and _patch(working, violation.field):
                patched.add(violation.field)
                progress = True
        if not progress:
            break
        _, problems = _one_pass(working)
        problems = [v for v in problems if not _covered(v.field, patched)]
        new = [v for v in problems if (v.field, v.description) not in seen]
        if not new:
            break
        found.extend(new)
        seen.update((v.field, v.description) for v in new)
    return None, found


def require_valid(data: Mapping[str, Any]) -> GuardrailSpec:
    """The spec, or GuardrailDefinitionError listing every problem."""
    spec, problems = check_definition(data)
    if spec is None or problems:
        name = data.get("name")
        raise GuardrailDefinitionError(name if isinstance(name, str) else "", problems)
    return spec
