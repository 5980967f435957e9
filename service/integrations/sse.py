"""Scan a streamed chat answer arriving as server-sent events, in any split.

Bytes come in chunks cut anywhere: inside an event, inside a line, inside a
UTF-8 character. ``SseDecoder`` turns them into whole events; ``SseScanner``
feeds each event's text delta to a hold-back ``TextStream`` per choice and
re-emits the event carrying only the text that is safe to release (masked
where needed). When a choice finishes, the held-back rest goes out in one
synthetic delta event before the finishing event. A block ends the stream
with an OpenAI ``content_filter`` finish (or an Anthropic ``error`` event)
and drops everything after it.

Tool-call arguments (OpenAI ``tool_calls`` deltas, Anthropic
``input_json_delta`` fragments) are never released in pieces, as in
CheckStream: a call's deltas are held (the first one's id, name and type
kept), and once the call is complete (a higher tool-call index of the choice
starts, the choice finishes or its block stops, or the stream ends) it is
scanned whole and goes out as one synthetic delta carrying all of its
(masked) arguments, before the finishing event. Calls held past
``MAX_TOOL_ARGUMENT_CHARS`` end the stream as a block would: what cannot be
scanned is not let through.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.api.stream_check import MAX_TOOL_ARGUMENT_CHARS
from service.streaming import TextStream, ToolCallAssembler, ToolCallText
from service.types import Finding

__all__ = ["CallScan", "CallScanner", "SseDecoder", "SseScanner"]

MAX_CHOICES = 64
MAX_TOOL_CALLS = 128
BLOCK_MESSAGE = "The answer was stopped by a guardrail."


class SseDecoder:
    """Bytes in, whole events out (each without its blank-line terminator)."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""

    def feed(self, data: bytes) -> list[str]:
        self._buffer += self._utf8.decode(data).replace("\r\n", "\n")
        *events, self._buffer = self._buffer.split("\n\n")
        return [e for e in events if e.strip()]

    def finish(self) -> list[str]:
        self._buffer += self._utf8.decode(b"", final=True)
        rest, self._buffer = self._buffer, ""
        return [rest] if rest.strip() else []


@dataclass(slots=True)
class _Event:
    name: str
    data: str

    @classmethod
    def parse(cls, raw: str) -> _Event:
        name, data = "", []
        for line in raw.split("\n"):
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        return cls(name, "\n".join(data))


def _render(data: dict[str, Any], name: str = "") -> str:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _empty(choice: dict[str, Any]) -> bool:
    """Whether a choice says nothing once its tool-call deltas are taken out."""
    if choice.get("finish_reason") or choice.get("logprobs"):
        return False
    delta = choice.get("delta") or {}
    return all(value in (None, "") for value in delta.values())


