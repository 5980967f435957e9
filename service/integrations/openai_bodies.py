"""Chat request bodies (OpenAI- and Anthropic-style) as Payloads, and back.

A body is parsed into a ``pb.Payload`` of messages plus a list of *slots*:
where, in the JSON document, each scanned string came from. The masked
payload the checker returns keeps the payload's shape, so every masked
string is written back through its slot and the body re-serialised.

Known shortcoming: only text parts, tool-call arguments and tool results are
scanned; image, audio and file parts pass unscanned (they are not text), and
tool *definitions* in the request are not scanned here (they are a
tool-description check of their own).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from guardrail.v1 import guardrail_pb2 as pb

__all__ = [
    "DUPLICATE_KEY",
    "TOO_DEEP",
    "BodyError",
    "ChatBody",
    "UnscannableBody",
    "error_body",
    "parse_chat_body",
    "parse_chat_response",
]

JsonPath = tuple[str | int, ...]


#: UnscannableBody reasons (ScanFailed reasons in the Envoy servicers).
TOO_DEEP = "BODY_TOO_DEEP"
DUPLICATE_KEY = "BODY_DUPLICATE_KEY"
_TOO_DEEP_MESSAGE = "body is JSON nested too deeply to scan"


class BodyError(ValueError):
    """The body is not a JSON chat request we can scan."""


class UnscannableBody(Exception):
    """The body is JSON but cannot be scanned as the upstream will read it.

    Not a BodyError: that means "not a chat request, pass it on", and a chat
    request with one deep field beside its messages would go through unscanned.
    Callers let their failure mode decide instead.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _DuplicateKey(Exception):  # not a ValueError: that reads as "not JSON"
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _DuplicateKey
    return members


@dataclass(slots=True)
class _Slot:
    """Where one scanned string lives: in the payload and in the JSON body."""

    message: int
    part: int  # index into content (kind "text") or tool_calls (kind "tool")
    kind: str  # "text" | "tool"
    path: JsonPath
    #: Anthropic tool_use input is an object, OpenAI arguments are JSON text.
    as_object: bool = False


@dataclass(slots=True)
class ChatBody:
    """A parsed chat request body and the way back into it."""

    document: dict[str, Any]
    payload: pb.Payload
    slots: list[_Slot] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.slots

    def rewrite(self, masked: pb.Payload) -> bytes:
        """The body with every slot replaced from the masked payload."""
        for slot in self.slots:
            message = masked.messages[slot.message]
            if slot.kind == "text":
                value: Any = message.content[slot.part].text
            else:
                value = message.tool_calls[slot.part].arguments_json
                value = json.loads(value) if slot.as_object else value
            _assign(self.document, slot.path, value)
        return json.dumps(self.document, ensure_ascii=False).encode()


def _assign(document: Any, path: JsonPath, value: Any) -> None:
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


class _Builder:
    """Collects messages and slots while walking a body."""

    def __init__(self) -> None:
        self.messages: list[pb.Message] = []
        self.slots: list[_Slot] = []

    def message(self, role: str) -> pb.Message:
        self.messages.append(pb.Message(role=role))
        return self.messages[-1]

    def text(self, message: pb.Message, text: str, path: JsonPath) -> None:
        message.content.append(pb.ContentPart(text=text))
        index = len(self.messages) - 1
        self.slots.append(_Slot(index, len(message.content) - 1, "text", path))

    def tool_call(
        self, message: pb.Message, call: pb.ToolCall, path: JsonPath, as_object: bool
    ) -> None:
        message.tool_calls.append(call)
        index = len(self.messages) - 1
        slot = _Slot(index, len(message.tool_calls) - 1, "tool", path, as_object)
        self.slots.append(slot)


def _text_parts(content: Any, path: JsonPath) -> Iterator[tuple[str, JsonPath]]:
    """(text, path) of a string content or of the text blocks of a list."""
    if isinstance(content, str):
        yield content, path
    elif isinstance(content, list):
        for i, part in enumerate(content):
            if isinstance(part, str):
                yield part, (*path, i)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                yield part["text"], (*path, i, "text")


def _openai_tool_calls(
    builder: _Builder, message: pb.Message, raw: Any, base: JsonPath
) -> None:
    for j, call in enumerate(raw if isinstance(raw, list) else ()):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            continue
        arguments = function.get("arguments")
        as_object = not isinstance(arguments, str)
        text = json.dumps(arguments) if as_object else arguments
        proto = pb.ToolCall(
            id=str(call.get("id", "")),
            name=str(function.get("name", "")),
            arguments_json=text,
        )
        builder.tool_call(
            message, proto, (*base, "tool_calls", j, "function", "arguments"), as_object
        )


