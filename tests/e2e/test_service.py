"""Every RPC and every documented error against a real server on a real socket."""

from __future__ import annotations

import json

import grpc
import pytest
from prometheus_client import generate_latest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from guardrail.v1 import guardrail_pb2 as pb

from tests.conftest import spend_rows
from tests.tokens import aws_access_key_id, email

BENIGN = "Could you summarise the plot of Pride and Prejudice in three sentences?"


def _details(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no google.rpc.Status in the trailers")


def _unpack(status: status_pb2.Status, kind: type) -> list:
    found = []
    for detail in status.details:
        message = kind()
        if detail.Unpack(message):
            found.append(message)
    return found


def _user(text: str) -> pb.Message:
    return pb.Message(role="user", content=[pb.ContentPart(text=text)])


class TestCheck:
    async def test_benign_prompt_is_allowed(self, stub):
        """A plain benign prompt runs every default guardrail and is allowed."""
        response = await stub.Check(pb.CheckRequest(payload=pb.Payload(text=BENIGN)))

        assert response.decision == pb.DECISION_ALLOW
        assert not response.findings
        assert {"secrets", "pii", "prompt_injection"} <= set(response.applied_guardrails)
        assert all(
            r.status == pb.GUARDRAIL_STATUS_PASSED for r in response.guardrail_results
        )
        assert response.request_id

    async def test_secret_in_third_part_of_second_message_blocks(self, stub):
        """A key hidden in the third content part of the second message is found there."""
        second = pb.Message(
            role="user",
            content=[
                pb.ContentPart(text="first part"),
                pb.ContentPart(image_url="https://example.org/cat.png"),
                pb.ContentPart(text=f"my key is {aws_access_key_id()} thanks"),
            ],
        )
        payload = pb.Payload(messages=[_user("hello"), second])

        response = await stub.Check(pb.CheckRequest(payload=payload))

        assert response.decision == pb.DECISION_BLOCK
        paths = {f.location.path for f in response.findings if f.guardrail == "secrets"}
        assert paths == {"messages[1].content[2].text"}
        finding = response.findings[0]
        assert finding.location.start == len("my key is ")
        assert aws_access_key_id() not in finding.redacted_preview

    async def test_secret_in_tool_call_arguments_blocks(self, stub):
        """A key inside a tool call's JSON arguments is found with its JSON pointer."""
        arguments = json.dumps({"query": "deploy", "env": {"AWS_KEY": aws_access_key_id()}})
        call = pb.ToolCall(id="call_1", name="deploy", arguments_json=arguments)
        payload = pb.Payload(
            messages=[_user("deploy it"), pb.Message(role="assistant", tool_calls=[call])]
        )

        response = await stub.Check(
            pb.CheckRequest(payload=payload, direction=pb.DIRECTION_OUTPUT)
        )

        assert response.decision == pb.DECISION_BLOCK
        finding = next(f for f in response.findings if f.guardrail == "secrets")
        assert finding.location.path == "messages[1].tool_calls[0].arguments_json"
        assert finding.location.json_pointer == "/env/AWS_KEY"

    async def test_email_is_masked_in_place(self, stub):
        """An e-mail address is replaced in the masked payload, the rest kept."""
        text = f"Please write to {email()} about the invoice."

        response = await stub.Check(pb.CheckRequest(payload=pb.Payload(text=text)))

        assert response.decision == pb.DECISION_MASK
        assert response.masked_payload.text == "Please write to [EMAIL] about the invoice."

    async def test_unknown_guardrail_is_not_found(self, stub):
        """Naming a guardrail that does not exist fails; it is never an allow."""
        request = pb.CheckRequest(
            payload=pb.Payload(text=BENIGN), guardrails=["secrets", "no-such-guardrail"]
        )

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Check(request)

        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        status = _details(raised.value)
        info = _unpack(status, error_details_pb2.ErrorInfo)
        assert info[0].reason == "GUARDRAIL_NOT_FOUND"
        assert info[0].domain == "guardrail.v1"
        resources = _unpack(status, error_details_pb2.ResourceInfo)
        assert [r.resource_name for r in resources] == ["no-such-guardrail"]

    async def test_empty_payload_is_invalid(self, stub):
        """A payload with nothing to scan is INVALID_ARGUMENT naming the field."""
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Check(pb.CheckRequest(payload=pb.Payload()))

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        bad = _unpack(_details(raised.value), error_details_pb2.BadRequest)
        assert bad[0].field_violations[0].field == "payload"


def _guardrail(name: str, pattern: str, **rule: object) -> pb.Guardrail:
    values = {"must_match": ["order ZX-1234 shipped"], "must_not_match": ["no order"]}
    values.update(rule)
    return pb.Guardrail(
        name=name,
        action=pb.ACTION_BLOCK,
        rules=[
            pb.Rule(id="order-id", category="internal", pattern=pattern, **values)
        ],
    )


async def _register(stub, *items: pb.RegisterRequest) -> list[pb.RegisterResponse]:
    call = stub.Register(iter(items))
    return [answer async for answer in call]


class TestRegister:
    async def test_register_then_check_enforces(self, stub):
        """A registered guardrail runs on the very next Check that names it."""
        [answer] = await _register(
            stub, pb.RegisterRequest(guardrail=_guardrail("orders", r"\bZX-\d{4}\b"))
        )

        assert answer.accepted.name == "orders"
        assert answer.accepted.version == 1
        response = await stub.Check(
            pb.CheckRequest(payload=pb.Payload(text="ref ZX-9876"), guardrails=["orders"])
        )
        assert response.decision == pb.DECISION_BLOCK
        assert response.registry_generation == answer.accepted.registry_generation

    async def test_unsupported_pattern_names_field_and_keeps_previous(self, stub):
        """A lookahead is rejected with RE2's message and version 1 stays in force."""
        good = pb.RegisterRequest(guardrail=_guardrail("orders", r"\bZX-\d{4}\b"))
        bad_guardrail = _guardrail("orders", r"\bZX-\d{4}\b")
        bad_guardrail.rules.append(
            pb.Rule(
                id="lookahead",
                category="internal",
                pattern=r"ZX-(?=\d)",
                must_match=["ZX-1"],
            )
        )
        answers = await _register(stub, good, pb.RegisterRequest(guardrail=bad_guardrail))

        assert answers[0].HasField("accepted")
        error = answers[1].error
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        [bad] = _unpack(error, error_details_pb2.BadRequest)
        fields = {v.field: v.description for v in bad.field_violations}
        assert "rules[1].pattern" in fields
        assert "(?=" in fields["rules[1].pattern"]
        got = await stub.GetGuardrail(pb.GetGuardrailRequest(name="orders"))
        assert got.guardrail.version == 1
        assert len(got.guardrail.rules) == 1

    async def test_guardrail_failing_its_samples_is_rejected(self, stub):
        """A rule that does not match its own must_match sample is refused."""
        broken = _guardrail("orders", r"\bQQ-\d{4}\b")

        [answer] = await _register(stub, pb.RegisterRequest(guardrail=broken))

        assert answer.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        [bad] = _unpack(answer.error, error_details_pb2.BadRequest)
        assert bad.field_violations[0].field.startswith("rules[0].must_match")
        [info] = _unpack(answer.error, error_details_pb2.ErrorInfo)
        assert info.metadata["request_id"]

    async def test_bad_item_does_not_end_the_stream(self, stub):
        """Items after a rejected one are still answered and stored."""
        answers = await _register(
            stub,
            pb.RegisterRequest(guardrail=_guardrail("first", r"\bZX-\d{4}\b")),
            pb.RegisterRequest(guardrail=_guardrail("Bad Name", r"\bZX-\d{4}\b")),
            pb.RegisterRequest(guardrail=_guardrail("third", r"\bZX-\d{4}\b")),
        )

        assert [a.WhichOneof("result") for a in answers] == ["accepted", "error", "accepted"]

    async def test_validate_only_stores_nothing(self, stub):
        """A dry run answers accepted but the guardrail is not registered."""
        [answer] = await _register(
            stub,
            pb.RegisterRequest(
                guardrail=_guardrail("dry", r"\bZX-\d{4}\b"), validate_only=True
            ),
        )

        assert answer.accepted.validate_only
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetGuardrail(pb.GetGuardrailRequest(name="dry"))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_replace_bumps_version_and_changes_behaviour(self, stub):
        """Registering the same name again bumps its version and enforces the new rules."""
        await _register(stub, pb.RegisterRequest(guardrail=_guardrail("orders", r"\bZX-\d{4}\b")))
        v2 = _guardrail(
            "orders", r"\bYY-\d{4}\b", must_match=["YY-1234"], must_not_match=["ZX-1234"]
        )
        [answer] = await _register(stub, pb.RegisterRequest(guardrail=v2))

        assert answer.accepted.version == 2
        old = await stub.Check(
            pb.CheckRequest(payload=pb.Payload(text="ZX-1234"), guardrails=["orders"])
        )
        assert old.decision == pb.DECISION_ALLOW


class TestRegistryReads:
    async def test_list_includes_builtins(self, stub):
        """Every built-in guardrail is listed, marked built in."""
        listed = await stub.ListGuardrails(pb.ListGuardrailsRequest())

        names = {g.name for g in listed.guardrails}
        assert {
            "secrets", "pii", "prompt_injection", "jailbreak",
            "unicode_smuggling", "mcp_tool_poisoning",
        } <= names
        assert all(g.builtin for g in listed.guardrails)
        assert all(not g.rules for g in listed.guardrails)

    async def test_delete_then_check_is_not_found(self, stub):
        """A deleted guardrail no longer runs: naming it is NOT_FOUND."""
        await _register(stub, pb.RegisterRequest(guardrail=_guardrail("orders", r"\bZX-\d{4}\b")))

        deleted = await stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name="orders"))

        assert deleted.registry_generation > 1
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Check(
                pb.CheckRequest(payload=pb.Payload(text="ZX-1234"), guardrails=["orders"])
            )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_builtin_cannot_be_deleted(self, stub):
        """Deleting a built-in guardrail is refused with FAILED_PRECONDITION."""
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name="secrets"))

        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def _stream(*requests: pb.CheckStreamRequest):
    return iter(requests)


