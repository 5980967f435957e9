"""Built-in and other guardrails scan in two groups, with the built-ins' passes kept.

Grouping must change nothing a scan reports; what it buys is that a change to
registered guardrails does not rebuild (or cool down) the built-ins' Sets, and
that a call naming no registered guardrail does not run their passes.
"""

from __future__ import annotations

import base64
import dataclasses

from service.engine import Scanner, compile_guardrail, spec_from_mapping
from service.engine.pack import builtin_specs
from service.engine.scanner import _Pass
from service.registry import Registry
from service.types import Segment

SPECS = builtin_specs()
NAMES = [spec.name for spec in SPECS]


def _texts() -> list[str]:
    """Every built-in rule's own samples, alone, together, encoded, and in noise."""
    samples = [
        sample
        for spec in SPECS
        for rule in spec.rules
        for sample in (*rule.must_match, *rule.must_not_match)
    ]
    together = " ".join(samples)
    encoded = [base64.b64encode(s.encode()).decode() for s in samples[:200]]
    return [
        *samples,
        together,
        "Grüße ｃａｔ " + together[:5000],
        "see " + " and ".join(encoded),
        "a plain note with nothing in it",
    ]


def _scanner(builtin_names: set[str]) -> Scanner:
    return Scanner(
        [
            compile_guardrail(dataclasses.replace(s, builtin=s.name in builtin_names))
            for s in SPECS
        ]
    )


def _report(scanner: Scanner, text: str, names: list[str]) -> tuple[object, ...]:
    result = scanner.scan([Segment("text", text)], names)
    return result.findings, sorted(result.scores.items()), sorted(result.matched)


def test_two_groups_report_exactly_what_one_group_reports() -> None:
    one_group = _scanner(set(NAMES))
    split = _scanner({"jailbreak", "unicode_smuggling", "mcp_tool_poisoning"})
    no_builtins = _scanner(set())
    assert [len(s._groups) for s in (one_group, split, no_builtins)] == [1, 2, 1]
    texts = _texts()
    for names in (NAMES, ["pii", "secrets"], ["jailbreak", "pii"]):
        for text in texts:
            expected = _report(one_group, text, names)
            assert _report(split, text, names) == expected, text[:80]
            assert _report(no_builtins, text, names) == expected, text[:80]


def _custom(name: str, pattern: str = r"\bproj-[0-9]{4}\b"):
    return spec_from_mapping(
        {
            "name": name,
            "action": "block",
            "rules": [
                {"id": "code", "category": "secret", "pattern": pattern,
                 "must_match": ["proj-1234"], "must_not_match": ["proj-12"]}
            ],
        }
    )


def test_registering_keeps_the_builtin_passes_and_their_warm_sets() -> None:
    registry = Registry(SPECS)
    before = registry.snapshot.scanner._groups[0].passes
    registry.register(_custom("project_codes"))
    after = registry.snapshot.scanner
    assert after._groups[0].passes is before
    assert len(after._groups) == 2
    found = after.scan([Segment("t", "code proj-1234")], ["project_codes"])
    assert [f.rule_id for f in found.findings] == ["code"]


def test_the_builtin_passes_outlive_many_registers() -> None:
    """Each Register builds a scanner with a new registered group; the built-ins' stays."""
    builtins = [compile_guardrail(spec) for spec in SPECS]
    first = Scanner([*builtins, compile_guardrail(_custom("custom_0"))])
    for number in range(1, 12):
        later = Scanner([*builtins, compile_guardrail(_custom(f"custom_{number}"))])
        assert later._groups[0].passes is first._groups[0].passes, number


def test_a_call_naming_no_registered_guardrail_skips_their_passes(monkeypatch) -> None:
    registry = Registry(SPECS)
    registry.register(_custom("project_codes"))
    scanner = registry.snapshot.scanner
    registered_passes = {
        id(scanner._groups[1].passes.ascii),
        id(scanner._groups[1].passes.normalized),
        id(scanner._groups[1].passes.raw),
    }
    ran: list[int] = []
    real = _Pass.candidates

    def counted(self, data, lowered):
        ran.append(id(self))
        return real(self, data, lowered)

    monkeypatch.setattr(_Pass, "candidates", counted)
    scanner.scan([Segment("t", "code proj-1234 and Grüße")], ["pii"])
    assert ran and not registered_passes & set(ran)

    ran.clear()
    scanner.scan([Segment("t", "code proj-1234")], ["pii", "project_codes"])
    assert registered_passes & set(ran)
