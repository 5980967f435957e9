"""Build request protos from the shapes gateways already hold.

Chat messages come OpenAI-style, tool definitions MCP-style (or as OpenAI
function definitions), guardrails as dicts in the proto's JSON form.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format
from guardrail.v1 import guardrail_pb2 as pb

__all__ = [
    "DIRECTIONS",
    "caller",
    "direction",
    "guardrail",
    "message",
    "messages",
    "payload",
    "text",
    "tool",
    "tools",
]

DIRECTIONS: Mapping[str, pb.Direction] = {
    "input": pb.DIRECTION_INPUT,
    "output": pb.DIRECTION_OUTPUT,
    "tool_description": pb.DIRECTION_TOOL_DESCRIPTION,
    "tool_result": pb.DIRECTION_TOOL_RESULT,
}

MessageLike = Mapping[str, Any] | pb.Message
ToolLike = Mapping[str, Any] | pb.ToolDefinition


def text(value: str) -> pb.Payload:
    """A plain-text payload."""
    return pb.Payload(text=value)


def direction(value: str | int) -> pb.Direction:
    """``"input"``, ``"output"``, ``"tool_description"``, ``"tool_result"``."""
    if isinstance(value, int):
        pb.Direction.Name(value)  # raises ValueError for an unknown number
        return value  # type: ignore[return-value]
    try:
        return DIRECTIONS[value.lower().removeprefix("direction_")]
    except KeyError:
        known = ", ".join(DIRECTIONS)
        raise ValueError(f"unknown direction {value!r}; use one of {known}") from None


def _json_text(value: Any) -> str:
    # Models send arguments as JSON text; some SDKs hand over the parsed dict.
    return value if isinstance(value, str) else json.dumps(value)


def _content_part(part: Mapping[str, Any] | str) -> pb.ContentPart:
    if isinstance(part, str):
        return pb.ContentPart(text=part)
    kind = part.get("type", "text")
    if kind == "text":
        return pb.ContentPart(text=part.get("text", ""))
    if kind == "image_url":
        image = part.get("image_url", "")
        url = image.get("url", "") if isinstance(image, Mapping) else image
        return pb.ContentPart(image_url=url)
    # Nothing silent: a part we cannot express would go unscanned.
    raise ValueError(f"content part type {kind!r} cannot be scanned")


def _content(content: Any) -> list[pb.ContentPart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [pb.ContentPart(text=content)]
    return [_content_part(part) for part in content]


def _tool_call(call: Mapping[str, Any]) -> pb.ToolCall:
    function = call.get("function", call)
    return pb.ToolCall(
        id=call.get("id", ""),
        name=function.get("name", ""),
        arguments_json=_json_text(function.get("arguments", "")),
    )


def message(value: MessageLike) -> pb.Message:
    """One OpenAI-style chat message (``role``, ``content``, ``tool_calls``...)."""
    if isinstance(value, pb.Message):
        return value
    return pb.Message(
        role=value.get("role", ""),
        content=_content(value.get("content")),
        tool_calls=[_tool_call(call) for call in value.get("tool_calls") or ()],
        tool_call_id=value.get("tool_call_id") or "",
        name=value.get("name") or "",
    )


def messages(values: Iterable[MessageLike]) -> list[pb.Message]:
    return [message(value) for value in values]


def tool(value: ToolLike) -> pb.ToolDefinition:
    """An MCP tool (``name``, ``description``, ``inputSchema``) or OpenAI function."""
    if isinstance(value, pb.ToolDefinition):
        return value
    spec = value.get("function", value)  # OpenAI: {"type": "function", "function": ..}
    schema = spec.get("inputSchema", spec.get("input_schema", spec.get("parameters")))
    return pb.ToolDefinition(
        name=spec.get("name", ""),
        description=spec.get("description") or "",
        input_schema_json="" if schema is None else _json_text(schema),
        server=value.get("server", ""),
    )


def tools(values: Iterable[ToolLike]) -> list[pb.ToolDefinition]:
    return [tool(value) for value in values]


def payload(
    text: str | None = None,
    *,
    messages: Iterable[MessageLike] | None = None,
    tools: Iterable[ToolLike] | None = None,
) -> pb.Payload:
    """Any combination of the three shapes; at least one must be given."""
    if text is None and messages is None and tools is None:
        raise ValueError("give text, messages or tools to check")

    built = pb.Payload(text=text or "")
    built.messages.extend(_messages(messages or ()))
    built.tools.extend(_tools(tools or ()))
    return built


# The keyword names above shadow the module-level builders inside payload().
_messages = messages
_tools = tools


def guardrail(value: Mapping[str, Any] | pb.Guardrail) -> pb.Guardrail:
    """A guardrail from its proto-JSON dict (``{"name", "rules": [...], ...}``)."""
    if isinstance(value, pb.Guardrail):
        return value
    return json_format.ParseDict(value, pb.Guardrail())


def caller(value: Mapping[str, Any] | pb.Caller | None) -> pb.Caller | None:
    """Who the call is made for: ``user``, ``team_id``, ``end_user``, ..."""
    if value is None or isinstance(value, pb.Caller):
        return value
    return json_format.ParseDict(value, pb.Caller())
