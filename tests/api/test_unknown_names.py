"""A guardrail name that is no valid name is not echoed: it may be anything the
caller pasted by mistake, a credential included."""

from __future__ import annotations

import grpc
import pytest
from guardrail.v1 import guardrail_pb2 as pb

from tests.conftest import spend_rows
from tests.tokens import aws_access_key_id


async def test_an_invalid_unknown_name_is_not_echoed(server, stub):
    key = aws_access_key_id()
    request = pb.CheckRequest(payload=pb.Payload(text="hello"), guardrails=["pii", key])

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Check(request)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert key not in (raised.value.details() or "")
    assert key not in str(raised.value.trailing_metadata())
    await server.writer.flush()
    assert all(key not in str(row) for row in spend_rows(server))


async def test_a_valid_unknown_name_is_named(stub):
    request = pb.CheckRequest(payload=pb.Payload(text="hello"), guardrails=["no_such_one"])

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Check(request)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no_such_one" in (raised.value.details() or "")


async def test_get_and_delete_do_not_echo_an_invalid_name(stub):
    key = aws_access_key_id(seed=3)
    for call in (
        stub.GetGuardrail(pb.GetGuardrailRequest(name=key)),
        stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name=key)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert key not in (raised.value.details() or "")
        assert key not in str(raised.value.trailing_metadata())
