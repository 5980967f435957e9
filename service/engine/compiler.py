"""Compile a GuardrailSpec into a frozen, scan-ready CompiledGuardrail.

Every check runs here, off the hot path, and every problem is reported at
once: a Register caller fixes a definition in one round trip.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from service.engine import anchors
from service.engine.context import ContextCheck, context_check
from service.engine.normalize import TextView, normalized_view, raw_view
from service.engine.regex import PatternError, Regex, compile_regex, keywords_pattern
from service.engine.validators import VALIDATORS, Validator
from service.engine.width import rule_width
from service.errors import FieldViolation, GuardrailDefinitionError
from service.types import Action, GuardrailSpec, RuleSpec, Severity

__all__ = ["CompiledGuardrail", "CompiledRule", "compile_guardrail"]

MAX_RULES = 500
MAX_SAMPLE_LENGTH = 16_384
# Findings per rule per segment: enough to mask a long document, bounded so a
# text of ten thousand e-mail addresses cannot make one scan unbounded work.
MAX_FINDINGS_PER_RULE = 1_000
# The views a rule can match on (``RuleSpec.match_on``); see ``normalize``.
MATCH_ON = frozenset({"normalized", "raw"})
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz")
_NAME_REST = _NAME_FIRST | frozenset("0123456789_-")


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, ready to run: its regex, gate, validator and labels."""

    spec: RuleSpec
    guardrail: str
    regex: Regex
    prefilter: tuple[str, ...]
    validator: Validator | None
    on_raw: bool
    mask_label: str
    context: ContextCheck | None = None
    # Longest match in code points when every match is proven to hold one of
    # the prefilter literals (``anchors``); None otherwise. Lets the scanner
    # search only around the literals of a large text.
    anchor_width: int | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    def view(self, text: str) -> TextView:
        """The view of ``text`` this rule matches against."""
        return raw_view(text) if self.on_raw else normalized_view(text)

    def passes_prefilter(self, view: TextView) -> bool:
        """Whether one of the gate literals occurs (always, without a gate)."""
        if not self.prefilter:
            return True
        lowered = view.text.lower()
        return any(literal in lowered for literal in self.prefilter)

    def matches(
        self, view: TextView, windows: list[tuple[int, int]] | None = None
    ) -> Iterator[tuple[int, int, str]]:
        """Validated byte spans of this rule in ``view``, with the matched text.

        ``windows``: byte ranges known to hold every match (``anchors``).
        """
        context = self.context
        spans = self.regex.spans(view.data, MAX_FINDINGS_PER_RULE, windows)
        for start, end in spans:
            matched = view.decode(start, end)
            if self.validator is not None and not self.validator(matched):
                continue
            if context is None or context.keeps(view.data, start):
                yield start, end, matched


