"""Tool-call JSON a hostile model or caller can shape, through a real server."""

from __future__ import annotations

from guardrail.v1 import guardrail_pb2 as pb

from tests.tokens import aws_access_key_id


def _tool_call(arguments: str) -> pb.CheckRequest:
    call = pb.ToolCall(id="call_1", name="f", arguments_json=arguments)
    message = pb.Message(role="assistant", tool_calls=[call])
    return pb.CheckRequest(payload=pb.Payload(messages=[message]))


async def test_secret_under_an_earlier_duplicate_key_blocks(stub):
    """json.loads keeps only the last duplicate; the first one's value is scanned too."""
    arguments = f'{{"key": "{aws_access_key_id()}", "key": "x"}}'

    response = await stub.Check(_tool_call(arguments))

    assert response.decision == pb.DECISION_BLOCK
    assert {f.rule_id for f in response.findings} == {"aws-access-key-id"}
