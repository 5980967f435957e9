"""check_stream with tool-call deltas, sync and asyncio, against a live server.

The arguments of a streamed tool call arrive in fragments; the service holds
them until the call is whole, scans them as JSON and answers one
StreamToolCall, masked in place where a masking guardrail matched.
"""

from __future__ import annotations

import json

import pytest

from guardrail_client import (
    AsyncGuardrailClient,
    Decision,
    GuardrailClient,
    StreamDelta,
    StreamRelease,
    StreamToolCall,
    StreamVerdict,
    ToolCallDelta,
)
from guardrail_client.testing import guardrail_server, guardrail_target  # noqa: F401

from tests.tokens import email

ADDRESS = email(seed=23)
ARGUMENTS = json.dumps({"to": ADDRESS, "subject": "hello"})


def deltas() -> list[StreamDelta | str]:
    """Text, then one tool call split in three fragments, then the finish."""
    cut = ARGUMENTS.index(ADDRESS) + 5  # split inside the address
    return [
        "Sending it now.",
        StreamDelta(tool_calls=(ToolCallDelta(index=0, id="call_1", name="send_mail"),)),
        StreamDelta(tool_calls=(ToolCallDelta(index=0, arguments_fragment=ARGUMENTS[:cut]),)),
        StreamDelta(tool_calls=(ToolCallDelta(index=0, arguments_fragment=ARGUMENTS[cut:]),)),
        StreamDelta(finish_reason="tool_calls"),
    ]


def check_events(events: list) -> None:
    calls = [e for e in events if isinstance(e, StreamToolCall)]
    assert len(calls) == 1
    call = calls[0]
    assert (call.choice_index, call.index, call.id, call.name) == (0, 0, "call_1", "send_mail")
    assert call.masked
    assert ADDRESS not in call.arguments_json
    assert json.loads(call.arguments_json)["subject"] == "hello"
    assert any(f.guardrail == "pii" and f.json_pointer == "/to" for f in call.findings)
    text = "".join(e.text for e in events if isinstance(e, StreamRelease))
    assert text == "Sending it now."
    verdict = events[-1]
    assert isinstance(verdict, StreamVerdict)
    assert verdict.decision is Decision.MASK
    assert all(not isinstance(e, StreamVerdict) for e in events[:-1])


def test_sync_check_stream_masks_a_streamed_tool_call(guardrail_target):  # noqa: F811
    with GuardrailClient(guardrail_target) as client:
        events = list(client.check_stream(deltas(), guardrails=["pii"]))
    check_events(events)


async def test_async_check_stream_masks_a_streamed_tool_call(guardrail_target):  # noqa: F811
    async def chunks():
        for chunk in deltas():
            yield chunk

    async with AsyncGuardrailClient(guardrail_target) as client:
        events = [e async for e in client.check_stream(chunks(), guardrails=["pii"])]
    check_events(events)


def test_a_clean_tool_call_comes_back_unchanged(guardrail_target):  # noqa: F811
    arguments = json.dumps({"city": "Paris"})
    with GuardrailClient(guardrail_target) as client:
        events = list(
            client.check_stream(
                [
                    StreamDelta(tool_calls=(ToolCallDelta(0, "c9", "weather", arguments),)),
                    StreamDelta(finish_reason="tool_calls"),
                ],
                guardrails=["pii", "secrets"],
            )
        )
    (call,) = [e for e in events if isinstance(e, StreamToolCall)]
    assert (call.arguments_json, call.masked, call.findings) == (arguments, False, ())
    assert events[-1].decision is Decision.ALLOW


def test_a_chunk_of_another_type_is_refused_before_sending(guardrail_target):  # noqa: F811
    with GuardrailClient(guardrail_target) as client, pytest.raises(TypeError):
        list(client.check_stream([{"text": "a dict is not a chunk"}]))


async def test_async_a_chunk_of_another_type_is_refused(guardrail_target):  # noqa: F811
    async with AsyncGuardrailClient(guardrail_target) as client:
        with pytest.raises(TypeError):
            [e async for e in client.check_stream([42])]
