"""API keys on a real server: who gets in, with what scope, and what is recorded."""

from __future__ import annotations

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from tests.auth.conftest import Keys
from tests.auth.status import reason, rows_when

BENIGN = pb.CheckRequest(payload=pb.Payload(text="What is the capital of France?"))


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
async def channel(auth_server):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{auth_server.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel):
    return pb_grpc.GuardrailServiceStub(channel)


async def test_call_without_key_is_unauthenticated_and_recorded(auth_server, stub, spans):
    """No key: UNAUTHENTICATED with ErrorInfo; the refusal still gets its row,
    its metric and its span with that code."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(BENIGN, timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert reason(caught.value) == "UNAUTHENTICATED"
    (row,) = await rows_when(auth_server, 1)
    assert row["grpc_code"] == "UNAUTHENTICATED"
    assert row["api_key"] == ""
    (span,) = spans.get_finished_spans()
    assert span.attributes["rpc.response.status_code"] == "UNAUTHENTICATED"
    url = f"http://127.0.0.1:{auth_server.metrics_port}/metrics"
    async with httpx.AsyncClient() as client:
        exposition = (await client.get(url, timeout=5)).text
    handled = [
        line
        for line in exposition.splitlines()
        if line.startswith("grpc_server_handled_total")
        and 'grpc_method="Check"' in line
        and 'grpc_code="UNAUTHENTICATED"' in line
    ]
    assert handled and handled[0].endswith(" 1.0"), handled


async def test_unknown_key_is_unauthenticated(auth_server, stub):
    """A key not in the file: UNAUTHENTICATED; the row holds only its hash prefix."""
    stranger = "gr_not-a-configured-key-0123456789abcdefghij"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(BENIGN, metadata=bearer(stranger), timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    (row,) = await rows_when(auth_server, 1)
    assert row["api_key"] == Keys.prefix(stranger)
    assert stranger not in repr(row)


async def test_check_key_cannot_register_or_read_admin(auth_server, stub, keys):
    """A check-only key: PERMISSION_DENIED on Register, List, Get, Delete, History."""
    spec = pb.Guardrail(name="mine")

    async def register():
        async for _ in stub.Register(
            iter([pb.RegisterRequest(guardrail=spec)]),
            metadata=bearer(keys.check),
            timeout=5,
        ):
            pass

    calls = [
        register(),
        stub.ListGuardrails(pb.ListGuardrailsRequest(), metadata=bearer(keys.check), timeout=5),
        stub.GetGuardrail(pb.GetGuardrailRequest(name="secrets"),
                          metadata=bearer(keys.check), timeout=5),
        stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name="x"),
                             metadata=bearer(keys.check), timeout=5),
        stub.GetGuardrailHistory(pb.GetGuardrailHistoryRequest(name="secrets"),
                                 metadata=bearer(keys.check), timeout=5),
    ]  # fmt: skip
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert reason(caught.value) == "PERMISSION_DENIED"


async def test_admin_only_key_cannot_check(stub, keys):
    """An admin-only key: PERMISSION_DENIED on Check and CheckStream."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Check(BENIGN, metadata=bearer(keys.admin), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    stream = stub.CheckStream(
        iter([pb.CheckStreamRequest(open=pb.StreamOpen())]),
        metadata=bearer(keys.admin),
        timeout=5,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stream:
            pass
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_admin_key_reads_the_registry(stub, keys):
    listed = await stub.ListGuardrails(
        pb.ListGuardrailsRequest(), metadata=bearer(keys.admin), timeout=5
    )
    assert listed.guardrails


async def test_health_stays_open(channel):
    """Probes carry no key: health answers without one."""
    answer = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_good_key_is_recorded_only_as_hash_prefix(
    auth_server, stub, keys, spans, log_lines
):
    """The row, the access log and the span name the key by its hash prefix only."""
    answer = await stub.Check(BENIGN, metadata=bearer(keys.check), timeout=5)
    assert answer.decision == pb.DECISION_ALLOW
    (row,) = await rows_when(auth_server, 1)
    prefix = Keys.prefix(keys.check)
    assert row["api_key"] == prefix
    assert len(prefix) == 12
    logged = log_lines.getvalue()
    assert prefix in logged, logged[-3000:]  # the access line names the prefix
    exported = "".join(span.to_json() for span in spans.get_finished_spans())
    assert exported, "no span was exported"
    for where, text in (("row", repr(row)), ("log", logged), ("span", exported)):
        assert keys.check not in text, where
        assert keys.check[3:20] not in text, where


async def test_principal_is_set_on_the_call_record(auth_server, stub, keys):
    """H2's policies read the team/tenant from CallRecord.principal."""
    seen = []
    original = auth_server.writer.submit

    def keep(record):
        seen.append(record)
        original(record)

    auth_server.writer.submit = keep  # type: ignore[method-assign]
    await stub.Check(BENIGN, metadata=bearer(keys.check), timeout=5)
    (record,) = seen
    assert record.principal is not None
    assert (record.principal.team, record.principal.tenant) == ("red", "acme")
    assert record.principal.scopes == frozenset({"check"})
    assert record.principal.key_id == Keys.prefix(keys.check)


@pytest.mark.parametrize(
    ("method", "scope"),
    [
        ("Check", "check"),
        ("CheckStream", "check"),
        ("PinMcpTools", "check"),
        ("ListMcpPins", "check"),
        ("Register", "admin"),
        ("DeleteGuardrail", "admin"),
        ("ListGuardrails", "admin"),
        ("GetGuardrail", "admin"),
        ("GetGuardrailHistory", "admin"),
        ("ClearMcpPins", "admin"),
        ("SomeFutureMethod", "admin"),  # unknown methods: default deny to check keys
    ],
)
def test_every_method_needs_its_scope(method, scope):
    """Each GuardrailService method in the proto is classified; new ones need admin."""
    from service.api.interceptors.auth import required_scope

    assert required_scope(f"/guardrail.v1.GuardrailService/{method}") == scope


def test_scope_table_covers_the_proto():
    from service.api.interceptors.auth import CHECK_METHODS

    service = pb.DESCRIPTOR.services_by_name["GuardrailService"]
    assert CHECK_METHODS <= {m.name for m in service.methods}
