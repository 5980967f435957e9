"""Fail-open and fail-closed guardrails whose scan fails, end to end.

The scan budget (GUARDRAIL_SCAN_BUDGET_MS) is set to one nanosecond, so every
scan is out of time before it starts: a deterministic scan failure without
touching the engine.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from guardrail.v1 import guardrail_pb2 as pb

from tests.policy.conftest import row_for, scrape, write_policy

NO_TIME = 1e-6  # ms


def _check(team: str, *names: str) -> pb.CheckRequest:
    return pb.CheckRequest(
        payload=pb.Payload(text="write to ann@example.org"),
        guardrails=list(names),
        caller=pb.Caller(team_id=team),
    )


async def test_fail_open_is_visible_in_response_row_span_and_metric(
    tmp_path: Path, start, spans
) -> None:
    policy = write_policy(tmp_path, {"teams": {"lenient": {"fail_modes": {"pii": "open"}}}})
    server, stub = await start(policy_file=policy, scan_budget_ms=NO_TIME)

    response = await stub.Check(_check("lenient", "pii"))

    (result,) = response.guardrail_results
    assert result.status == pb.GUARDRAIL_STATUS_FAILED_OPEN
    assert result.fail_mode == pb.FAIL_MODE_OPEN
    assert "time limit" in result.reason
    assert response.decision == pb.DECISION_ALLOW  # what it could reach: nothing else ran

    row = await row_for(server, response.request_id)
    (info,) = row["metadata"]["guardrail_information"]
    assert info["guardrail_status"] != "success"
    assert info["guardrail_response"]["status"] == "failed_open"
    assert "time limit" in info["guardrail_response"]["reason"]
    assert row["grpc_code"] == "OK"

    children = [s for s in spans.get_finished_spans() if s.name == "apply_guardrail pii"]
    assert children, [s.name for s in spans.get_finished_spans()]
    child = children[-1]
    assert child.attributes["gen_ai.guardrail.status"] == "failed_open"
    assert child.attributes["error.type"] == "failed_open"
    assert any(e.name == "gen_ai.guardrail.failed_open" for e in child.events)
    parent = [s for s in spans.get_finished_spans() if s.name.endswith("/Check")][-1]
    assert parent.attributes["gen_ai.guardrail.failed_open_count"] == 1

    metrics = scrape(server)
    assert 'guardrail_evaluations_total{guardrail_name="pii",status="failed_open"} 1.0' in metrics


async def test_fail_closed_answers_deadline_exceeded_with_details(
    tmp_path: Path, start
) -> None:
    policy = write_policy(tmp_path, {"teams": {"lenient": {"fail_modes": {"pii": "open"}}}})
    server, stub = await start(policy_file=policy, scan_budget_ms=NO_TIME)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(_check("strict", "pii"))  # pii is fail-closed by default
    error = caught.value
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    status: status_pb2.Status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert infos, "a structured status with ErrorInfo"

    # a fail-open and a fail-closed guardrail together: the closed one decides
    with pytest.raises(grpc.aio.AioRpcError) as mixed:
        await stub.Check(_check("lenient", "pii", "secrets"))
    assert mixed.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    metrics = scrape(server)
    assert 'grpc_code="DEADLINE_EXCEEDED"' in metrics


async def test_without_a_budget_the_same_guardrail_passes(tmp_path: Path, start) -> None:
    policy = write_policy(tmp_path, {"teams": {"lenient": {"fail_modes": {"pii": "open"}}}})
    _, stub = await start(policy_file=policy)
    response = await stub.Check(_check("lenient", "pii"))
    (result,) = response.guardrail_results
    assert result.status == pb.GUARDRAIL_STATUS_INTERVENED
    assert response.decision == pb.DECISION_MASK


async def test_offloaded_scans_fail_by_the_same_rules(tmp_path: Path, start) -> None:
    policy = write_policy(tmp_path, {"teams": {"lenient": {"fail_modes": {"pii": "open"}}}})
    _, stub = await start(policy_file=policy, scan_budget_ms=NO_TIME, offload_chars=1)
    response = await stub.Check(_check("lenient", "pii"))
    (result,) = response.guardrail_results
    assert result.status == pb.GUARDRAIL_STATUS_FAILED_OPEN
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(_check("strict", "pii"))
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