@dataclass(frozen=True, slots=True)
class CompiledGuardrail:
    """A validated guardrail whose rules are compiled; immutable."""

    spec: GuardrailSpec
    rules: tuple[CompiledRule, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def action(self) -> Action:
        return self.spec.action


def is_valid_name(name: str) -> bool:
    """``^[a-z][a-z0-9_-]{0,62}$`` without a regex engine."""
    return (
        0 < len(name) <= 63
        and name[0] in _NAME_FIRST
        and all(char in _NAME_REST for char in name)
    )


class _Problems:
    """Collects FieldViolations with a common field prefix."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))


def _check_guardrail(spec: GuardrailSpec, problems: _Problems) -> None:
    if not is_valid_name(spec.name):
        problems.add(
            "name",
            f"must match ^[a-z][a-z0-9_-]{{0,62}}$, got {spec.name!r}",
        )
    if not spec.rules:
        problems.add("rules", "must hold at least one rule")
    if len(spec.rules) > MAX_RULES:
        count = len(spec.rules)
        problems.add("rules", f"holds {count} rules; the limit is {MAX_RULES}")
    if not isinstance(spec.action, Action):
        problems.add("action", "is required")
    _check_threshold(spec, problems)
    seen: set[str] = set()
    for index, rule in enumerate(spec.rules):
        if rule.id in seen:
            problems.add(f"rules[{index}].id", f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)


def _check_threshold(spec: GuardrailSpec, problems: _Problems) -> None:
    threshold = spec.score_threshold
    if not math.isfinite(threshold) or threshold < 0:
        problems.add("score_threshold", f"must be 0 or more, got {threshold!r}")
        return
    reachable = sum(rule.weight for rule in spec.rules if rule.weight > 0)
    if spec.rules and threshold > reachable:
        problems.add(
            "score_threshold",
            f"{threshold:g} can never be reached: all rule weights sum to "
            f"{reachable:g}",
        )


def _check_rule_fields(rule: RuleSpec, field: str, problems: _Problems) -> None:
    if not rule.id.strip():
        problems.add(f"{field}.id", "must not be empty")
    if not rule.category.strip():
        problems.add(f"{field}.category", "must not be empty")
    if not isinstance(rule.severity, Severity):
        problems.add(f"{field}.severity", "is required")
    if not math.isfinite(rule.weight) or rule.weight <= 0:
        problems.add(f"{field}.weight", f"must be more than 0, got {rule.weight!r}")
    if rule.validator and rule.validator not in VALIDATORS:
        supported = ", ".join(sorted(VALIDATORS))
        problems.add(
            f"{field}.validator",
            f"unknown validator {rule.validator!r}; supported: {supported}",
        )
    if rule.match_on not in MATCH_ON:
        problems.add(
            f"{field}.match_on",
            f"must be one of normalized, raw, got {rule.match_on!r}",
        )
    if not rule.must_match:
        problems.add(f"{field}.must_match", "every rule needs at least one sample")
    for index, literal in enumerate(rule.prefilter):
        if not literal or literal != literal.lower():
            problems.add(
                f"{field}.prefilter[{index}]", "must be a non-empty lowercase literal"
            )


def _rule_source(rule: RuleSpec, field: str, problems: _Problems) -> str | None:
    if bool(rule.pattern) == bool(rule.keywords):
        problems.add(field, "needs exactly one of pattern or keywords")
        return None
    if rule.pattern:
        return rule.pattern
    blank = [i for i, keyword in enumerate(rule.keywords) if not keyword.strip()]
    for index in blank:
        problems.add(f"{field}.keywords[{index}]", "must not be empty")
    if blank:
        return None
    return keywords_pattern(rule.keywords, substrings=rule.keywords_match_substrings)


def _compile_rule_regex(
    rule: RuleSpec, field: str, problems: _Problems
) -> Regex | None:
    source = _rule_source(rule, field, problems)
    if source is None:
        return None
    where = f"{field}.pattern" if rule.pattern else f"{field}.keywords"
    try:
        regex = compile_regex(source, ignore_case=rule.ignore_case)
    except PatternError as exc:
        problems.add(where, str(exc))
        return None
    if regex.matches_empty():
        problems.add(where, "pattern can match the empty string")
        return None
    return regex


def _compile_rule(
    rule: RuleSpec, index: int, guardrail: str, problems: _Problems
) -> CompiledRule | None:
    field = f"rules[{index}]"
    before = len(problems.items)
    _check_rule_fields(rule, field, problems)
    regex = _compile_rule_regex(rule, field, problems)
    if regex is None or len(problems.items) > before:
        return None

    return CompiledRule(
        spec=rule,
        guardrail=guardrail,
        regex=regex,
        prefilter=tuple(rule.prefilter),
        validator=VALIDATORS[rule.validator] if rule.validator else None,
        on_raw=rule.match_on == "raw",
        mask_label=rule.mask_label or f"[{rule.category.upper()}]",
        context=context_check(rule.validator) if rule.validator else None,
        anchor_width=_anchor_width(rule, regex),
    )


def _anchor_width(rule: RuleSpec, regex: Regex) -> int | None:
    if not rule.prefilter or not anchors.anchored(regex.source, rule.prefilter):
        return None
    return rule_width(rule)


def _first_finding(rule: CompiledRule, sample: str) -> tuple[int, int] | None:
    view = rule.view(sample)
    if not rule.passes_prefilter(view):
        return None
    for start, end, _ in rule.matches(view):
        return view.original_span(start, end)
    return None


def _check_samples(rule: CompiledRule, index: int, problems: _Problems) -> None:
    field = f"rules[{index}]"
    for number, sample in enumerate(rule.spec.must_match):
        if len(sample) > MAX_SAMPLE_LENGTH:
            problems.add(f"{field}.must_match[{number}]", "sample is too long")
        elif _first_finding(rule, sample) is None:
            problems.add(
                f"{field}.must_match[{number}]",
                "sample produced no finding of this rule",
            )
    for number, sample in enumerate(rule.spec.must_not_match):
        span = None if len(sample) > MAX_SAMPLE_LENGTH else _first_finding(rule, sample)
        if span is not None:
            problems.add(
                f"{field}.must_not_match[{number}]",
                f"sample produced a finding of this rule at [{span[0]}, {span[1]})",
            )


# Compiled rules by (guardrail name, rule specs): everything they depend on.
# A Register compiles its spec to validate it, then again when every worker
# puts it in force under its new version; the second is a lookup.
_RulesKey = tuple[str, tuple[RuleSpec, ...]]
_COMPILED_RULES: dict[_RulesKey, tuple[CompiledRule, ...]] = {}
_MAX_COMPILED = 64


def compile_guardrail(spec: GuardrailSpec) -> CompiledGuardrail:
    """Validate and compile; raise GuardrailDefinitionError with every problem."""
    problems = _Problems()
    _check_guardrail(spec, problems)
    key = (spec.name, spec.rules)
    cached = _COMPILED_RULES.get(key)
    if cached is not None and not problems.items:
        return CompiledGuardrail(spec=spec, rules=cached)
    compiled: list[CompiledRule] = []
    for index, rule in enumerate(spec.rules):
        result = _compile_rule(rule, index, spec.name, problems)
        if result is not None:
            _check_samples(result, index, problems)
            compiled.append(result)
    if problems.items:
        raise GuardrailDefinitionError(spec.name, problems.items)
    if len(_COMPILED_RULES) >= _MAX_COMPILED:
        _COMPILED_RULES.pop(next(iter(_COMPILED_RULES)), None)  # the oldest
    rules = _COMPILED_RULES[key] = tuple(compiled)

    return CompiledGuardrail(spec=spec, rules=rules)
