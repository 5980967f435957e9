"""Segment extraction and masked payload rebuilding."""

from __future__ import annotations

import json

import pytest
from guardrail.v1 import guardrail_pb2 as pb

from service.api.payload import MAX_JSON_DEPTH, extract_segments, masked_payload
from service.errors import InvalidArgumentError
from service.types import Action, Finding, Severity


def _finding(path: str, start: int, end: int, pointer: str = "") -> Finding:
    return Finding(
        guardrail="pii", rule_id="email", category="email", severity=Severity.LOW,
        action=Action.MASK, path=path, start=start, end=end, json_pointer=pointer,
        mask_label="[EMAIL]",
    )


def _mask(text: str, findings) -> str:
    out = text
    for f in sorted(findings, key=lambda f: -f.start):
        out = out[: f.start] + f.mask_label + out[f.end :]
    return out


def test_every_part_of_every_shape_is_a_segment():
    """Text, content parts, tool call names and JSON leaves, tool definitions all appear."""
    payload = pb.Payload(
        text="top",
        messages=[
            pb.Message(
                role="assistant",
                content=[pb.ContentPart(text="a"), pb.ContentPart(image_url="http://x")],
                tool_calls=[pb.ToolCall(name="search", arguments_json='{"q": "b", "n": [1, "c"]}')],
            ),
            pb.Message(role="tool", tool_call_id="1", content=[pb.ContentPart(text="result")]),
        ],
        tools=[pb.ToolDefinition(name="t", description="d", input_schema_json='{"type": "object"}')],
    )

    got = [(s.path, s.json_pointer, s.text) for s in extract_segments(payload)]

    assert got == [
        ("text", "", "top"),
        ("messages[0].content[0].text", "", "a"),
        ("messages[0].content[1].image_url", "", "http://x"),
        ("messages[0].tool_calls[0].name", "", "search"),
        ("messages[0].tool_calls[0].arguments_json", "/q/~key", "q"),
        ("messages[0].tool_calls[0].arguments_json", "/q", "b"),
        ("messages[0].tool_calls[0].arguments_json", "/n/~key", "n"),
        ("messages[0].tool_calls[0].arguments_json", "/n/1", "c"),
        ("messages[1].content[0].text", "", "result"),
        ("tools[0].name", "", "t"),
        ("tools[0].description", "", "d"),
        ("tools[0].input_schema_json", "/type/~key", "type"),
        ("tools[0].input_schema_json", "/type", "object"),
    ]


def test_invalid_json_arguments_are_scanned_raw():
    """Broken JSON from a model is still scanned, as one string."""
    call = pb.ToolCall(name="f", arguments_json='{"q": "unterminated')
    payload = pb.Payload(messages=[pb.Message(role="assistant", tool_calls=[call])])

    segments = extract_segments(payload)

    assert segments[-1].text == '{"q": "unterminated'
    assert segments[-1].json_pointer == ""


def test_json_nested_too_deep_is_invalid_argument():
    """Arguments nested past the limit are refused, naming the field."""
    deep = "[" * (MAX_JSON_DEPTH + 2) + "]" * (MAX_JSON_DEPTH + 2)
    call = pb.ToolCall(name="f", arguments_json=deep)
    payload = pb.Payload(messages=[pb.Message(role="assistant", tool_calls=[call])])

    with pytest.raises(InvalidArgumentError) as raised:
        extract_segments(payload)

    assert raised.value.violations[0].field == "messages[0].tool_calls[0].arguments_json"


def test_masking_rewrites_text_parts_and_json_values():
    """Masks land in the right content part and JSON value; everything else is kept."""
    address = "ann@example.org"
    arguments = json.dumps({"to": address, "body": "hi"})
    payload = pb.Payload(
        messages=[
            pb.Message(role="user", content=[pb.ContentPart(text="x"), pb.ContentPart(text=f"mail {address}")]),
            pb.Message(role="assistant", tool_calls=[pb.ToolCall(name="send", arguments_json=arguments)]),
        ]
    )
    segments = extract_segments(payload)
    findings = [
        _finding("messages[0].content[1].text", 5, 5 + len(address)),
        _finding("messages[1].tool_calls[0].arguments_json", 0, len(address), "/to"),
    ]

    masked = masked_payload(payload, segments, findings, _mask)

    assert masked.messages[0].content[0].text == "x"
    assert masked.messages[0].content[1].text == "mail [EMAIL]"
    assert json.loads(masked.messages[1].tool_calls[0].arguments_json) == {"to": "[EMAIL]", "body": "hi"}
    assert payload.messages[0].content[1].text == f"mail {address}"


def test_json_nested_past_the_interpreter_limit_is_invalid_argument():
    """JSON too deep for the parser itself is refused the same way, never INTERNAL."""
    deep = "[" * 5000 + "]" * 5000
    call = pb.ToolCall(name="f", arguments_json=deep)
    payload = pb.Payload(messages=[pb.Message(role="assistant", tool_calls=[call])])

    with pytest.raises(InvalidArgumentError) as raised:
        extract_segments(payload)

    assert raised.value.reason == "JSON_TOO_DEEP"
