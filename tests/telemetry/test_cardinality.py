"""Series on /metrics stay fixed whatever callers, keys and names arrive."""

from __future__ import annotations

import asyncio
import random
import urllib.request
from typing import Any, NamedTuple

import grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from service.api.call_context import current_call
from service.api.interceptors import RecordingInterceptor
from service.app import start_server
from service.telemetry.logging import AccessLog
from service.telemetry.metrics import Metrics
from service.types import (
    Action,
    Caller,
    Decision,
    Direction,
    Finding,
    GuardrailOutcome,
    GuardrailStatus,
    Severity,
)
from tests.conftest import make_settings

from .conftest import ListSink

CHECK = "/guardrail.v1.GuardrailService/Check"
GRPC_LABELS = {"grpc_type", "grpc_service", "grpc_method"}
ALLOWED_LABEL_NAMES = GRPC_LABELS | {
    "grpc_code", "decision", "guardrail_name", "status", "category", "result",
    "label", "le",
}  # fmt: skip
DIRECT_CALLS = 100_000
SERVER_CALLS = 2_000
UNKNOWN_NAMES = 10_000


class Details(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class Context:
    """The ServicerContext calls the recording interceptor makes."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def invocation_metadata(self):
        return self.metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        return None

    def code(self):
        return None


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def assert_allowlisted(series) -> None:
    for name, labels in series:
        assert {key for key, _ in labels} <= ALLOWED_LABEL_NAMES, name


def unknown_outcomes(rng: random.Random, names: list[str]):
    chosen = rng.sample(names, 2)
    outcomes = [
        GuardrailOutcome(n, 1, GuardrailStatus.INTERVENED, Action.BLOCK, 1) for n in chosen
    ]
    findings = [
        Finding(n, f"rule-{n}", f"category-{n}", Severity.HIGH, Action.BLOCK, "text", 0, 4)
        for n in chosen
    ]
    return outcomes, findings


async def drive_interceptor(metrics: Metrics, calls: int) -> None:
    """``calls`` calls through the wrapped handler, each from a new caller and key."""
    rng = random.Random(7)
    names = [f"unknown-{rng.getrandbits(64):016x}" for _ in range(UNKNOWN_NAMES)]

    async def handler(request, context):
        record = current_call.get()
        record.caller = Caller(user=f"user-{record.client_request_id}", team_id=request)
        record.direction = Direction.INPUT
        record.decision = Decision.BLOCK
        record.outcomes, record.findings = unknown_outcomes(rng, names)
        return b"ok"

    interceptor = RecordingInterceptor(metrics, None, ListSink(), access_log=AccessLog())
    interceptor.spend_log.submit = lambda record: None  # keep memory flat
    handler_obj = grpc.unary_unary_rpc_method_handler(handler)

    async def continuation(details):
        return handler_obj

    wrapped = await interceptor.intercept_service(continuation, Details(CHECK, ()))
    for i in range(calls):
        metadata = (
            ("authorization", f"Bearer key-{i}"),
            ("x-request-id", f"client-{i}"),
            ("traceparent", f"00-{rng.getrandbits(128):032x}-{i + 1:016x}-01"),
        )
        await wrapped.unary_unary(f"tenant-{i}", Context(metadata))


async def drive_server(port: int, calls: int) -> None:
    """Real RPCs with new keys, callers and unknown guardrail names each."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GuardrailServiceStub(channel)

        async def one(i: int) -> None:
            request = pb.CheckRequest(
                payload=pb.Payload(text=f"hello from tenant {i}"),
                guardrails=["pii"] if i % 2 else [f"made-up-{i}"],
                caller=pb.Caller(user=f"user-{i}", team_id=f"team-{i}"),
                client_request_id=f"client-{i}",
            )
            metadata = (("authorization", f"Bearer server-key-{i}"),)
            try:
                await stub.Check(request, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND

        for start in range(0, calls, 100):
            await asyncio.gather(*(one(i) for i in range(start, start + 100)))


async def test_series_stay_fixed_under_new_callers_keys_and_unknown_names(tmp_path):
    """100,000 direct and 2,000 real calls with fresh callers, keys and 10,000
    unknown guardrail names add no series, and every label name is allowlisted."""
    running = await start_server(make_settings(tmp_path))
    try:
        before = scrape(running.metrics_port)
        await drive_interceptor(running.metrics, DIRECT_CALLS)
        await drive_server(running.port, SERVER_CALLS)
        after = scrape(running.metrics_port)
    finally:
        await running.stop(grace=1.0)

    handled = sum(
        value for (name, labels), value in after.items()
        if name == "grpc_server_handled_total" and ("grpc_method", "Check") in labels
    )  # fmt: skip
    other = after[
        ("guardrail_evaluations_total", (("guardrail_name", "other"), ("status", "intervened")))
    ]
    assert set(after) == set(before)
    assert_allowlisted(after)
    assert handled == DIRECT_CALLS + SERVER_CALLS
    assert other == 2 * DIRECT_CALLS
