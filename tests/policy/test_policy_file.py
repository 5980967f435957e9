"""Policy files: validation at start-up and the documented precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import PermissionDeniedError, SettingsError
from service.policy import EMPTY_POLICY, load_policy, parse_policy
from service.types import FailMode, GuardrailMode, Principal

KNOWN = ["secrets", "pii", "jailbreak", "prompt_injection", "mcp_rug_pull"]
DEFAULTS = ["jailbreak", "pii", "secrets"]


def test_every_problem_of_a_bad_file_is_listed() -> None:
    document = {
        "default": {"add": "pii", "modes": {"pii": "loud"}},
        "teams": {"a": {"required": ["nope"], "colour": 1}},
        "extra": {},
    }
    with pytest.raises(SettingsError) as caught:
        parse_policy(document, known=KNOWN)
    message = str(caught.value)
    assert "default.add: must be a list" in message
    assert "default.modes.pii: 'loud' is not one of enforce, monitor, dry_run" in message
    assert "teams.a.colour: unknown key" in message
    assert "extra: unknown key" in message
    assert "nope: unknown guardrail" in message


def test_unreadable_and_unparsable_files_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="GUARDRAIL_POLICY_FILE=.*missing"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SettingsError, match="GUARDRAIL_POLICY_FILE=.*not valid"):
        load_policy(bad)


def test_no_file_is_the_empty_policy() -> None:
    assert load_policy(None) is EMPTY_POLICY
    resolution = EMPTY_POLICY.resolve(
        principal=None, request_team="t", explicit=[], defaults=DEFAULTS
    )
    assert resolution.names == DEFAULTS
    assert resolution.layers == []


def test_layers_apply_default_then_tenant_then_team() -> None:
    policy = parse_policy(
        {
            "default": {"remove": ["jailbreak"], "modes": {"pii": "monitor"}},
            "tenants": {"acme": {"add": ["prompt_injection"], "required": ["secrets"]}},
            "teams": {"red": {"remove": ["pii", "secrets"], "modes": {"pii": "dry_run"}}},
        },
        known=KNOWN,
    )
    principal = Principal(key_id="k1", team="red", tenant="acme")
    resolution = policy.resolve(
        principal=principal, request_team="ignored", explicit=[], defaults=DEFAULTS
    )
    # team removed secrets from the defaults, but the tenant requires it
    assert resolution.names == ["prompt_injection", "secrets"]
    assert resolution.layers == ["default", "tenant:acme", "team:red"]
    assert resolution.modes == {"pii": GuardrailMode.DRY_RUN}  # later layer wins


def test_anonymous_calls_use_the_request_team_and_no_tenant() -> None:
    policy = parse_policy(
        {"tenants": {"acme": {"add": ["prompt_injection"]}}, "teams": {"blue": {"remove": ["pii"]}}},
        known=KNOWN,
    )
    resolution = policy.resolve(
        principal=None, request_team="blue", explicit=[], defaults=DEFAULTS
    )
    assert resolution.names == ["jailbreak", "secrets"]
    assert resolution.layers == ["team:blue"]


def test_explicit_names_replace_defaults_but_not_required() -> None:
    policy = parse_policy(
        {"default": {"add": ["prompt_injection"], "required": ["secrets"],
                     "fail_modes": {"pii": "open"}}},
        known=KNOWN,
    )  # fmt: skip
    resolution = policy.resolve(
        principal=None, request_team="", explicit=["pii", "pii"], defaults=DEFAULTS
    )
    assert resolution.names == ["pii", "secrets"]
    assert resolution.explicit
    assert resolution.fail_modes == {"pii": FailMode.OPEN}


def test_a_name_outside_allowed_is_refused() -> None:
    policy = parse_policy({"teams": {"red": {"allowed": ["pii"]}}}, known=KNOWN)
    with pytest.raises(PermissionDeniedError, match="secrets"):
        policy.resolve(principal=None, request_team="red", explicit=["secrets"], defaults=[])
    ok = policy.resolve(principal=None, request_team="red", explicit=["pii"], defaults=[])
    assert ok.names == ["pii"]
