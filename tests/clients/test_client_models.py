"""Conversions from the service's protos to the client's frozen results."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import code_pb2, status_pb2
from guardrail.v1 import guardrail_pb2 as pb

from guardrail_client import (
    Action,
    CheckResult,
    Decision,
    GuardrailStatus,
    InvalidArgumentError,
    Severity,
    StreamRelease,
    StreamVerdict,
    check_result_from_proto,
    finding_from_proto,
    register_result_from_proto,
    stream_event_from_proto,
)


def _finding(**location):
    return pb.Finding(
        guardrail="pii",
        rule_id="email",
        category="EMAIL_ADDRESS",
        severity=pb.SEVERITY_MEDIUM,
        action=pb.ACTION_MASK,
        location=pb.Location(**location),
        redacted_preview="j***@example.com",
        decoded=True,
    )


def _masked_response():
    return pb.CheckResponse(
        request_id="r-1",
        decision=pb.DECISION_MASK,
        findings=[_finding(path="text", start=8, end=24)],
        guardrail_results=[
            pb.GuardrailResult(
                name="pii",
                version=3,
                status=pb.GUARDRAIL_STATUS_INTERVENED,
                finding_count=1,
                action=pb.ACTION_MASK,
                score=1.0,
            )
        ],
        masked_payload=pb.Payload(text="mail me [EMAIL_ADDRESS]"),
        registry_generation=42,
        scan_duration=duration_pb2.Duration(seconds=0, nanos=2_500_000),
        applied_guardrails=["pii", "secrets"],
    )


def test_finding_flattens_location_and_names_enums():
    """A Finding carries the location's fields and enum names without prefixes."""
    finding = finding_from_proto(
        _finding(path="messages[0].tool_calls[0].arguments_json", json_pointer="/to", start=1, end=5)
    )
    assert finding.severity is Severity.MEDIUM
    assert finding.action is Action.MASK
    assert (finding.path, finding.json_pointer, finding.start, finding.end) == (
        "messages[0].tool_calls[0].arguments_json",
        "/to",
        1,
        5,
    )
    assert finding.decoded is True
    assert finding.redacted_preview == "j***@example.com"


def test_check_result_from_masked_response():
    """A MASK answer gives the masked text, payload, duration and guardrail results."""
    result = check_result_from_proto(_masked_response())
    assert result.decision is Decision.MASK
    assert result.decision == "MASK"
    assert result.masked_text == "mail me [EMAIL_ADDRESS]"
    assert result.masked_payload == pb.Payload(text="mail me [EMAIL_ADDRESS]")
    assert result.scan_duration_s == pytest.approx(0.0025)
    assert result.registry_generation == 42
    assert result.applied_guardrails == ("pii", "secrets")
    assert result.guardrail_results[0].status is GuardrailStatus.INTERVENED
    assert result.guardrail_results[0].version == 3
    assert not result.blocked and not result.allowed


def test_check_result_without_masked_payload_has_none():
    """Without a masked payload, masked_text and masked_payload are None."""
    result = check_result_from_proto(pb.CheckResponse(decision=pb.DECISION_ALLOW))
    assert result.masked_text is None
    assert result.masked_payload is None
    assert result.allowed and not result.blocked


@pytest.mark.parametrize(
    ("decision", "blocked", "allowed"),
    [
        (pb.DECISION_ALLOW, False, True),
        (pb.DECISION_FLAG, False, True),
        (pb.DECISION_MASK, False, False),
        (pb.DECISION_BLOCK, True, False),
    ],
)
def test_blocked_and_allowed_follow_the_decision(decision, blocked, allowed):
    """``blocked`` is BLOCK only; ``allowed`` is ALLOW or monitor-only FLAG."""
    result = check_result_from_proto(pb.CheckResponse(decision=decision))
    assert (result.blocked, result.allowed) == (blocked, allowed)


def test_unknown_enum_value_becomes_unspecified():
    """A decision number newer than the client maps to UNSPECIFIED, not a crash."""
    result = check_result_from_proto(pb.CheckResponse(decision=99))
    assert result.decision is Decision.UNSPECIFIED


def test_results_are_frozen():
    """Results cannot be changed after conversion."""
    result = check_result_from_proto(_masked_response())
    assert isinstance(result, CheckResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.request_id = "other"


def test_stream_events_convert_by_kind():
    """A release becomes StreamRelease and a verdict StreamVerdict."""
    release = stream_event_from_proto(
        pb.CheckStreamResponse(
            release=pb.StreamRelease(choice_index=1, text="hi", findings=[_finding(path="text")])
        )
    )
    verdict = stream_event_from_proto(
        pb.CheckStreamResponse(
            verdict=pb.StreamVerdict(request_id="s", decision=pb.DECISION_BLOCK, chunk_count=3)
        )
    )
    assert isinstance(release, StreamRelease)
    assert (release.choice_index, release.text, len(release.findings)) == (1, "hi", 1)
    assert isinstance(verdict, StreamVerdict)
    assert verdict.blocked and verdict.chunk_count == 3


def test_empty_stream_response_is_rejected():
    """A stream answer that carries neither kind raises ValueError."""
    with pytest.raises(ValueError, match="no known kind"):
        stream_event_from_proto(pb.CheckStreamResponse())


def test_register_result_accepted():
    """An accepted answer carries version, generation and the dry-run flag."""
    answer = pb.RegisterResponse(
        accepted=pb.RegisterAccepted(name="x", version=2, registry_generation=9, validate_only=True)
    )
    result = register_result_from_proto(answer, "x")
    assert result.accepted and result.error is None
    assert (result.version, result.registry_generation, result.validate_only) == (2, 9, True)


def test_register_result_error_is_a_guardrail_rpc_error():
    """An in-band error answer becomes the matching GuardrailRpcError subclass."""
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad pattern")
    result = register_result_from_proto(pb.RegisterResponse(error=status), "broken")
    assert result.name == "broken" and not result.accepted
    assert isinstance(result.error, InvalidArgumentError)
    assert result.error.code is grpc.StatusCode.INVALID_ARGUMENT


def test_register_result_empty_answer_is_a_failure():
    """An answer with neither result is reported as a failed item, never accepted."""
    result = register_result_from_proto(pb.RegisterResponse(), "x")
    assert not result.accepted
    assert result.error is not None and result.error.code is grpc.StatusCode.UNKNOWN
