"""Tool-call JSON a hostile model or caller can shape: duplicate keys, lone surrogates.

Both are valid input to Python's JSON parser, so they reach the walk over keys
and values; these tests run them through a real server on a real socket.
"""

from __future__ import annotations

import json

from guardrail.v1 import guardrail_pb2 as pb

from tests.tokens import aws_access_key_id, email


def _tool_call(arguments: str) -> pb.CheckRequest:
    call = pb.ToolCall(id="call_1", name="f", arguments_json=arguments)
    message = pb.Message(role="assistant", tool_calls=[call])
    return pb.CheckRequest(payload=pb.Payload(messages=[message]))


def _streamed_tool_call(arguments: str) -> list[pb.CheckStreamRequest]:
    delta = pb.ToolCallDelta(index=0, id="call_1", name="f", arguments_fragment=arguments)
    return [
        pb.CheckStreamRequest(open=pb.StreamOpen(direction=pb.DIRECTION_OUTPUT)),
        pb.CheckStreamRequest(chunk=pb.StreamChunk(tool_calls=[delta])),
        pb.CheckStreamRequest(chunk=pb.StreamChunk(finish_reason="tool_calls")),
    ]


async def test_secret_under_an_earlier_duplicate_key_blocks(stub):
    """json.loads keeps only the last duplicate; the first one's value is scanned too."""
    arguments = f'{{"key": "{aws_access_key_id()}", "key": "x"}}'

    response = await stub.Check(_tool_call(arguments))

    assert response.decision == pb.DECISION_BLOCK
    assert {f.rule_id for f in response.findings} == {"aws-access-key-id"}


async def test_lone_surrogate_key_is_masked_not_internal(stub):
    """A \\ud800 escape in a key once made the JSON pointer unencodable (INTERNAL)."""
    arguments = f'{{"\\ud800": "{email()}"}}'

    response = await stub.Check(_tool_call(arguments))

    assert response.decision == pb.DECISION_MASK
    masked = response.masked_payload.messages[0].tool_calls[0].arguments_json
    assert email() not in masked
    assert json.loads(masked) == {"\ud800": "[EMAIL]"}


async def test_lone_surrogate_value_is_masked_not_internal(stub):
    """A masked value holding a lone surrogate once failed to serialize (INTERNAL)."""
    arguments = f'{{"to": "\\udc00 {email()}"}}'

    response = await stub.Check(_tool_call(arguments))

    assert response.decision == pb.DECISION_MASK
    masked = response.masked_payload.messages[0].tool_calls[0].arguments_json
    assert json.loads(masked) == {"to": "\udc00 [EMAIL]"}


async def test_streamed_tool_call_with_lone_surrogate_is_masked(stub):
    """CheckStream masks the same arguments whole instead of failing the stream."""
    arguments = f'{{"\\ud800": "{email()}"}}'

    responses = [r async for r in stub.CheckStream(_streamed_tool_call(arguments))]

    calls = [r.tool_call for r in responses if r.WhichOneof("kind") == "tool_call"]
    assert len(calls) == 1 and calls[0].masked
    assert json.loads(calls[0].arguments_json) == {"\ud800": "[EMAIL]"}
    assert responses[-1].verdict.decision == pb.DECISION_MASK