def _chunks(*texts: str, guardrails: tuple[str, ...] = ()) -> list[pb.CheckStreamRequest]:
    opened = pb.CheckStreamRequest(
        open=pb.StreamOpen(direction=pb.DIRECTION_OUTPUT, guardrails=guardrails)
    )
    return [opened, *(pb.CheckStreamRequest(chunk=pb.StreamChunk(text=t)) for t in texts)]


class TestCheckStream:
    async def test_email_split_across_chunks_is_masked(self, stub):
        """An e-mail split over two chunks is masked; no prefix of it is released."""
        address = email()
        text = "Contact " + address + " for details. " + "x" * 300
        cut = len("Contact ") + 5
        answers = [a async for a in stub.CheckStream(_stream(*_chunks(text[:cut], text[cut:])))]

        released = "".join(a.release.text for a in answers if a.HasField("release"))
        assert released == text.replace(address, "[EMAIL]")
        assert address[:5] not in released
        verdict = answers[-1].verdict
        assert verdict.decision == pb.DECISION_MASK
        assert verdict.chunk_count == 2

    async def test_key_split_across_three_chunks_blocks(self, stub):
        """A cloud key split over three chunks blocks the stream before any of it leaves."""
        key = aws_access_key_id()
        text = "Here is the key: " + key + " use it well."
        parts = [text[:20], text[20:28], text[28:]]
        answers = [a async for a in stub.CheckStream(_stream(*_chunks(*parts)))]

        released = "".join(a.release.text for a in answers if a.HasField("release"))
        assert key[:4] not in released
        assert answers[-1].verdict.decision == pb.DECISION_BLOCK

    async def test_stream_must_open_first(self, stub):
        """A stream whose first message is a chunk is INVALID_ARGUMENT."""
        requests = [pb.CheckStreamRequest(chunk=pb.StreamChunk(text="hi"))]

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in stub.CheckStream(_stream(*requests)):
                pass

        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_health_and_reflection(server):
    """Health answers SERVING and reflection lists the guardrail service."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = [r async for r in reflect.ServerReflectionInfo(iter([request]))]

    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    services = {s.name for s in replies[0].list_services_response.service}
    assert "guardrail.v1.GuardrailService" in services


async def test_one_spend_log_row_per_rpc(server, stub):
    """Every RPC, failed ones included, leaves exactly one SpendLogs row."""
    text_request = pb.CheckRequest(payload=pb.Payload(text=BENIGN), client_request_id="c-1")
    await stub.Check(text_request)
    await stub.Check(pb.CheckRequest(payload=pb.Payload(text=f"key {aws_access_key_id()}")))
    for bad in (pb.CheckRequest(), pb.CheckRequest(payload=pb.Payload(text="x"), guardrails=["nope"])):
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Check(bad)
    await _register(stub, pb.RegisterRequest(guardrail=_guardrail("orders", r"\bZX-\d{4}\b")))
    await stub.ListGuardrails(pb.ListGuardrailsRequest())
    await stub.GetGuardrail(pb.GetGuardrailRequest(name="orders"))
    await stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name="orders"))
    async for _ in stub.CheckStream(_stream(*_chunks("hello ", "world"))):
        pass
    rpc_count = 9

    await server.writer.flush()
    rows = spend_rows(server)

    assert len(rows) == rpc_count
    assert len({r["request_id"] for r in rows}) == rpc_count
    codes = sorted(r["grpc_code"] for r in rows)
    assert codes.count("OK") == 7
    assert {"INVALID_ARGUMENT", "NOT_FOUND"} <= set(codes)
    decisions = {r["decision"] for r in rows if r["call_type"] == "check"}
    assert {"ALLOW", "BLOCK"} <= decisions
    assert any(r["client_request_id"] == "c-1" for r in rows)
    assert aws_access_key_id() not in json.dumps(rows, default=str)


async def test_metrics_label_registered_guardrails(server, stub):
    """Evaluations are counted under the guardrail's own name, not the overflow value."""
    await stub.Check(pb.CheckRequest(payload=pb.Payload(text=BENIGN)))

    text = generate_latest(server.metrics.registry).decode()
    assert 'guardrail_evaluations_total{guardrail_name="secrets",status="passed"} 1.0' in text


async def test_secret_used_as_a_json_key_stays_out_of_spend_logs(server, stub):
    """A key that is itself the secret is reported to the caller but hashed in the row."""
    arguments = json.dumps({aws_access_key_id(): {"region": "eu-west-1"}})
    call = pb.ToolCall(id="c", name="deploy", arguments_json=arguments)
    payload = pb.Payload(messages=[pb.Message(role="assistant", tool_calls=[call])])

    response = await stub.Check(pb.CheckRequest(payload=payload, direction=pb.DIRECTION_OUTPUT))

    assert response.decision == pb.DECISION_BLOCK
    assert any(aws_access_key_id() in f.location.json_pointer for f in response.findings)
    await server.writer.flush()
    assert aws_access_key_id() not in json.dumps(spend_rows(server), default=str)
