"""Scan a streamed chat answer arriving as server-sent events, in any split.

Bytes come in chunks cut anywhere: inside an event, inside a line, inside a
UTF-8 character. ``SseDecoder`` turns them into whole events; ``SseScanner``
feeds each event's text delta to a hold-back ``TextStream`` per choice and
re-emits the event carrying only the text that is safe to release (masked
where needed). When a choice finishes, the held-back rest goes out in one
synthetic delta event before the finishing event. A block ends the stream
with an OpenAI ``content_filter`` finish (or an Anthropic ``error`` event)
and drops everything after it.

Known shortcoming: streamed tool-call arguments (OpenAI ``tool_calls``
deltas, Anthropic ``input_json_delta``) pass unscanned.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.streaming import TextStream
from service.types import Finding

__all__ = ["SseDecoder", "SseScanner"]

MAX_CHOICES = 64
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


StreamFactory = Callable[[int], TextStream]


@dataclass(slots=True)
class SseScanner:
    """The rewriting state of one streamed answer."""

    new_stream: StreamFactory
    streams: dict[int, TextStream] = field(default_factory=dict)
    closed: set[int] = field(default_factory=set)
    blocked: bool = False
    done: bool = False
    events: int = 0
    _envelope: dict[str, Any] = field(default_factory=dict)
    _anthropic: bool = False

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.streams.values() for f in s.findings]

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
        return "".join(self._flush(i) for i in list(self.streams))

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
        if isinstance(data.get("choices"), list):
            return self._openai(data, event.name)
        if isinstance(data.get("type"), str):
            return self._anthropic_event(data, event.name)
        return raw + "\n\n"

    # -- OpenAI chat.completion.chunk

    def _openai(self, data: dict[str, Any], name: str) -> str:
        self._envelope = {k: v for k, v in data.items() if k != "choices"}
        prefix = []
        for choice in data["choices"]:
            index = int(choice.get("index", 0))
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str):
                release = self._stream(index).feed(content)
                delta["content"] = release.text if release is not None else ""
            if self.streams.get(index) is not None and self.streams[index].blocked:
                return self._block_text()
            if choice.get("finish_reason"):
                prefix.append(self._flush(index))
                if self.blocked:
                    return "".join(prefix)  # the flush ended the stream
        return "".join(prefix) + _render(data, name)

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
            for i in sorted(self.streams) or [0]
        ]
        return _render({**self._envelope, "choices": finish}) + "data: [DONE]\n\n"

    # -- Anthropic messages stream

    def _anthropic_event(self, data: dict[str, Any], name: str) -> str:
        self._anthropic = True
        kind = data["type"]
        index = int(data.get("index", 0))
        delta = data.get("delta")
        if kind == "content_block_delta" and isinstance(delta, dict):
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
            flushed = self._flush(index)
            return flushed if self.blocked else flushed + _render(data, name)
        return _render(data, name)
