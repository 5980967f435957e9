"""Size and count limits on what a caller may send; the values live in settings.

Each check returns (or raises with) one ``FieldViolation`` per problem, so a
caller sees everything that is over a limit at once:

- ``PayloadLimits`` / ``check_payload``: messages, content parts and tools
  per Check payload (INVALID_ARGUMENT + BadRequest, reason LIMIT_EXCEEDED).
  The nesting depth of tool-call arguments and tool schemas is enforced while
  they are walked (service/api/payload.py, reason JSON_TOO_DEEP) with the
  depth from here.
- ``registration_limit_violations``: rules per guardrail, pattern length,
  RE2 memory per pattern, and registered guardrails per instance, for the
  Register validation path.

Limits enforced elsewhere: the gRPC receive size (server option), text size
per string (the checker), concurrent streams per connection (HTTP/2
SETTINGS_MAX_CONCURRENT_STREAMS, a server option; once a client has seen it,
it queues further streams, but grpc's client refuses some of a burst that
includes streaming calls with UNAVAILABLE instead, which is why our Python
client bounds its own calls in flight), and the per-key rate
(service/auth/rate_limit.py).

"""

from __future__ import annotations

from dataclasses import dataclass

from guardrail.v1 import guardrail_pb2 as pb

from service.engine.regex import PatternError, compile_regex
from service.errors import FieldViolation, InvalidArgumentError
from service.settings import Settings
from service.types import GuardrailSpec

__all__ = [
    "LIMIT_EXCEEDED",
    "PayloadLimits",
    "check_payload",
    "payload_limit_violations",
    "registration_limit_violations",
]

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"


@dataclass(frozen=True, slots=True)
class PayloadLimits:
    """What one Check payload may hold."""

    max_messages: int = 1024
    max_content_parts: int = 4096  # over all messages
    max_tools: int = 256
    max_json_depth: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> PayloadLimits:
        return cls(
            max_messages=settings.max_messages,
            max_content_parts=settings.max_content_parts,
            max_tools=settings.max_tools,
            max_json_depth=settings.max_json_depth,
        )


def _over(field: str, count: int, limit: int, what: str) -> FieldViolation:
    return FieldViolation(field, f"has {count} {what}; the limit is {limit}")


def payload_limit_violations(
    payload: pb.Payload, limits: PayloadLimits
) -> list[FieldViolation]:
    violations = []
    messages = len(payload.messages)
    if messages > limits.max_messages:
        violations.append(
            _over("payload.messages", messages, limits.max_messages, "messages")
        )
    parts = sum(len(m.content) for m in payload.messages)
    if parts > limits.max_content_parts:
        violations.append(
            _over(
                "payload.messages.content",
                parts,
                limits.max_content_parts,
                "content parts",
            )
        )
    tools = len(payload.tools)
    if tools > limits.max_tools:
        violations.append(_over("payload.tools", tools, limits.max_tools, "tools"))
    return violations


def check_payload(payload: pb.Payload, limits: PayloadLimits) -> None:
    """Raise INVALID_ARGUMENT naming every count over its limit."""
    violations = payload_limit_violations(payload, limits)
    if violations:
        raise InvalidArgumentError(
            "payload exceeds a limit: "
            + "; ".join(f"{v.field} {v.description}" for v in violations),
            violations,
            reason=LIMIT_EXCEEDED,
        )


def _pattern_violation(
    field: str, pattern: str, ignore_case: bool, settings: Settings
) -> FieldViolation | None:
    if len(pattern) > settings.max_pattern_chars:
        return FieldViolation(
            field,
            f"pattern is {len(pattern)} characters long; the limit is "
            f"{settings.max_pattern_chars}",
        )
    try:
        compile_regex(
            pattern, ignore_case=ignore_case, max_mem=settings.max_pattern_mem_bytes
        )
    except PatternError as exc:
        # Other compile errors are reported by the engine's own validation;
        # only the memory budget is ours.
        if "too large" in str(exc) or "too complex" in str(exc):
            return FieldViolation(
                field,
                f"pattern needs more than the {settings.max_pattern_mem_bytes}-byte "
                f"RE2 memory budget: {exc}",
            )
    return None


def registration_limit_violations(
    spec: GuardrailSpec, settings: Settings, registered_count: int
) -> list[FieldViolation]:
    """Every limit a Register item exceeds.

    ``registered_count`` is how many guardrails are registered (built-ins
    excluded) other than one of the same name, which this item would replace.
    """
    violations = []
    if registered_count >= settings.max_guardrails:
        violations.append(
            FieldViolation(
                "name",
                f"{registered_count} guardrails are registered; the limit is "
                f"{settings.max_guardrails} (delete one first)",
            )
        )
    if len(spec.rules) > settings.max_rules_per_guardrail:
        violations.append(
            _over("rules", len(spec.rules), settings.max_rules_per_guardrail, "rules")
        )
    for i, rule in enumerate(spec.rules[: settings.max_rules_per_guardrail]):
        if not rule.pattern:
            continue  # keyword rules: the engine bounds the patterns it builds
        field = f"rules[{i}].pattern"
        problem = _pattern_violation(field, rule.pattern, rule.ignore_case, settings)
        if problem is not None:
            violations.append(problem)
    return violations
