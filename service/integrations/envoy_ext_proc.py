"""Envoy ``ext_proc``: scan chat requests and streamed answers inside Envoy.

One ``Process`` stream is one HTTP exchange. Expected processing mode:
request headers SEND, request body BUFFERED, response headers SEND, response
body STREAMED (see deploy/envoy/envoy.yaml).

- Request body: an OpenAI- or Anthropic-style chat body is scanned as input.
  BLOCK → an immediate 400 with an OpenAI-style JSON error; MASK → the body
  is rewritten and ``content-length`` set to the new length.
- Response body: server-sent events are re-emitted through the hold-back
  scanner (``sse.py``); a buffered JSON answer is scanned whole.
- A scan that fails or would overrun Envoy's message timeout answers by the
  configured failure mode: pass unchanged, or an immediate 503.

Known shortcoming: the call's one SpendLogs row carries the last scan of the
exchange (the answer's when there is one), not both directions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as ep
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as ep_grpc
from envoy.type.v3 import http_status_pb2
from guardrail.v1 import guardrail_pb2 as pb

from service.api.call_context import current_call
from service.api.payload import extract_segments, masked_payload
from service.checking import Checker, Selection, select_guardrails
from service.decide import decision_for, direction_reason, not_run
from service.engine import mask_text
from service.errors import InvalidArgumentError
from service.integrations._envoy_common import (
    EnvoyPolicy,
    ScanFailed,
    guardrail_names,
    headers_of,
    json_headers,
    note_failure,
    run_check,
)
from service.integrations.openai_bodies import (
    BodyError,
    ChatBody,
    UnscannableBody,
    error_body,
    parse_chat_body,
    parse_chat_response,
)
from service.integrations.sse import CallScan, CallScanner, SseDecoder, SseScanner
from service.registry import Registry
from service.streaming import (
    ScoreBook,
    StreamEngine,
    TextStream,
    ToolCallText,
    engine_for,
)
from service.types import Decision, Direction, Finding, GuardrailStatus

__all__ = ["SERVICE_NAME", "ExtProcServicer"]

SERVICE_NAME = ep.DESCRIPTOR.services_by_name["ExternalProcessor"].full_name
BLOCK_STATUS = http_status_pb2.BadRequest
UNAVAILABLE_STATUS = http_status_pb2.ServiceUnavailable
# Check's own path for the one tool call of the payload built to scan it.
_SCANNED_CALL = "messages[0].tool_calls[0]"


def _continue() -> ep.CommonResponse:
    return ep.CommonResponse()


def _immediate(
    status: int, body: bytes, request_id: str, details: str
) -> ep.ProcessingResponse:
    headers = ep.HeaderMutation(
        set_headers=json_headers([("x-guardrail-request-id", request_id)])
    )
    return ep.ProcessingResponse(
        immediate_response=ep.ImmediateResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=headers,
            body=body,
            details=details,
        )
    )


def _blocked(response: pb.CheckResponse) -> ep.ProcessingResponse:
    names = sorted(
        {f.guardrail for f in response.findings if f.action == pb.ACTION_BLOCK}
    )
    message = f"Blocked by guardrail: {', '.join(names) or 'policy'}"
    body = error_body(message, code="guardrail_blocked")
    return _immediate(BLOCK_STATUS, body, response.request_id, "guardrail_blocked")


def _content_length(length: int) -> ep.HeaderMutation:
    option = base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(
            key="content-length", raw_value=str(length).encode()
        )
    )
    return ep.HeaderMutation(set_headers=[option])


def _tool_call_scanner(
    engine: StreamEngine, names: Collection[str], book: ScoreBook
) -> CallScanner:
    """Scan a whole streamed tool call as Check scans one (as CheckStream does)."""

    def scan(call: ToolCallText) -> CallScan:
        tool_call = pb.ToolCall(
            id=call.id, name=call.name, arguments_json=call.arguments
        )
        message = pb.Message(role="assistant", tool_calls=[tool_call])
        payload = pb.Payload(messages=[message])
        try:
            segments = extract_segments(payload)
        except InvalidArgumentError:
            # Nested past the JSON depth: it cannot be scanned, so it is
            # not let through.
            return CallScan(call.name, "", [], blocked=True)
        found = engine.scanner.scan(segments, names).findings
        located = [_relocated(f, call.path) for f in found]
        if book.add(found):
            return CallScan(call.name, "", located, blocked=True)

        to_mask = [f for f in found if book.masks(f)]
        if to_mask:
            masked = masked_payload(payload, segments, to_mask, mask_text)
            tool_call = masked.messages[0].tool_calls[0]
        return CallScan(tool_call.name, tool_call.arguments_json, located)

    return scan


def _relocated(finding: Finding, call_path: str) -> Finding:
    path = call_path + finding.path.removeprefix(_SCANNED_CALL)
    return dataclasses.replace(finding, path=path)


def _request_id() -> str:
    record = current_call.get(None)
    return record.request_id if record is not None else ""


@dataclass(slots=True)
class _Exchange:
    """The state of one HTTP exchange (one Process stream)."""

    checker: Checker
    registry: Registry
    policy: EnvoyPolicy
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: bytearray = field(default_factory=bytearray)
    response_body: bytearray = field(default_factory=bytearray)
    streamed_answer: bool = False
    decoder: SseDecoder = field(default_factory=SseDecoder)
    scanner: SseScanner | None = None
    # The streamed answer's guardrails and their scores, for its record.
    stream_selection: Selection | None = None
    stream_book: ScoreBook | None = None

    # -- failure mode

    def _failed(self, failure: ScanFailed, *, phase: str) -> ep.ProcessingResponse:
        note_failure(failure, self.policy)
        if self.policy.fail_open:
            return ep.ProcessingResponse(
                **{phase: ep.BodyResponse(response=_continue())}  # type: ignore[arg-type]
            )
        body = error_body(
            "The guardrail could not check this request.",
            code="guardrail_unavailable",
            kind="server_error",
        )
        return _immediate(
            UNAVAILABLE_STATUS, body, _request_id(), failure.reason.lower()
        )

    # -- request

    def on_request_headers(self, message: ep.HttpHeaders) -> ep.ProcessingResponse:
        self.request_headers = headers_of(message.headers)
        return ep.ProcessingResponse(
            request_headers=ep.HeadersResponse(response=_continue())
        )

    async def on_request_body(self, message: ep.HttpBody) -> ep.ProcessingResponse:
        self.request_body += message.body
        if not message.end_of_stream:
            # Streamed request mode: hold every chunk until the body is whole.
            hold = ep.CommonResponse(body_mutation=ep.BodyMutation(body=b""))
            return ep.ProcessingResponse(request_body=ep.BodyResponse(response=hold))
        try:
            body = parse_chat_body(bytes(self.request_body))
        except BodyError:
            body = None  # not a chat request (a models list, an upload): not ours
        except UnscannableBody as exc:
            return self._failed(ScanFailed(exc.reason, str(exc)), phase="request_body")
        if body is None or body.empty:
            return self._pass_request_body(message)
        try:
            return await self._scan_request(body)
        except ScanFailed as failure:
            return self._failed(failure, phase="request_body")

    def _pass_request_body(self, message: ep.HttpBody) -> ep.ProcessingResponse:
        common = _continue()
        if len(self.request_body) != len(message.body):
            # Chunks were held back: send the whole body on now.
            common.body_mutation.body = bytes(self.request_body)
        return ep.ProcessingResponse(request_body=ep.BodyResponse(response=common))

    async def _scan_request(self, body: ChatBody) -> ep.ProcessingResponse:
        response = await self._check(body, pb.DIRECTION_INPUT)
        if response.decision == pb.DECISION_BLOCK:
            return _blocked(response)
        if response.decision == pb.DECISION_MASK:
            new_body = body.rewrite(response.masked_payload)
            common = ep.CommonResponse(
                header_mutation=_content_length(len(new_body)),
                body_mutation=ep.BodyMutation(body=new_body),
            )
            return ep.ProcessingResponse(request_body=ep.BodyResponse(response=common))
        return ep.ProcessingResponse(request_body=ep.BodyResponse(response=_continue()))

    async def _check(self, body: ChatBody, direction: int) -> pb.CheckResponse:
        request = pb.CheckRequest(
            payload=body.payload,
            direction=direction,  # type: ignore[arg-type]
            guardrails=guardrail_names(self.request_headers),
            client_request_id=self.request_headers.get("x-request-id", "")[:128],
        )
        return await run_check(self.checker, request, self.policy)

    # -- response

    def on_response_headers(self, message: ep.HttpHeaders) -> ep.ProcessingResponse:
        headers = headers_of(message.headers)
        self.streamed_answer = "text/event-stream" in headers.get("content-type", "")
        # We may change the body's length: let Envoy frame it (chunked / h2).
        common = ep.CommonResponse(
            header_mutation=ep.HeaderMutation(remove_headers=["content-length"])
        )
        return ep.ProcessingResponse(
            response_headers=ep.HeadersResponse(response=common)
        )

    async def on_response_body(self, message: ep.HttpBody) -> ep.ProcessingResponse:
        if self.streamed_answer:
            return self._stream_chunk(message)
        self.response_body += message.body
        if not message.end_of_stream:
            hold = ep.CommonResponse(body_mutation=ep.BodyMutation(body=b""))
            return ep.ProcessingResponse(response_body=ep.BodyResponse(response=hold))
        try:
            return await self._scan_answer(bytes(self.response_body))
        except ScanFailed as failure:
            return self._failed(failure, phase="response_body")

    async def _scan_answer(self, raw: bytes) -> ep.ProcessingResponse:
        try:
            body = parse_chat_response(raw)
        except BodyError:
            body = None
        except UnscannableBody as exc:
            raise ScanFailed(exc.reason, str(exc)) from None
        out = raw
        if body is not None and not body.empty:
            response = await self._check(body, pb.DIRECTION_OUTPUT)
            if response.decision == pb.DECISION_BLOCK:
                return _blocked(response)
            if response.decision == pb.DECISION_MASK:
                out = body.rewrite(response.masked_payload)
        common = ep.CommonResponse(body_mutation=ep.BodyMutation(body=out))
        return ep.ProcessingResponse(response_body=ep.BodyResponse(response=common))

    def _new_scanner(self) -> SseScanner:
        snapshot = self.registry.snapshot
        names = guardrail_names(self.request_headers)
        selection = select_guardrails(snapshot, names, Direction.OUTPUT)
        engine = engine_for(snapshot)
        chars = engine.holdback(selection.names, self.policy.holdback).chars
        book = ScoreBook(selection.ran)  # one per answer: scores span its choices

        def new_stream(index: int) -> TextStream:
            return TextStream(index, engine.scanner, selection.names, chars, book)

        record = current_call.get(None)
        if record is not None:
            record.direction = Direction.OUTPUT
            record.applied_guardrails = selection.names
            record.registry_generation = snapshot.generation
        scan_call = _tool_call_scanner(engine, selection.names, book)
        self.stream_selection, self.stream_book = selection, book
        return SseScanner(new_stream, scan_call)

    def _stream_chunk(self, message: ep.HttpBody) -> ep.ProcessingResponse:
        if self.scanner is None:
            self.scanner = self._new_scanner()
        scanner = self.scanner
        out = scanner.process(self.decoder.feed(message.body))
        if message.end_of_stream:
            out += scanner.process(self.decoder.finish()) + scanner.close()
            self._record_stream(scanner)
        common = ep.CommonResponse(body_mutation=ep.BodyMutation(body=out.encode()))
        return ep.ProcessingResponse(response_body=ep.BodyResponse(response=common))

    def _record_stream(self, scanner: SseScanner) -> None:
        record = current_call.get(None)
        book, selection = self.stream_book, self.stream_selection
        if record is None or book is None or selection is None:
            return
        findings = book.kept(scanner.findings)
        reason = direction_reason(Direction.OUTPUT)
        outcomes = book.outcomes(findings)
        outcomes += [not_run(g, reason) for g in selection.skipped]
        acted = {o.action for o in outcomes if o.status is GuardrailStatus.INTERVENED}
        record.decision = Decision.BLOCK if scanner.blocked else decision_for(acted)
        record.outcomes = outcomes
        record.findings = findings
        record.chunk_count = scanner.events
        record.stream_end = "blocked" if scanner.blocked else "completed"


class ExtProcServicer(ep_grpc.ExternalProcessorServicer):
    """``envoy.service.ext_proc.v3.ExternalProcessor`` over our checker."""

    def __init__(
        self, checker: Checker, registry: Registry, policy: EnvoyPolicy
    ) -> None:
        self._checker = checker
        self._registry = registry
        self._policy = policy

    async def Process(
        self,
        request_iterator: AsyncIterator[ep.ProcessingRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[ep.ProcessingResponse]:
        exchange = _Exchange(self._checker, self._registry, self._policy)
        async for message in request_iterator:
            response = await _dispatch(exchange, message)
            if response is None:
                continue
            yield response
            if response.HasField("immediate_response"):
                return


async def _dispatch(
    exchange: _Exchange, message: ep.ProcessingRequest
) -> ep.ProcessingResponse | None:
    kind = message.WhichOneof("request")
    if kind == "request_headers":
        return exchange.on_request_headers(message.request_headers)
    if kind == "request_body":
        return await exchange.on_request_body(message.request_body)
    if kind == "response_headers":
        return exchange.on_response_headers(message.response_headers)
    if kind == "response_body":
        return await exchange.on_response_body(message.response_body)
    if kind == "request_trailers":
        return ep.ProcessingResponse(request_trailers=ep.TrailersResponse())
    if kind == "response_trailers":
        return ep.ProcessingResponse(response_trailers=ep.TrailersResponse())
    return None  # observability-only or unknown messages need no answer