def _anthropic_blocks(
    builder: _Builder, message: pb.Message, content: Any, base: JsonPath
) -> None:
    for i, block in enumerate(content):
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "tool_use" and "input" in block:
            proto = pb.ToolCall(
                id=str(block.get("id", "")),
                name=str(block.get("name", "")),
                arguments_json=json.dumps(block["input"]),
            )
            builder.tool_call(message, proto, (*base, i, "input"), True)
        elif kind == "tool_result":
            for text, path in _text_parts(block.get("content"), (*base, i, "content")):
                builder.text(message, text, path)
        elif isinstance(block.get("text"), str):
            builder.text(message, block["text"], (*base, i, "text"))


def _walk_message(builder: _Builder, raw: Any, base: JsonPath) -> None:
    if not isinstance(raw, Mapping):
        raise BodyError(f"{'.'.join(map(str, base))} is not an object")
    message = builder.message(str(raw.get("role", "")))
    content = raw.get("content")
    content_path: JsonPath = (*base, "content")
    if isinstance(content, list) and any(
        isinstance(b, Mapping) and b.get("type") in ("tool_use", "tool_result")
        for b in content
    ):
        _anthropic_blocks(builder, message, content, content_path)
    else:
        for text, path in _text_parts(content, content_path):
            builder.text(message, text, path)
    _openai_tool_calls(builder, message, raw.get("tool_calls"), base)


def _walk_system(builder: _Builder, system: Any) -> None:
    # Anthropic keeps the system prompt beside the messages, not among them.
    if system is None:
        return
    message = builder.message("system")
    for text, path in _text_parts(system, ("system",)):
        builder.text(message, text, path)


def _without_lone_surrogates(value: Any) -> Any:
    """The document with U+FFFD for each lone surrogate (one for one: offsets hold)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
        return value
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(key): _without_lone_surrogates(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    return value


def _load(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw, object_pairs_hook=_unique_members)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"body is not JSON: {exc}") from None
    except RecursionError:
        raise UnscannableBody(TOO_DEEP, _TOO_DEEP_MESSAGE) from None
    except _DuplicateKey:
        # json.loads keeps the last value; the body goes on as sent, and a
        # first-wins parser upstream would read a value nobody scanned.
        message = "body repeats a key in an object"
        raise UnscannableBody(DUPLICATE_KEY, message) from None
    if b"\\u" in raw:
        # A \ud800 escape is valid JSON but has no UTF-8 form, so no protobuf
        # string can hold it; failing here would pass the body unscanned behind
        # failure_mode_allow. A masked rewrite carries U+FFFD in its place.
        try:
            document = _without_lone_surrogates(document)
        except RecursionError:
            raise UnscannableBody(TOO_DEEP, _TOO_DEEP_MESSAGE) from None
    if not isinstance(document, dict):
        raise BodyError("body is not a JSON object")
    return document


def parse_chat_response(raw: bytes) -> ChatBody:
    """Parse a non-streamed OpenAI chat completion or Anthropic message answer."""
    document = _load(raw)
    builder = _Builder()
    choices = document.get("choices")
    if isinstance(choices, list):
        for i, choice in enumerate(choices):
            if isinstance(choice, Mapping) and "message" in choice:
                _walk_message(builder, choice["message"], ("choices", i, "message"))
    elif document.get("type") == "message" and isinstance(
        document.get("content"), list
    ):
        _walk_message(builder, document, ())
    else:
        raise BodyError("body is neither a chat completion nor a message")
    return ChatBody(document, pb.Payload(messages=builder.messages), builder.slots)


def parse_chat_body(raw: bytes) -> ChatBody:
    """Parse an OpenAI ``/chat/completions`` or Anthropic ``/messages`` body."""
    document = _load(raw)
    messages = document.get("messages")
    if not isinstance(messages, list):
        raise BodyError("body has no 'messages' list")

    builder = _Builder()
    _walk_system(builder, document.get("system"))
    for i, message in enumerate(messages):
        _walk_message(builder, message, ("messages", i))

    payload = pb.Payload(messages=builder.messages)
    return ChatBody(document, payload, builder.slots)


def error_body(
    message: str, *, code: str, kind: str = "invalid_request_error"
) -> bytes:
    """An OpenAI-style error body, which OpenAI and LiteLLM clients all parse."""
    error = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": error}).encode()
