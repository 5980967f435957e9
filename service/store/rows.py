"""A CallRecord as a ``spend_logs`` row: LiteLLM column names, no raw content.

Rows are plain tuples of JSON-friendly values (timestamps as epoch seconds),
so the same row can go to either database or into the outage journal; each
backend converts the timestamps to its own type.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson

from service.engine.redact import redacted_pointer
from service.types import (
    Action,
    CallRecord,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
    RegisterItem,
)

__all__ = [
    "COLUMNS",
    "CONTENT_COLUMNS",
    "MAX_FINDINGS",
    "PROVIDER",
    "SpendLogRow",
    "check_row",
    "row_bytes",
    "storable",
    "to_row",
]

COLUMNS = (
    "request_id", "call_type", "api_key", "user", "team_id", "end_user",
    "session_id", "startTime", "endTime", "request_duration_ms", "status",
    "request_tags", "metadata", "messages", "response", "client_request_id",
    "grpc_code", "decision", "registry_generation", "worker",
)  # fmt: skip
CONTENT_COLUMNS = ("messages", "response")  # "{}" unless content storage is on
TIME_COLUMNS = (COLUMNS.index("startTime"), COLUMNS.index("endTime"))
SpendLogRow = tuple[Any, ...]  # values in COLUMNS order; times in epoch seconds
MAX_FINDINGS = 500  # per row; the rest are counted in findings_truncated
PROVIDER = "guardrail-service"  # guardrail_provider in guardrail_information
_EMPTY_JSON = "{}"


def _dumps(value: Any) -> str:
    # orjson: ~4x faster than json here, and this runs once per RPC.
    return orjson.dumps(value).decode()

# LiteLLM's guardrail_status values where ours mean the same thing.
_LITELLM_STATUS = {
    GuardrailStatus.PASSED: "success",
    GuardrailStatus.INTERVENED: "guardrail_intervened",
    GuardrailStatus.FAILED_OPEN: "guardrail_failed_to_respond",
    GuardrailStatus.NOT_RUN: "not_run",
}


def storable(text: str) -> str:
    """Text both databases accept: no NUL, no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


_BULKY = tuple(COLUMNS.index(c) for c in ("metadata", "messages", "response", "request_tags"))


def row_bytes(row: SpendLogRow) -> int:
    """A cheap size estimate for batching: the JSON columns, plus a fixed share
    for the short ones (ids, names, codes), which are bounded and small."""
    metadata, messages, response, tags = _BULKY
    return len(row[metadata]) + len(row[messages]) + len(row[response]) + len(row[tags]) + 256


@lru_cache(maxsize=4096)
def _label(text: str) -> str:
    # Guardrail names, rule ids, categories and paths repeat on almost every
    # row; storable() of each is computed once.
    return storable(text)


def _guardrail_information(record: CallRecord) -> orjson.Fragment:
    """The ``guardrail_information`` list, as JSON text inside the metadata.

    Most entries have no findings, and then everything but the call's times
    is fixed by the outcome: that text is made once per distinct outcome
    (``_static_entry``) and joined around the times. Entries with findings
    are built in full. Either way the JSON is the same.
    """
    by_guardrail: dict[str, list[Finding]] = {}
    for finding in record.findings:
        by_guardrail.setdefault(finding.guardrail, []).append(finding)
    times = (
        b'"start_time":' + orjson.dumps(record.start_time)
        + b',"end_time":' + orjson.dumps(record.end_time or record.start_time)
        + b',"duration":' + orjson.dumps(record.scan_ns / 1e9)
    )  # fmt: skip
    entries = []
    for outcome in record.outcomes:
        findings = by_guardrail.get(outcome.name)
        if findings:
            entries.append(orjson.dumps(_guardrail_entry(record, outcome, findings)))
            continue
        prefix, suffix = _static_entry(outcome, record.direction)
        entries.append(prefix + times + suffix)

    return orjson.Fragment(b"[" + b",".join(entries) + b"]")


_static_entries: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
MAX_STATIC_ENTRIES = 4096  # distinct outcomes; beyond it entries are built each time


def _static_entry(outcome: GuardrailOutcome, direction: Any) -> tuple[bytes, bytes]:
    """The JSON of a finding-less entry before and after its times."""
    # The enums' plain values: Enum.__hash__ is Python code, five per entry.
    key = (
        outcome.name, outcome.version, outcome.status._value_, outcome.action._value_,
        outcome.finding_count, outcome.reason, outcome.mode._value_,
        outcome.fail_mode._value_, getattr(direction, "_value_", direction),
    )  # fmt: skip
    cached = _static_entries.get(key)
    if cached is not None:
        return cached
    entry = _guardrail_entry_fields(outcome, [], direction)
    head = orjson.dumps({k: entry[k] for k in _ENTRY_HEAD})
    tail = orjson.dumps({k: entry[k] for k in _ENTRY_TAIL})
    cached = (head[:-1] + b",", b"," + tail[1:])
    if len(_static_entries) < MAX_STATIC_ENTRIES:
        _static_entries[key] = cached
    return cached


_ENTRY_HEAD = (
    "guardrail_name", "guardrail_provider", "guardrail_mode", "guardrail_status",
    "guardrail_response", "guardrail_version",
)  # fmt: skip
_ENTRY_TAIL = ("masked_entity_count",)


