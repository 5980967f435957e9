"""LiteLLM's Generic Guardrail API: its request and answer shapes over our checker.

LiteLLM (``guardrail: generic_guardrail_api``) POSTs to
``{api_base}/beta/litellm_basic_guardrail_api``:

    {"input_type": "request" | "response", "texts": [...],
     "tool_calls": [{"id", "type", "function": {"name", "arguments"}}],
     "structured_messages": [...], "additional_provider_specific_params": {...},
     "litellm_call_id": ..., "request_data": {user_api_key_* ...}, ...}

and reads back ``{"action": "NONE" | "BLOCKED" | "GUARDRAIL_INTERVENED",
"blocked_reason", "texts", "structured_messages", "stream_holdback_chars"}``.

``texts`` and ``tool_calls`` are scanned together; when a request carries only
``structured_messages`` those are scanned and returned masked instead.
``additional_provider_specific_params.guardrails`` names the guardrails to run
(default: the defaults of the direction).

Answers to ``input_type: response`` texts carry ``stream_holdback_chars``
(one per text): the widest match of the guardrails that ran, capped like
CheckStream's hold-back. LiteLLM's streaming ``incremental_diff`` mode keeps
that many trailing characters back, so a match still being streamed is never
sent before it can be masked. (Its default ``block_only`` streaming mode
drops rewrites: masking a stream over this API needs ``incremental_diff``.)

Known shortcoming: the API has no way to return masked tool-call arguments,
so a MASK finding inside a tool call is answered BLOCKED (never passed on
unmasked), with a reason saying so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guardrail.v1 import guardrail_pb2 as pb

from service.api.call_context import current_call
from service.checking import Checker
from service.errors import FieldViolation, InvalidArgumentError
from service.integrations.openai_bodies import BodyError, UnscannableBody, parse_chat_body
from service.streaming import engine_for

__all__ = ["PATH", "GenericAnswer", "answer"]

PATH = "/beta/litellm_basic_guardrail_api"
NONE, BLOCKED, INTERVENED = "NONE", "BLOCKED", "GUARDRAIL_INTERVENED"


@dataclass(frozen=True, slots=True)
class GenericAnswer:
    """The JSON answer and the check behind it (None when nothing was scanned)."""

    body: dict[str, Any]
    response: pb.CheckResponse | None


def _strings(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgumentError(
            f"'{key}' must be a list of strings",
            [FieldViolation(key, "list of strings")],
        )
    return value


def _tool_call(raw: Any, index: int) -> pb.ToolCall:
    function = raw.get("function") if isinstance(raw, Mapping) else None
    if not isinstance(function, Mapping):
        path = f"tool_calls[{index}].function"
        raise InvalidArgumentError(
            f"{path} is missing", [FieldViolation(path, "required")]
        )
    arguments = function.get("arguments") or ""
    return pb.ToolCall(
        id=str(raw.get("id") or ""),
        name=str(function.get("name") or ""),
        arguments_json=arguments
        if isinstance(arguments, str)
        else json.dumps(arguments),
    )


def _guardrails(body: Mapping[str, Any]) -> list[str]:
    params = body.get("additional_provider_specific_params") or {}
    names = params.get("guardrails") if isinstance(params, Mapping) else None
    if isinstance(names, str):
        return [n.strip() for n in names.split(",") if n.strip()]
    return [str(n) for n in names] if isinstance(names, list) else []


def _reason(response: pb.CheckResponse) -> str:
    blocking = sorted(
        {f.guardrail for f in response.findings if f.action == pb.ACTION_BLOCK}
    )
    rules = sorted(
        {f.rule_id for f in response.findings if f.action == pb.ACTION_BLOCK}
    )
    return f"Blocked by guardrail-service ({', '.join(blocking)}: {', '.join(rules)})"


def _request(body: Mapping[str, Any], payload: pb.Payload) -> pb.CheckRequest:
    input_type = body.get("input_type")
    if input_type not in ("request", "response"):
        raise InvalidArgumentError(
            "input_type must be 'request' or 'response'",
            [FieldViolation("input_type", "'request' or 'response'")],
        )
    direction = pb.DIRECTION_INPUT if input_type == "request" else pb.DIRECTION_OUTPUT
    return pb.CheckRequest(
        payload=payload,
        direction=direction,
        guardrails=_guardrails(body),
        client_request_id=str(body.get("litellm_call_id") or _header_request_id())[
            :128
        ],
    )


def _header_request_id() -> str:
    # Check overwrites the record's client id: keep the x-request-id header's.
    record = current_call.get(None)
    return record.client_request_id if record is not None else ""


DEFAULT_HOLDBACK_CAP = 256  # GUARDRAIL_STREAM_HOLDBACK_CHARS' default


def _with_holdback(
    answer: GenericAnswer, checker: Checker, body: Mapping[str, Any], count: int, cap: int
) -> GenericAnswer:
    """Add stream_holdback_chars to an answer on model output that did not block."""
    if body.get("input_type") != "response" or answer.response is None:
        return answer
    names = list(answer.response.applied_guardrails)
    try:
        chars = engine_for(checker.registry.snapshot).holdback(names, cap).chars
    except KeyError:  # a guardrail deleted since the check: hold back the most
        chars = cap
    body = {**answer.body, "stream_holdback_chars": [chars] * count}
    return GenericAnswer(body, answer.response)


def _answer_texts(
    checker: Checker, body: Mapping[str, Any], holdback_cap: int = DEFAULT_HOLDBACK_CAP
) -> GenericAnswer:
    answer = _scan_texts(checker, body)
    if answer.body["action"] == BLOCKED:
        return answer
    return _with_holdback(answer, checker, body, len(_strings(body, "texts")), holdback_cap)


def _scan_texts(checker: Checker, body: Mapping[str, Any]) -> GenericAnswer:
    texts = _strings(body, "texts")
    calls = body.get("tool_calls") or []
    role = "user" if body.get("input_type") == "request" else "assistant"
    messages = [pb.Message(role=role, content=[pb.ContentPart(text=t)]) for t in texts]
    if calls:
        tool_calls = [_tool_call(c, i) for i, c in enumerate(calls)]
        messages.append(pb.Message(role="assistant", tool_calls=tool_calls))
    if not any(t for t in texts) and not calls:
        return GenericAnswer({"action": NONE}, None)

    response = checker.check(_request(body, pb.Payload(messages=messages)))
    if response.decision == pb.DECISION_BLOCK:
        return GenericAnswer(
            {"action": BLOCKED, "blocked_reason": _reason(response)}, response
        )
    if response.decision != pb.DECISION_MASK:
        return GenericAnswer({"action": NONE}, response)
    if any(
        f.location.path.startswith(f"messages[{len(texts)}]") for f in response.findings
    ):
        reason = "a tool call needs masking, which this API cannot return"
        return GenericAnswer({"action": BLOCKED, "blocked_reason": reason}, response)
    masked = [m.content[0].text for m in response.masked_payload.messages[: len(texts)]]
    return GenericAnswer({"action": INTERVENED, "texts": masked}, response)


def _answer_structured(checker: Checker, body: Mapping[str, Any]) -> GenericAnswer:
    rows = body.get("structured_messages")
    try:
        chat = parse_chat_body(json.dumps({"messages": rows}).encode())
    except (BodyError, UnscannableBody) as exc:  # an error: LiteLLM's fail mode decides
        path = "structured_messages"
        raise InvalidArgumentError(str(exc), [FieldViolation(path, str(exc))]) from None
    if chat.empty:
        return GenericAnswer({"action": NONE}, None)

    response = checker.check(_request(body, chat.payload))
    if response.decision == pb.DECISION_BLOCK:
        return GenericAnswer(
            {"action": BLOCKED, "blocked_reason": _reason(response)}, response
        )
    if response.decision != pb.DECISION_MASK:
        return GenericAnswer({"action": NONE}, response)
    rewritten = json.loads(chat.rewrite(response.masked_payload))
    answer = {"action": INTERVENED, "structured_messages": rewritten["messages"]}
    return GenericAnswer(answer, response)


def answer(
    checker: Checker, body: Any, *, holdback_cap: int = DEFAULT_HOLDBACK_CAP
) -> GenericAnswer:
    """Scan one Generic Guardrail API request; raises GuardrailError when malformed."""
    if not isinstance(body, Mapping):
        raise InvalidArgumentError(
            "body must be a JSON object", [FieldViolation("body", "object")]
        )
    if (
        not body.get("texts")
        and not body.get("tool_calls")
        and body.get("structured_messages")
    ):
        return _answer_structured(checker, body)
    return _answer_texts(checker, body, holdback_cap)
