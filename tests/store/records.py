"""CallRecords for store tests, and a counter reader."""

from __future__ import annotations

import time
import uuid

from service.telemetry.metrics import Metrics
from service.types import (
    Action,
    CallRecord,
    Caller,
    Decision,
    Direction,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
    Severity,
)

PREVIEW = "sk-live-4f3c2b1a0e9d8c7b6a5f4e3d2c1b0a9f"  # a preview must never be stored


def make_record(request_id: str | None = None, **changes: object) -> CallRecord:
    now = time.time()
    record = CallRecord(
        request_id=request_id or uuid.uuid4().hex,
        method="Check",
        call_type="check",
        start_time=now,
        start_ns=0,
        end_time=now + 0.01,
        duration_ns=10_000_000,
        api_key_hash="ab" * 32,
        caller=Caller(user="u1", team_id="t1", request_tags=("prod", "chat")),
        direction=Direction.INPUT,
        decision=Decision.MASK,
        outcomes=(
            GuardrailOutcome("secrets", 3, GuardrailStatus.INTERVENED, Action.MASK, 1),
            GuardrailOutcome("pii", 1, GuardrailStatus.PASSED, Action.BLOCK),
        ),
        findings=(
            Finding(
                guardrail="secrets",
                rule_id="openai-key",
                category="credential",
                severity=Severity.HIGH,
                action=Action.MASK,
                path="messages[0].content",
                start=10,
                end=48,
                redacted_preview=PREVIEW,
            ),
        ),
        applied_guardrails=("secrets", "pii"),
        registry_generation=7,
        worker=1,
        scan_ns=40_000,
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def count(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "guardrail_spend_log_rows_total", {"result": result}
    )
    return value or 0.0