def _guardrail_entry(
    record: CallRecord, outcome: GuardrailOutcome, findings: list[Finding]
) -> dict[str, Any]:
    entry = _guardrail_entry_fields(outcome, findings, record.direction)
    # Every guardrail of a call runs in one scan pass: they share its timing.
    return {
        **{k: entry[k] for k in _ENTRY_HEAD},
        "start_time": record.start_time,
        "end_time": record.end_time or record.start_time,
        "duration": record.scan_ns / 1e9,
        "masked_entity_count": entry["masked_entity_count"],
    }


def _guardrail_entry_fields(
    outcome: GuardrailOutcome, findings: list[Finding], direction: Any
) -> dict[str, Any]:
    """An entry's fields other than the call's times."""
    response: dict[str, Any] = {
        # Enum members as they are: orjson writes their values, and faster
        # than a .value lookup per field.
        "status": outcome.status,
        "action": outcome.action,
        "finding_count": outcome.finding_count,
        "rule_ids": sorted({_label(f.rule_id) for f in findings}),
        "categories": sorted({_label(f.category) for f in findings}),
    }
    if outcome.reason:
        response["reason"] = storable(outcome.reason)
    response["mode"] = outcome.mode  # dry_run: did not count in the decision
    response["fail_mode"] = outcome.fail_mode
    masked: dict[str, int] = {}
    for finding in findings:
        if finding.action is Action.MASK:
            category = _label(finding.category)
            masked[category] = masked.get(category, 0) + 1

    return {
        "guardrail_name": _label(outcome.name),
        "guardrail_provider": PROVIDER,
        "guardrail_mode": direction or "",
        "guardrail_status": _LITELLM_STATUS[outcome.status],
        "guardrail_response": response,
        "guardrail_version": outcome.version,
        "masked_entity_count": masked,
    }


def _finding_entry(finding: Finding) -> dict[str, Any]:
    return {
        "guardrail": _label(finding.guardrail),
        "rule_id": _label(finding.rule_id),
        "category": _label(finding.category),
        "path": _label(finding.path),
        "json_pointer": redacted_pointer(finding.json_pointer),
        "start": finding.start,
        "end": finding.end,
    }


def _item_entry(item: RegisterItem) -> dict[str, Any]:
    name = storable(item.name)
    if not item.accepted:
        return {"name": name, "result": "refused", "reason": storable(item.reason)}
    return {
        "name": name,
        "result": "accepted",
        "version": item.version,
        "validate_only": item.validate_only,
    }


def _metadata(record: CallRecord) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "guardrail_information": _guardrail_information(record),
        "applied_guardrails": [_label(n) for n in record.applied_guardrails],
        "findings": [_finding_entry(f) for f in record.findings[:MAX_FINDINGS]],
        "direction": record.direction or "",
        "method": record.method,
        "chunk_count": record.chunk_count,
        "stream_bytes": record.stream_bytes,
        "stream_end": record.stream_end,
    }
    if record.call_type in ("check", "check_stream") and record.direction is not None:
        # The call resolved to no guardrails: its ALLOW says nothing.
        metadata["no_guardrails"] = record.no_guardrails
        metadata["policy_layers"] = [storable(p) for p in record.policy_layers]
    if len(record.findings) > MAX_FINDINGS:
        metadata["findings_truncated"] = len(record.findings) - MAX_FINDINGS
    if record.register_item_count:
        metadata["register_items"] = [_item_entry(i) for i in record.register_items]
        missing = record.register_item_count - len(record.register_items)
        if missing:
            metadata["register_items_truncated"] = missing
    if record.error_reason or record.grpc_code != "OK":
        metadata["error"] = {
            "reason": storable(record.error_reason),
            "message": storable(record.error_message),
        }

    return metadata


def _content(record: CallRecord, store_content: bool) -> tuple[str, str]:
    """(messages, response): the masked payload, only when the operator opted in."""
    if not store_content or record.masked_content is None:
        return _EMPTY_JSON, _EMPTY_JSON
    text = storable(record.masked_content())
    output = record.direction is not None and record.direction.value == "output"

    return (_EMPTY_JSON, text) if output else (text, _EMPTY_JSON)


def to_row(record: CallRecord, *, store_content: bool = False) -> SpendLogRow:
    """A record as a ``spend_logs`` row, in ``COLUMNS`` order."""
    caller = record.caller
    failed = record.grpc_code != "OK"
    messages, response = _content(record, store_content)

    return (
        storable(record.request_id),
        record.call_type,
        storable(record.api_key_hash),
        storable(caller.user),
        storable(caller.team_id),
        storable(caller.end_user),
        storable(caller.session_id),
        record.start_time,
        record.end_time or record.start_time,
        record.duration_ns / 1e6,
        "failure" if failed else "success",
        _dumps([storable(t) for t in caller.request_tags]),
        _dumps(_metadata(record)),
        messages,
        response,
        storable(record.client_request_id),
        record.grpc_code,
        "" if failed or record.decision is None else record.decision.value,
        record.registry_generation,
        record.worker,
    )


def check_row(row: Sequence[Any]) -> SpendLogRow:
    """A row read back from the journal, checked for shape."""
    if len(row) != len(COLUMNS):
        raise ValueError(f"journal row has {len(row)} values, expected {len(COLUMNS)}")
    return tuple(row)
