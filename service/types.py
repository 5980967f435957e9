"""The shared vocabulary: domain values every layer of the service speaks.

The protobuf messages stay at the API edge (``service/api``); the engine, the
policy and the records work with these plain, frozen values only.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Action",
    "CallRecord",
    "Caller",
    "Decision",
    "Direction",
    "FailMode",
    "Finding",
    "GuardrailMode",
    "GuardrailOutcome",
    "GuardrailSpec",
    "GuardrailStatus",
    "Principal",
    "RegisterItem",
    "RuleSpec",
    "Segment",
    "Severity",
    "SpendLogSink",
]


class Direction(enum.Enum):
    INPUT = "input"
    OUTPUT = "output"
    TOOL_DESCRIPTION = "tool_description"
    TOOL_RESULT = "tool_result"


class Decision(enum.Enum):
    ALLOW = "ALLOW"
    MASK = "MASK"
    BLOCK = "BLOCK"
    FLAG = "FLAG"


class Action(enum.Enum):
    BLOCK = "block"
    MASK = "mask"
    FLAG = "flag"


class Severity(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class GuardrailStatus(enum.Enum):
    PASSED = "passed"
    INTERVENED = "intervened"
    FAILED_OPEN = "failed_open"
    NOT_RUN = "not_run"


class FailMode(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class GuardrailMode(enum.Enum):
    """How a guardrail's matches count (see service/policy.py)."""

    ENFORCE = "enforce"
    MONITOR = "monitor"  # findings reported, decision at most FLAG
    DRY_RUN = "dry_run"  # recorded only: no effect on decision or payload


@dataclass(frozen=True, slots=True)
class Segment:
    """One string of a payload that gets scanned.

    ``path`` names where it sits ("messages[1].content[2].text"); for strings
    taken out of a JSON document, ``json_pointer`` names the value inside it.
    """

    path: str
    text: str
    json_pointer: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """One match of one rule. Offsets are code points into the segment text."""

    guardrail: str
    rule_id: str
    category: str
    severity: Severity
    action: Action
    path: str
    start: int
    end: int
    json_pointer: str = ""
    redacted_preview: str = ""
    decoded: bool = False
    mask_label: str = ""


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A rule as written in a pack file or a Register request (not compiled)."""

    id: str
    category: str
    severity: Severity = Severity.MEDIUM
    pattern: str = ""
    keywords: tuple[str, ...] = ()
    keywords_match_substrings: bool = False
    prefilter: tuple[str, ...] = ()
    validator: str = ""
    must_match: tuple[str, ...] = ()
    must_not_match: tuple[str, ...] = ()
    mask_label: str = ""
    weight: float = 1.0
    ignore_case: bool = False
    match_on: str = "normalized"


@dataclass(frozen=True, slots=True)
class GuardrailSpec:
    """A guardrail definition as written (not compiled)."""

    name: str
    rules: tuple[RuleSpec, ...]
    action: Action
    description: str = ""
    directions: frozenset[Direction] = frozenset()  # empty: every direction
    default_on: bool = False
    fail_mode: FailMode = FailMode.CLOSED
    score_threshold: float = 0.0
    version: int = 1
    builtin: bool = False
    mode: GuardrailMode = GuardrailMode.ENFORCE

    def applies_to(self, direction: Direction) -> bool:
        return not self.directions or direction in self.directions


@dataclass(frozen=True, slots=True)
class GuardrailOutcome:
    """What one guardrail did on one call."""

    name: str
    version: int
    status: GuardrailStatus
    action: Action
    finding_count: int = 0
    score: float = 0.0
    reason: str = ""
    mode: GuardrailMode = GuardrailMode.ENFORCE
    fail_mode: FailMode = FailMode.CLOSED


@dataclass(frozen=True, slots=True)
class Caller:
    user: str = ""
    team_id: str = ""
    end_user: str = ""
    session_id: str = ""
    request_tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who an authenticated call comes from: one API key's binding.

    ``key_id`` is a short prefix of the key's hash, safe to record; the key
    itself never leaves the authentication layer.
    """

    key_id: str
    team: str = ""
    tenant: str = ""
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RegisterItem:
    """One item of a Register stream as it was answered, for the row."""

    name: str  # as shown: an invalid name only by length and hash
    accepted: bool
    version: int = 0
    validate_only: bool = False
    reason: str = ""  # the error's reason when refused


@dataclass(slots=True)
class CallRecord:
    """Everything the records (row, span, log line, metrics) need of one RPC.

    The recording interceptor creates it at RPC entry and puts it in a
    context variable; the servicer fills in what it learns. It never holds
    raw content: findings carry rule ids and offsets only.
    """

    request_id: str
    method: str  # "Check", "CheckStream", ...
    call_type: str  # "check", "check_stream", "register", ...
    start_time: float  # time.time() at entry
    start_ns: int  # time.perf_counter_ns() at entry
    worker: int = 0
    grpc_code: str = "OK"
    error_reason: str = ""
    error_message: str = ""
    client_request_id: str = ""
    api_key_hash: str = ""
    # Set by authentication when API keys are configured; None: anonymous.
    principal: Principal | None = None
    caller: Caller = field(default_factory=Caller)
    direction: Direction | None = None
    decision: Decision | None = None
    outcomes: Sequence[GuardrailOutcome] = ()
    findings: Sequence[Finding] = ()
    applied_guardrails: Sequence[str] = ()
    # The call resolved to no guardrails at all (Check/CheckStream only).
    no_guardrails: bool = False
    policy_layers: Sequence[str] = ()  # policy layers that shaped the resolution
    registry_generation: int = 0
    scan_ns: int = 0
    chunk_count: int = 0
    stream_bytes: int = 0  # UTF-8 bytes of text and tool arguments streamed in
    stream_end: str = ""  # completed, blocked, cancelled, deadline, error
    # Register: the first items as answered, and how many there were.
    register_items: list[RegisterItem] = field(default_factory=list)
    register_item_count: int = 0
    end_time: float = 0.0
    duration_ns: int = 0
    # The payload with every finding masked, as JSON; built only when the
    # operator stores content (GUARDRAIL_SPEND_LOG_STORE_CONTENT).
    masked_content: Callable[[], str] | None = None


class SpendLogSink(Protocol):
    """Where finished call records go; implementations must never block."""

    def submit(self, record: CallRecord) -> None: ...