def _call_index(value: object) -> int:
    """A tool call's index (0 when left out); -1, out of range, when not a number."""
    if value is None:
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _fragment(value: object) -> str:
    """A delta's name or arguments as text (a provider may send an object)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class CallScan:
    """A whole tool call after its scan: what to emit, or a block."""

    name: str
    arguments: str
    findings: list[Finding]
    blocked: bool = False


StreamFactory = Callable[[int], TextStream]
CallScanner = Callable[[ToolCallText], CallScan]


def _assembler() -> ToolCallAssembler:
    return ToolCallAssembler(MAX_TOOL_ARGUMENT_CHARS)


@dataclass(slots=True)
class SseScanner:
    """The rewriting state of one streamed answer."""

    new_stream: StreamFactory
    scan_call: CallScanner
    streams: dict[int, TextStream] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)
    calls: ToolCallAssembler = field(default_factory=_assembler)
    call_findings: list[Finding] = field(default_factory=list)
    blocked: bool = False
    done: bool = False
    events: int = 0
    _envelope: dict[str, Any] = field(default_factory=dict)
    _anthropic: bool = False
    _choices: set[int] = field(default_factory=set)
    _held_chars: int = 0  # names and arguments of every call held
    _call_types: dict[tuple[int, int], str] = field(default_factory=dict)
    _tool_starts: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        text = [f for s in self.streams.values() for f in s.findings]
        return [*text, *self.call_findings]

    def process(self, raw_events: list[str]) -> str:
        """The text to emit for these whole events."""
        out = []
        for raw in raw_events:
            if self.blocked or self.done:
                break
            self.events += 1
            out.append(self._event(raw))
        return "".join(out)

    def close(self) -> str:
        """Flush every choice still open (the body ended without [DONE])."""
        if self.blocked or self.done:
            return ""
        out = []
        for index in list(self.streams):
            out.append(self._flush(index))
            if self.blocked:
                return out[-1]  # the block ends the stream: nothing before it
        return "".join(out) + self._release_calls(self.calls.finish())

    def _stream(self, index: int) -> TextStream:
        if index >= MAX_CHOICES:
            raise ValueError(f"choice index {index} is over the limit of {MAX_CHOICES}")
        stream = self.streams.get(index)
        if stream is None:
            stream = self.streams[index] = self.new_stream(index)
        return stream

    def _event(self, raw: str) -> str:
        event = _Event.parse(raw)
        if event.data.strip() == "[DONE]":
            flushed = self.close()
            self.done = not self.blocked
            return flushed if self.blocked else flushed + "data: [DONE]\n\n"
        try:
            data = json.loads(event.data)
        except ValueError:
            return raw + "\n\n"  # comments, pings: nothing to scan
        except RecursionError:
            # Nested past what the parser follows: it cannot be scanned, so it
            # is not let through either.
            return self._block_text()
        if not isinstance(data, dict):
            return raw + "\n\n"
        try:
            if isinstance(data.get("choices"), list):
                return self._openai(data, event.name)
            if isinstance(data.get("type"), str):
                return self._anthropic_event(data, event.name)
        except (AttributeError, TypeError, ValueError):
            # An event of a known kind whose fields cannot be read (an index
            # that is no number or is past MAX_CHOICES, a choice that is no
            # object) cannot be scanned: it ends the stream, as a block does.
            return self._block_text()
        return raw + "\n\n"

    # -- OpenAI chat.completion.chunk

    def _openai(self, data: dict[str, Any], name: str) -> str:
        self._envelope = {k: v for k, v in data.items() if k != "choices"}
        prefix, kept = [], []
        for choice in data["choices"]:
            index = int(choice.get("index", 0))
            if not 0 <= index < MAX_CHOICES:
                raise ValueError(f"choice index {index} is outside 0..{MAX_CHOICES - 1}")
            self._choices.add(index)
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                release = self._stream(index).feed(content)
                delta["content"] = release.text if release is not None else ""
            if self.streams.get(index) is not None and self.streams[index].blocked:
                return self._block_text()
            calls = delta.pop("tool_calls", None)
            if calls is not None:
                prefix.append(self._openai_calls(index, calls))
                if self.blocked:
                    return prefix[-1]
                if _empty(choice):
                    continue  # held: nothing else to send for this choice
            if choice.get("finish_reason"):
                prefix.append(self._finish_choice(index))
                if self.blocked:
                    return "".join(prefix)  # the flush ended the stream
            kept.append(choice)
        if data["choices"] and not kept and not data.get("usage"):
            return "".join(prefix)
        data["choices"] = kept
        return "".join(prefix) + _render(data, name)

    def _openai_calls(self, choice: int, calls: object) -> str:
        """Hold a choice's tool-call deltas; the calls they complete, scanned."""
        out = []
        for entry in calls if isinstance(calls, list) else []:
            if not isinstance(entry, dict):
                continue  # not a tool call: nothing to hold, nothing to send
            index = _call_index(entry.get("index"))
            function = entry.get("function") or {}
            if entry.get("type"):
                self._call_types.setdefault((choice, index), str(entry["type"]))
            call_id = _fragment(entry.get("id"))
            name = _fragment(function.get("name"))
            arguments = _fragment(function.get("arguments"))
            out.append(self._hold(choice, index, call_id, name, arguments))
            if self.blocked:
                return out[-1]
        return "".join(out)

    def _finish_choice(self, index: int) -> str:
        flushed = self._flush(index)
        if self.blocked:
            return flushed
        return flushed + self._release_calls(self.calls.finish_choice(index))

    # -- tool calls, held whole

    def _hold(
        self, choice: int, index: int, call_id: str, name: str, fragment: str
    ) -> str:
        """Hold one tool-call delta; the calls it completes, scanned and rendered."""
        self._held_chars += len(name) + len(fragment)
        in_range = 0 <= choice < MAX_CHOICES and 0 <= index < MAX_TOOL_CALLS
        if not in_range or self._held_chars > MAX_TOOL_ARGUMENT_CHARS:
            return self._block_text()  # more than we hold: never pass it unscanned
        done = self.calls.add(choice, index, call_id, name, fragment)
        return self._release_calls(done)

    def _release_calls(self, calls: list[ToolCallText]) -> str:
        out = []
        for call in calls:
            self._held_chars -= len(call.name) + call.chars
            scan = self.scan_call(call)
            self.call_findings.extend(scan.findings)
            if scan.blocked:
                return self._block_text()
            out.append(self._call_event(call, scan))
        return "".join(out)

    def _call_event(self, call: ToolCallText, scan: CallScan) -> str:
        """One synthetic event carrying the whole call, well-formed for SDKs."""
        if self._anthropic:
            return self._tool_block_events(call, scan)
        kind = self._call_types.pop((call.choice_index, call.index), "function")
        function = {"name": scan.name, "arguments": scan.arguments}
        entry = {"index": call.index, "id": call.id, "type": kind, "function": function}
        choice = {
            "index": call.choice_index,
            "delta": {"tool_calls": [entry]},
            "finish_reason": None,
        }
        return _render({**self._envelope, "choices": [choice]})

    def _flush(self, index: int) -> str:
        stream = self.streams.get(index)
        if stream is None or index in self.closed:
            return ""
        release = stream.finish()
        if stream.blocked:
            return self._block_text()
        self.closed.add(index)
        if release is None or not release.text:
            return ""
        if self._anthropic:
            delta = {"type": "text_delta", "text": release.text}
            body = {"type": "content_block_delta", "index": index, "delta": delta}
            return _render(body, "content_block_delta")
        choice = {
            "index": index,
            "delta": {"content": release.text},
            "finish_reason": None,
        }
        return _render({**self._envelope, "choices": [choice]})

    def _block_text(self) -> str:
        if self.blocked:
            return ""
        self.blocked = True
        if self._anthropic:
            error = {"type": "invalid_request_error", "message": BLOCK_MESSAGE}
            return _render({"type": "error", "error": error}, "error")
        finish = [
            {"index": i, "delta": {}, "finish_reason": "content_filter"}
            for i in sorted(self._choices | set(self.streams)) or [0]
        ]
        return _render({**self._envelope, "choices": finish}) + "data: [DONE]\n\n"

    # -- Anthropic messages stream

    def _anthropic_event(self, data: dict[str, Any], name: str) -> str:
        self._anthropic = True
        kind = data["type"]
        index = int(data.get("index", 0))
        delta = data.get("delta")
        if kind == "content_block_start" and _is_tool_block(data):
            return self._start_tool_block(index, data)
        if kind == "content_block_delta" and isinstance(delta, dict):
            if delta.get("type") == "input_json_delta":
                fragment = _fragment(delta.get("partial_json"))
                self._tool_starts.setdefault(index, {})
                return self._hold(0, index, "", "", fragment)
            text = delta.get("text")
            if delta.get("type") == "text_delta" and isinstance(text, str):
                stream = self._stream(index)
                release = stream.feed(text)
                if stream.blocked:
                    return self._block_text()
                if release is None or not release.text:
                    return ""  # nothing safe to send yet: drop the empty delta
                delta["text"] = release.text
        elif kind == "content_block_stop":
            if index in self._tool_starts:
                flushed = self._release_calls(self.calls.finish_choice(0))
            else:
                flushed = self._flush(index)
            return flushed if self.blocked else flushed + _render(data, name)
        return _render(data, name)

    # An Anthropic message is one choice (0); its tool blocks are its calls,
    # numbered by block index. A tool block's start is held with its input so
    # that its name goes out scanned too.

    def _start_tool_block(self, index: int, data: dict[str, Any]) -> str:
        block = data["content_block"]
        self._tool_starts[index] = data
        initial = block.get("input")
        fragment = _fragment(initial) if initial else ""
        if initial:
            block["input"] = {}  # sent whole as the one input_json_delta instead
        call_id, name = _fragment(block.get("id")), _fragment(block.get("name"))
        return self._hold(0, index, call_id, name, fragment)

    def _tool_block_events(self, call: ToolCallText, scan: CallScan) -> str:
        out = ""
        start = self._tool_starts.pop(call.index, None)
        if start:
            block = start["content_block"]
            if "name" in block:
                block["name"] = scan.name
            out = _render(start, "content_block_start")
        if scan.arguments:
            delta = {"type": "input_json_delta", "partial_json": scan.arguments}
            body = {"type": "content_block_delta", "index": call.index, "delta": delta}
            out += _render(body, "content_block_delta")
        return out


def _is_tool_block(data: dict[str, Any]) -> bool:
    """A block whose input streams as JSON (tool_use, server_tool_use, ...)."""
    block = data.get("content_block")
    return isinstance(block, dict) and "input" in block
