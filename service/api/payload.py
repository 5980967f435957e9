"""Take every scannable string out of a Payload, and put masked ones back.

Paths name where a string sits ("messages[1].content[2].text"). Strings in
JSON documents (tool-call arguments, input schemas) are scanned one value or
key at a time, so that JSON escapes cannot hide a match; their findings carry
a JSON pointer, and a pointer ending in "/~key" names an object key.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

from guardrail.v1 import guardrail_pb2 as pb

from service.errors import FieldViolation, InvalidArgumentError
from service.types import Finding, Segment

__all__ = ["KEY_MARKER", "MAX_JSON_DEPTH", "extract_segments", "masked_payload"]

KEY_MARKER = "/~key"
MAX_JSON_DEPTH = 64

#: Replaces the findings' spans in one string; the engine's mask_text.
Masker = Callable[[str, Sequence[Finding]], str]


class _DuplicateKey(ValueError):
    """Two members of one JSON object share a key."""


def _unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # json.loads keeps only the last of duplicate keys, so an earlier value would
    # never be scanned while a first-wins parser downstream still reads it.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _DuplicateKey("duplicate object key")
    return members


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _pointer_token(key: str | int) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _walk_json(
    value: object, pointer: str, depth: int, max_depth: int = MAX_JSON_DEPTH
) -> Iterator[tuple[str, str]]:
    """(pointer, string) for every key and string value, depth-first."""
    if depth > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, dict):
        for key, item in value.items():
            child = f"{pointer}/{_pointer_token(key)}"
            yield child + KEY_MARKER, key
            yield from _walk_json(item, child, depth + 1, max_depth)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_json(item, f"{pointer}/{index}", depth + 1, max_depth)


def _too_deep(path: str, max_depth: int = MAX_JSON_DEPTH) -> InvalidArgumentError:
    problem = f"JSON nested deeper than {max_depth} levels"
    return InvalidArgumentError(
        f"{path}: {problem}", [FieldViolation(path, problem)], reason="JSON_TOO_DEEP"
    )


def _json_segments(path: str, raw: str, max_depth: int = MAX_JSON_DEPTH) -> list[Segment]:
    if not raw:
        return []
    try:
        document = json.loads(raw, object_pairs_hook=_unique_members)
    except RecursionError:
        raise _too_deep(path, max_depth) from None
    except ValueError:
        # Models emit broken JSON too (and duplicate keys): scan it as it is
        # rather than not at all, or not all of it.
        return [Segment(path, raw)]
    if isinstance(document, str):
        return [Segment(path, raw)]  # a bare JSON string: scan it whole
    try:
        walked = _walk_json(document, "", 0, max_depth)
        segments = [Segment(path, text, pointer) for pointer, text in walked]
    except ValueError:
        raise _too_deep(path, max_depth) from None
    # Only an escape (\ud800) makes a lone surrogate: protobuf strings are UTF-8.
    # It has no UTF-8 form, so neither its pointer nor a masked copy could be
    # sent back; the text as sent is plain ASCII there and is scanned instead.
    if "\\u" in raw and any(_has_lone_surrogate(s.text) for s in segments):
        return [Segment(path, raw)]
    return segments


def _message_segments(
    index: int, message: pb.Message, max_depth: int = MAX_JSON_DEPTH
) -> Iterator[Segment]:
    base = f"messages[{index}]"
    if message.name:
        yield Segment(f"{base}.name", message.name)
    for j, part in enumerate(message.content):
        kind = part.WhichOneof("kind")
        if kind is not None:
            yield Segment(f"{base}.content[{j}].{kind}", getattr(part, kind))
    for k, call in enumerate(message.tool_calls):
        call_path = f"{base}.tool_calls[{k}]"
        if call.name:
            yield Segment(f"{call_path}.name", call.name)
        yield from _json_segments(f"{call_path}.arguments_json", call.arguments_json, max_depth)


def _tool_segments(
    index: int, tool: pb.ToolDefinition, max_depth: int = MAX_JSON_DEPTH
) -> Iterator[Segment]:
    base = f"tools[{index}]"
    if tool.name:
        yield Segment(f"{base}.name", tool.name)
    if tool.description:
        yield Segment(f"{base}.description", tool.description)
    yield from _json_segments(f"{base}.input_schema_json", tool.input_schema_json, max_depth)


def extract_segments(
    payload: pb.Payload, *, max_json_depth: int = MAX_JSON_DEPTH
) -> list[Segment]:
    """Every string of the payload, in payload order; empty strings skipped.

    ``max_json_depth`` is GUARDRAIL_MAX_JSON_DEPTH (service/limits.py)."""
    segments = [Segment("text", payload.text)] if payload.text else []
    for i, message in enumerate(payload.messages):
        segments.extend(_message_segments(i, message, max_json_depth))
    for i, tool in enumerate(payload.tools):
        segments.extend(_tool_segments(i, tool, max_json_depth))
    return [s for s in segments if s.text]


def _mask_json(raw: str, by_pointer: dict[str, list[Finding]], mask: Masker) -> str:
    def rebuild(value: object, pointer: str) -> object:
        if isinstance(value, str):
            hits = by_pointer.get(pointer)
            return mask(value, hits) if hits else value
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                child = f"{pointer}/{_pointer_token(key)}"
                key_hits = by_pointer.get(child + KEY_MARKER)
                out[mask(key, key_hits) if key_hits else key] = rebuild(item, child)
            return out
        if isinstance(value, list):
            return [rebuild(item, f"{pointer}/{i}") for i, item in enumerate(value)]
        return value

    return json.dumps(rebuild(json.loads(raw), ""), ensure_ascii=False)


def _locate(payload: pb.Payload, path: str) -> tuple[object, str]:
    """The message holding the string at a path from extract_segments, and its field."""
    target: object = payload
    *parents, leaf = path.split(".")
    for part in parents:
        name, _, index = part.partition("[")
        target = getattr(target, name)
        if index:
            target = target[int(index.rstrip("]"))]  # type: ignore[index]
    return target, leaf


def masked_payload(
    payload: pb.Payload, segments: Sequence[Segment], findings: Sequence[Finding], mask: Masker
) -> pb.Payload:
    """A copy of the payload with every finding's span replaced."""
    by_path: dict[str, dict[str, list[Finding]]] = defaultdict(lambda: defaultdict(list))
    for finding in findings:
        by_path[finding.path][finding.json_pointer].append(finding)
    texts = {s.path: s.text for s in segments if not s.json_pointer}
    masked = pb.Payload()
    masked.CopyFrom(payload)
    for path, by_pointer in by_path.items():
        whole = by_pointer.pop("", None)
        if by_pointer:
            holder, field = _locate(masked, path)
            setattr(holder, field, _mask_json(getattr(holder, field), by_pointer, mask))
        elif whole:
            holder, field = _locate(masked, path)
            setattr(holder, field, mask(texts[path], whole))
    return masked

