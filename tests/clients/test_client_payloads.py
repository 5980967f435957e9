"""Payload builders: OpenAI chat messages, MCP tools, directions, guardrails."""

from __future__ import annotations

import json

import pytest
from guardrail.v1 import guardrail_pb2 as pb

import guardrail_client as gc


def test_text_payload():
    """``text`` builds a plain-text payload."""
    assert gc.text("hello") == pb.Payload(text="hello")


def test_message_with_string_content():
    """A string content becomes one text part."""
    message = gc.message({"role": "user", "content": "hi"})
    assert message.role == "user"
    assert [p.text for p in message.content] == ["hi"]


def test_message_with_multipart_content():
    """Text and image_url parts keep their order; image URLs are scanned as text."""
    message = gc.message(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        }
    )
    kinds = [p.WhichOneof("kind") for p in message.content]
    assert kinds == ["text", "image_url"]
    assert message.content[1].image_url == "https://x.test/a.png"


def test_assistant_tool_calls_keep_arguments_as_json_text():
    """Tool-call arguments stay JSON text; a dict is serialised to JSON."""
    message = gc.message(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                {"id": "c2", "function": {"name": "g", "arguments": {"b": "x"}}},
            ],
        }
    )
    assert list(message.content) == []
    assert [(c.id, c.name) for c in message.tool_calls] == [("c1", "f"), ("c2", "g")]
    assert message.tool_calls[0].arguments_json == '{"a": 1}'
    assert json.loads(message.tool_calls[1].arguments_json) == {"b": "x"}


def test_tool_result_message_keeps_its_call_id():
    """A role "tool" message carries tool_call_id."""
    message = gc.message({"role": "tool", "tool_call_id": "c1", "content": "42"})
    assert message.tool_call_id == "c1"


def test_unknown_content_part_type_is_refused():
    """A content part that cannot be scanned raises instead of going unscanned."""
    with pytest.raises(ValueError, match="input_audio"):
        gc.message({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]})


def test_message_protos_pass_through():
    """A Message proto is used as it is."""
    proto = pb.Message(role="system")
    assert gc.messages([proto])[0] is proto


@pytest.mark.parametrize("key", ["inputSchema", "input_schema"])
def test_mcp_tool_schema_is_serialised(key):
    """An MCP tool's schema dict becomes input_schema_json under either key spelling."""
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    tool = gc.tool({"name": "read", "description": "Reads a file", key: schema})
    assert (tool.name, tool.description) == ("read", "Reads a file")
    assert json.loads(tool.input_schema_json) == schema


def test_openai_function_definition_is_a_tool():
    """An OpenAI ``{"type": "function", "function": ...}`` maps to a ToolDefinition."""
    tool = gc.tool(
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}
    )
    assert (tool.name, tool.description) == ("f", "d")
    assert json.loads(tool.input_schema_json) == {"type": "object"}


def test_tool_without_schema_has_empty_schema_json():
    """No schema gives an empty input_schema_json, not the text "null"."""
    assert gc.tool({"name": "t", "description": "d"}).input_schema_json == ""


def test_payload_combines_shapes():
    """``payload`` sets every shape it is given."""
    built = gc.payload(
        "t", messages=[{"role": "user", "content": "m"}], tools=[{"name": "x", "description": "y"}]
    )
    assert built.text == "t"
    assert len(built.messages) == 1 and len(built.tools) == 1


def test_payload_needs_content():
    """A payload with nothing to scan is refused before the call."""
    with pytest.raises(ValueError, match="text, messages or tools"):
        gc.payload()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("input", pb.DIRECTION_INPUT),
        ("OUTPUT", pb.DIRECTION_OUTPUT),
        ("tool_description", pb.DIRECTION_TOOL_DESCRIPTION),
        ("DIRECTION_TOOL_RESULT", pb.DIRECTION_TOOL_RESULT),
        (pb.DIRECTION_OUTPUT, pb.DIRECTION_OUTPUT),
    ],
)
def test_direction_names(value, expected):
    """Directions are accepted by short name, proto name or number."""
    assert gc.direction(value) == expected


@pytest.mark.parametrize("value", ["sideways", 99])
def test_unknown_direction_is_refused(value):
    """An unknown direction raises ValueError."""
    with pytest.raises(ValueError):
        gc.direction(value)


def test_guardrail_from_proto_json_dict():
    """A guardrail dict in the proto's JSON form becomes a Guardrail proto."""
    guardrail = gc.guardrail(
        {
            "name": "acme_ids",
            "action": "ACTION_MASK",
            "rules": [{"id": "acme", "pattern": "ACME-[0-9]{6}", "mustMatch": ["ACME-123456"]}],
        }
    )
    assert guardrail.action == pb.ACTION_MASK
    assert guardrail.rules[0].must_match == ["ACME-123456"]


def test_caller_from_dict():
    """A caller dict becomes a Caller proto; None stays None."""
    assert gc.caller({"user": "u", "request_tags": ["a"]}) == pb.Caller(user="u", request_tags=["a"])
    assert gc.caller(None) is None
