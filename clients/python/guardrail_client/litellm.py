"""A LiteLLM custom guardrail that calls guardrail-service over gRPC.

    # config.yaml
    guardrails:
      - guardrail_name: guardrail-service
        litellm_params:
          guardrail: guardrail_client.litellm.GuardrailServiceGuardrail
          mode: [pre_call, post_call]
          api_base: 127.0.0.1:50051      # the service's gRPC address
          default_on: true

Pre-call and during-call scan the request's messages (input), post-call the
answer's choices (output); streamed answers go through ``CheckStream`` with
its hold-back, so no match is emitted before it is decided. A block raises
LiteLLM's ``GuardrailRaisedException`` with status 400 (LiteLLM answers the
end user 400, never 500); a mask rewrites the messages or the answer. Every
scan is recorded in LiteLLM's standard guardrail logging
(``standard_logging_guardrail_information``, which LiteLLM puts in its
SpendLogs metadata) with our per-guardrail results.

When the service cannot be reached: ``fail_open: true`` lets the call
through and records ``guardrail_failed_to_respond``; otherwise (the default)
the call fails with 503.

Needs ``litellm`` (``pip install 'guardrail-client[litellm]'``); it is not a
dependency of the client itself.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

from guardrail.v1 import guardrail_pb2 as pb
from litellm.exceptions import GuardrailRaisedException
from litellm.integrations.custom_guardrail import CustomGuardrail
from litellm.types.guardrails import GuardrailEventHooks

from guardrail_client._client import AsyncGuardrailClient
from guardrail_client._errors import GuardrailRpcError
from guardrail_client._models import CheckResult, StreamRelease, StreamVerdict

__all__ = ["GuardrailServiceGuardrail", "PROVIDER"]

PROVIDER = "guardrail-service"
BLOCK_STATUS = 400
UNAVAILABLE_STATUS = 503
_SUPPORTED = [
    GuardrailEventHooks.pre_call,
    GuardrailEventHooks.during_call,
    GuardrailEventHooks.post_call,
]

Slot = tuple[int, str, int]  # (message index, "text" | "tool", index in the message)


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    return [str(n) for n in value or ()]


def _to_proto(messages: list[Mapping[str, Any]]) -> tuple[list[pb.Message], list[Slot]]:
    """Scan-ready messages (text parts and tool calls) and where each came from."""
    out, slots = [], []
    for i, message in enumerate(messages):
        proto = pb.Message(role=str(message.get("role") or ""))
        content = message.get("content")
        parts = [content] if isinstance(content, str) else content or []
        for j, part in enumerate(parts if isinstance(parts, list) else []):
            text = (
                part
                if isinstance(part, str)
                else part.get("text")
                if isinstance(part, Mapping)
                else None
            )
            if isinstance(text, str):
                proto.content.append(pb.ContentPart(text=text))
                slots.append((i, "text", j))
        for k, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            arguments = function.get("arguments") or ""
            proto.tool_calls.append(
                pb.ToolCall(
                    id=str(call.get("id") or ""),
                    name=str(function.get("name") or ""),
                    arguments_json=arguments
                    if isinstance(arguments, str)
                    else json.dumps(arguments),
                )
            )
            slots.append((i, "tool", k))
        out.append(proto)
    return out, slots


def _write_back(
    messages: list[dict[str, Any]], masked: pb.Payload, slots: list[Slot]
) -> None:
    counters: dict[tuple[int, str], int] = {}
    for i, kind, index in slots:
        position = counters.get((i, kind), 0)
        counters[(i, kind)] = position + 1
        proto = masked.messages[i]
        if kind == "tool":
            messages[i]["tool_calls"][index]["function"]["arguments"] = (
                proto.tool_calls[position].arguments_json
            )
            continue
        text = proto.content[position].text
        content = messages[i]["content"]
        if isinstance(content, str):
            messages[i]["content"] = text
        elif isinstance(content[index], str):
            content[index] = text
        else:
            content[index]["text"] = text


def _summary(result: CheckResult | StreamVerdict) -> dict[str, Any]:
    """What LiteLLM logs: verdict, per-guardrail results, rule ids (never content)."""
    return {
        "request_id": result.request_id,
        "decision": str(result.decision),
        "guardrail_results": [
            {
                "name": r.name,
                "version": r.version,
                "status": str(r.status),
                "action": str(r.action),
                "finding_count": r.finding_count,
                "reason": r.reason,
            }
            for r in result.guardrail_results
        ],
        "findings": [
            {
                "guardrail": f.guardrail,
                "rule_id": f.rule_id,
                "category": f.category,
                "path": f.path,
                "start": f.start,
                "end": f.end,
            }
            for f in result.findings
        ],
        "applied_guardrails": list(result.applied_guardrails),
    }


def _masked_counts(result: CheckResult | StreamVerdict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in result.findings:
        if str(finding.action) == "MASK":
            counts[finding.category] = counts.get(finding.category, 0) + 1
    return counts


class GuardrailServiceGuardrail(CustomGuardrail):
    """LiteLLM guardrail backed by guardrail-service (gRPC, asyncio client).

    ``litellm_params``: ``api_base`` (gRPC ``host:port``), ``guardrails``
    (names to run; default: the service's defaults), ``fail_open``
    (default false; LiteLLM's ``unreachable_fallback: fail_open`` works too),
    ``timeout`` (seconds per call, default 2).
    """

    def __init__(
        self,
        api_base: str | None = None,
        guardrails: list[str] | str | None = None,
        fail_open: bool | None = None,
        unreachable_fallback: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.target = (api_base or "127.0.0.1:50051").removeprefix("grpc://")
        self.guardrails = _names(guardrails)
        self.fail_open = bool(fail_open) or unreachable_fallback == "fail_open"
        self.call_timeout = float(timeout or 2.0)
        kwargs.setdefault("supported_event_hooks", _SUPPORTED)
        super().__init__(**kwargs)
        self._client: AsyncGuardrailClient | None = None

    @property
    def client(self) -> AsyncGuardrailClient:
        # Created on first use, inside LiteLLM's loop: grpc.aio binds to it.
        if self._client is None:
            self._client = AsyncGuardrailClient(self.target, timeout=self.call_timeout)
        return self._client

    # -- LiteLLM hooks

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any
    ) -> dict:
        if self.should_run_guardrail(data, GuardrailEventHooks.pre_call) is not True:
            return data
        await self._check_request(data, GuardrailEventHooks.pre_call)
        return data

    async def async_moderation_hook(
        self, data: dict, user_api_key_dict: Any, call_type: Any
    ) -> None:
        if self.should_run_guardrail(data, GuardrailEventHooks.during_call) is not True:
            return
        # During-call runs beside the model call: it can block, not rewrite.
        await self._check_request(data, GuardrailEventHooks.during_call, rewrite=False)

    async def async_post_call_success_hook(
        self, data: dict, user_api_key_dict: Any, response: Any
    ) -> Any:
        if self.should_run_guardrail(data, GuardrailEventHooks.post_call) is not True:
            return response
        choices = getattr(response, "choices", None)
        if not choices or not hasattr(choices[0], "message"):
            return response  # not a chat completion (embeddings, images, ...)
        messages = [c.message.model_dump(exclude_none=True) for c in choices]
        result = await self._scan(
            messages, "output", data, GuardrailEventHooks.post_call
        )
        if (
            result is not None
            and str(result.decision) == "MASK"
            and result.masked_payload
        ):
            protos_slots = _to_proto(messages)[1]
            _write_back(messages, result.masked_payload, protos_slots)
            for choice, masked in zip(choices, messages, strict=True):
                choice.message.content = masked.get("content")
                for call, masked_call in zip(
                    choice.message.tool_calls or [],
                    masked.get("tool_calls") or [],
                    strict=False,
                ):
                    call.function.arguments = masked_call["function"]["arguments"]
        return response

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict
    ) -> AsyncGenerator[Any, None]:
        if (
            self.should_run_guardrail(request_data, GuardrailEventHooks.post_call)
            is not True
        ):
            async for chunk in response:
                yield chunk
            return
        async for chunk in _GuardedStream(self, response, request_data).run():
            yield chunk

    # -- scanning and recording

    async def _check_request(
        self, data: dict, event: GuardrailEventHooks, *, rewrite: bool = True
    ) -> None:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            return
        result = await self._scan(messages, "input", data, event)
        if (
            rewrite
            and result is not None
            and str(result.decision) == "MASK"
            and result.masked_payload
        ):
            _write_back(messages, result.masked_payload, _to_proto(messages)[1])

    async def _scan(
        self,
        messages: list[Any],
        direction: str,
        data: dict,
        event: GuardrailEventHooks,
    ) -> CheckResult | None:
        protos, _ = _to_proto(messages)
        started = time.time()
        try:
            result = await self.client.check(
                messages=protos,
                direction=direction,
                guardrails=self.guardrails,
                client_request_id=str(data.get("litellm_call_id") or ""),
            )
        except GuardrailRpcError as exc:
            self._failed(exc, data, event, started)
            return None
        self._record(result, data, event, started)
        if result.blocked:
            raise self.blocked_error(result)
        return result

    def blocked_error(
        self, result: CheckResult | StreamVerdict
    ) -> GuardrailRaisedException:
        rules = sorted(
            {
                f"{f.guardrail}/{f.rule_id}"
                for f in result.findings
                if str(f.action) == "BLOCK"
            }
        )
        message = f"Blocked by guardrail-service: {', '.join(rules)}"
        return GuardrailRaisedException(
            guardrail_name=self.guardrail_name,
            message=f"{message} (request {result.request_id})",
            should_wrap_with_default_message=False,
            status_code=BLOCK_STATUS,
            blocked_content=True,
        )

    def _record(
        self,
        result: CheckResult | StreamVerdict,
        data: dict,
        event: GuardrailEventHooks,
        started: float,
    ) -> None:
        decision = str(result.decision)
        status = (
            "success"
            if decision in ("ALLOW", "UNSPECIFIED")
            else ("guardrail_flagged" if decision == "FLAG" else "guardrail_intervened")
        )
        ended = time.time()
        self.add_standard_logging_guardrail_information_to_request_data(
            guardrail_json_response=_summary(result),
            request_data=data,
            guardrail_status=status,  # type: ignore[arg-type]
            start_time=started,
            end_time=ended,
            duration=ended - started,
            masked_entity_count=_masked_counts(result) or None,
            guardrail_provider=PROVIDER,
            event_type=event,
        )

    def _failed(
        self,
        error: GuardrailRpcError,
        data: dict,
        event: GuardrailEventHooks,
        started: float,
    ) -> None:
        ended = time.time()
        response = {
            "error": error.code.name,
            "reason": error.reason,
            "fail_open": self.fail_open,
        }
        self.add_standard_logging_guardrail_information_to_request_data(
            guardrail_json_response=response,
            request_data=data,
            guardrail_status="guardrail_failed_to_respond",
            start_time=started,
            end_time=ended,
            duration=ended - started,
            guardrail_provider=PROVIDER,
            event_type=event,
        )
        if not self.fail_open:
            raise GuardrailRaisedException(
                guardrail_name=self.guardrail_name,
                message=f"guardrail-service unavailable ({error.code.name})",
                should_wrap_with_default_message=False,
                status_code=UNAVAILABLE_STATUS,
            ) from error


class _GuardedStream:
    """One streamed answer through CheckStream: emit only released text."""

    def __init__(
        self, owner: GuardrailServiceGuardrail, upstream: Any, data: dict
    ) -> None:
        self.owner = owner
        self.upstream = upstream
        self.data = data
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()  # None: the end
        self.released: asyncio.Queue[StreamRelease | StreamVerdict | BaseException] = (
            asyncio.Queue()
        )
        self.template: Any = None
        self.finishing: list[Any] = []

    async def _texts(self) -> AsyncIterator[str]:
        while True:
            text = await self.inbox.get()
            if text is None:
                return
            yield text

    async def _read(self) -> None:
        try:
            async for event in self.owner.client.check_stream(
                self._texts(),
                direction="output",
                guardrails=self.owner.guardrails,
                client_request_id=str(self.data.get("litellm_call_id") or ""),
            ):
                await self.released.put(event)  # type: ignore[arg-type]
        except BaseException as exc:  # handed to the generator, which decides
            await self.released.put(exc)

    def _chunk(self, text: str, finish: str | None = None) -> Any:
        chunk = copy.deepcopy(self.template)
        choice = chunk.choices[0]
        choice.delta.content = text
        choice.delta.tool_calls = None
        choice.finish_reason = finish
        return chunk

    def _drain(self) -> tuple[list[Any], StreamVerdict | None]:
        out, verdict = [], None
        while not self.released.empty():
            event = self.released.get_nowait()
            if isinstance(event, BaseException):
                raise event
            if isinstance(event, StreamVerdict):
                verdict = event
            elif event.text:
                out.append(self._chunk(event.text))
        return out, verdict

    async def run(self) -> AsyncIterator[Any]:
        reader = asyncio.create_task(self._read())
        started = time.time()
        verdict = None
        try:
            async for chunk in self.upstream:
                if self.template is None:
                    self.template = copy.deepcopy(chunk)
                choice = chunk.choices[0] if chunk.choices else None
                text = getattr(getattr(choice, "delta", None), "content", None)
                if text:
                    await self.inbox.put(text)
                if choice is not None and choice.finish_reason:
                    self.finishing.append(chunk)
                released, verdict = self._drain()
                for out in released:
                    yield out
                if verdict is not None:
                    break
            await self.inbox.put(None)
            await reader
            released, final = self._drain()
            verdict = final or verdict
            for out in released:
                yield out
        except GuardrailRpcError as exc:
            self.owner._failed(exc, self.data, GuardrailEventHooks.post_call, started)
            return  # fail-open: the answer was released as scanned so far
        finally:
            reader.cancel()
        if verdict is None:
            return
        self.owner._record(verdict, self.data, GuardrailEventHooks.post_call, started)
        if verdict.blocked:
            yield self._chunk("", finish="content_filter")
            return
        for chunk in self.finishing:
            chunk.choices[0].delta.content = None
            yield chunk
