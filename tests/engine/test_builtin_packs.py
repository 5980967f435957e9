"""The shipped packs load, compile and keep the promises of the design."""

from __future__ import annotations

import pytest

from service.engine import Scanner, builtin_specs, compile_guardrail
from service.types import Segment

EXPECTED_NAMES = {
    "secrets", "pii", "prompt_injection", "jailbreak", "unicode_smuggling",
    "mcp_tool_poisoning",
}


def test_all_six_builtins_load():
    """Every pack file loads as a builtin, default-on spec."""
    specs = builtin_specs()

    assert {spec.name for spec in specs} == EXPECTED_NAMES
    assert all(spec.builtin and spec.default_on for spec in specs)


@pytest.mark.parametrize("spec", builtin_specs(), ids=lambda spec: spec.name)
def test_builtin_compiles_with_samples(spec):
    """Each pack compiles and every rule has positive and negative samples."""
    compiled = compile_guardrail(spec)

    assert compiled.rules
    assert all(rule.spec.must_match and rule.spec.must_not_match for rule in compiled.rules)


def test_secrets_pack_covers_forty_formats():
    """The secrets pack carries at least forty rules."""
    secrets = next(spec for spec in builtin_specs() if spec.name == "secrets")

    assert len(secrets.rules) >= 40


@pytest.mark.parametrize("spec", builtin_specs(), ids=lambda spec: spec.name)
def test_scanner_agrees_with_must_match_samples(spec):
    """Through the combined Set pass, each positive sample still hits its rule."""
    scanner = Scanner([compile_guardrail(spec.__class__(**{
        **{f: getattr(spec, f) for f in spec.__slots__}, "score_threshold": 0.0}))])
    for rule in spec.rules:
        for sample in rule.must_match:
            result = scanner.scan([Segment("s", sample)], [spec.name])
            assert rule.id in {f.rule_id for f in result.findings}, (rule.id, sample)
