"""GuardrailClient (blocking) and AsyncGuardrailClient (asyncio).

Both keep one channel for their lifetime, put a deadline on every call and
raise ``GuardrailRpcError`` subclasses; a BLOCK verdict is a result, not an
error.

Unary reads and ``check`` are retried on UNAVAILABLE only (``retry``, a
``RetryPolicy``); ``fail_open=True`` makes ``check`` return an ALLOW marked
``failed_open`` (with the error) when the service could not evaluate.
Register is never retried: replacing a guardrail is not idempotent.

Each client keeps at most ``max_in_flight`` calls open at once and queues the
rest: the server refuses HTTP/2 streams past its GUARDRAIL_MAX_CONCURRENT_STREAMS
per connection (default 100), and grpc's client does not reliably hold them
back when streaming calls are in the mix (they fail as UNAVAILABLE, which
fail-open would turn into an ALLOW).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from guardrail_client import _payloads
from guardrail_client._auth import (
    aio_bearer_interceptors,
    bearer_interceptor,
    tls_credentials,
)
from guardrail_client._errors import GuardrailRpcError, from_rpc_error
from guardrail_client._models import (
    CheckResult,
    RegisterResult,
    StreamDelta,
    StreamEvent,
    check_result_from_proto,
    register_result_from_proto,
    stream_event_from_proto,
)
from guardrail_client._resilience import (
    FAIL_OPEN_CODES,
    RetryPolicy,
    failed_open_result,
)

__all__ = [
    "DEFAULT_STREAM_TIMEOUT_S",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT_S",
    "AsyncGuardrailClient",
    "GuardrailClient",
    "aio_bearer_interceptors",  # re-exported from _auth: a key on your own aio channel
    "tls_credentials",
]

DEFAULT_TARGET = "localhost:50051"
DEFAULT_TIMEOUT_S = 2.0
# A stream lives as long as the model's answer, so its deadline is longer.
DEFAULT_STREAM_TIMEOUT_S = 120.0
# Below the server's default GUARDRAIL_MAX_CONCURRENT_STREAMS (100).
DEFAULT_MAX_IN_FLIGHT = 64

def _seconds(timeout: float | None, default: float) -> float:
    """A call's deadline in seconds: ``None`` is the client's default."""
    if timeout is None:
        return default
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return timeout


CallerLike = Mapping[str, Any] | pb.Caller | None
GuardrailLike = Mapping[str, Any] | pb.Guardrail


def _check_request(
    text: str | None,
    messages: Iterable[_payloads.MessageLike] | None,
    tools: Iterable[_payloads.ToolLike] | None,
    direction: str | int,
    guardrails: Iterable[str],
    client_request_id: str,
    caller: CallerLike,
) -> pb.CheckRequest:
    return pb.CheckRequest(
        payload=_payloads.payload(text, messages=messages, tools=tools),
        direction=_payloads.direction(direction),
        guardrails=list(guardrails),
        client_request_id=client_request_id,
        caller=_payloads.caller(caller),
    )


def _open_request(
    direction: str | int,
    guardrails: Iterable[str],
    client_request_id: str,
    caller: CallerLike,
) -> pb.CheckStreamRequest:
    opening = pb.StreamOpen(
        direction=_payloads.direction(direction),
        guardrails=list(guardrails),
        client_request_id=client_request_id,
        caller=_payloads.caller(caller),
    )
    return pb.CheckStreamRequest(open=opening)


StreamChunkLike = str | StreamDelta | pb.StreamChunk


def _chunk(chunk: StreamChunkLike) -> pb.CheckStreamRequest:
    """A text, a StreamDelta (tool-call fragments, finish) or a ready StreamChunk."""
    if isinstance(chunk, str):
        return pb.CheckStreamRequest(chunk=pb.StreamChunk(text=chunk))
    if isinstance(chunk, StreamDelta):
        return pb.CheckStreamRequest(chunk=chunk.to_proto())
    if isinstance(chunk, pb.StreamChunk):
        return pb.CheckStreamRequest(chunk=chunk)
    kind = type(chunk).__name__
    raise TypeError(f"a stream chunk is a str, StreamDelta or StreamChunk, not {kind}")


def _register_requests(
    guardrails: Iterable[GuardrailLike], validate_only: bool
) -> list[pb.RegisterRequest]:
    return [
        pb.RegisterRequest(
            guardrail=_payloads.guardrail(g), validate_only=validate_only
        )
        for g in guardrails
    ]


def _register_results(
    requests: list[pb.RegisterRequest], responses: list[pb.RegisterResponse]
) -> list[RegisterResult]:
    results = [
        register_result_from_proto(response, request.guardrail.name)
        for request, response in zip(requests, responses, strict=False)
    ]
    for request in requests[len(responses) :]:
        # Nothing silent: an item the server never answered is a failure.
        missing = GuardrailRpcError(grpc.StatusCode.UNKNOWN, "no answer for item")
        results.append(
            RegisterResult(request.guardrail.name, accepted=False, error=missing)
        )
    return results


class GuardrailClient:
    """Blocking client; one channel, reused by every call.

    with GuardrailClient("localhost:50051") as client:
        result = client.check("my prompt", guardrails=["pii"])
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        channel: grpc.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT_S,
        options: Iterable[tuple[str, Any]] = (),
        retry: RetryPolicy | None = None,
        fail_open: bool = False,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_key: bytes | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        # A channel passed in belongs to the caller, who closes it.
        self._owns_channel = channel is None
        if credentials is None and (root_certificates or client_certificate):
            credentials = tls_credentials(root_certificates, client_certificate, client_key)
        if channel is None and credentials is not None:
            channel = grpc.secure_channel(target, credentials, options=list(options))
        elif channel is None:
            channel = grpc.insecure_channel(target, options=list(options))
        if api_key:  # "authorization: Bearer <key>" on every call
            channel = grpc.intercept_channel(channel, bearer_interceptor(api_key))
        self._channel = channel
        self._stub = pb_grpc.GuardrailServiceStub(channel)
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.retry = retry or RetryPolicy()
        self.fail_open = fail_open
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def check(
        self,
        text: str | None = None,
        *,
        messages: Iterable[_payloads.MessageLike] | None = None,
        tools: Iterable[_payloads.ToolLike] | None = None,
        direction: str | int = "input",
        guardrails: Iterable[str] = (),
        client_request_id: str = "",
        caller: CallerLike = None,
        timeout: float | None = None,
    ) -> CheckResult:
        """Scan one payload; empty ``guardrails`` runs the defaults."""
        request = _check_request(
            text, messages, tools, direction, guardrails, client_request_id, caller
        )

        def send() -> pb.CheckResponse:
            try:
                with self._slots:
                    return self._stub.Check(request, timeout=_seconds(timeout, self.timeout))
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc

        try:
            response = self.retry.call(send)
        except GuardrailRpcError as error:
            if self.fail_open and error.code in FAIL_OPEN_CODES:
                return failed_open_result(error)
            raise
        return check_result_from_proto(response)

    def check_stream(
        self,
        chunks: Iterable[StreamChunkLike],
        *,
        direction: str | int = "output",
        guardrails: Iterable[str] = (),
        client_request_id: str = "",
        caller: CallerLike = None,
        timeout: float | None = None,
    ) -> Iterator[StreamEvent]:
        """Scan a streamed answer; yields releases and tool calls, then one StreamVerdict.

        Chunks are texts, or ``StreamDelta`` for tool-call fragments, other
        choices and finish reasons; a StreamToolCall comes once a call is whole.
        """
        opening = _open_request(direction, guardrails, client_request_id, caller)

        failed: list[BaseException] = []

        def requests() -> Iterator[pb.CheckStreamRequest]:
            yield opening
            try:
                for chunk in chunks:
                    yield _chunk(chunk)
            except Exception as exc:
                # grpc would report this only as UNKNOWN; keep it for the caller.
                failed.append(exc)
                raise
            yield pb.CheckStreamRequest(end=pb.StreamEnd())

        with self._slots:
            call = self._stub.CheckStream(
                requests(), timeout=_seconds(timeout, self.stream_timeout)
            )
            try:
                for response in call:
                    yield stream_event_from_proto(response)
            except grpc.RpcError as exc:
                if failed:
                    raise failed[0] from None
                raise from_rpc_error(exc) from exc
            finally:
                call.cancel()  # a no-op when finished; frees it when abandoned

    def register(
        self,
        guardrails: Iterable[GuardrailLike],
        *,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> list[RegisterResult]:
        """Create, replace or dry-run validate guardrails; one result per item."""
        requests = _register_requests(guardrails, validate_only)
        try:
            with self._slots:
                responses = list(
                    self._stub.Register(iter(requests), timeout=_seconds(timeout, self.timeout))
                )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return _register_results(requests, responses)

    def list_guardrails(
        self, *, include_rules: bool = False, timeout: float | None = None
    ) -> list[pb.Guardrail]:
        request = pb.ListGuardrailsRequest(include_rules=include_rules)
        try:
            response = self._stub.ListGuardrails(
                request, timeout=_seconds(timeout, self.timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return list(response.guardrails)

    def get_guardrail(self, name: str, *, timeout: float | None = None) -> pb.Guardrail:
        request = pb.GetGuardrailRequest(name=name)
        try:
            response = self._stub.GetGuardrail(request, timeout=_seconds(timeout, self.timeout))
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return response.guardrail

    def delete_guardrail(self, name: str, *, timeout: float | None = None) -> int:
        """Remove a guardrail; returns the new registry generation."""
        request = pb.DeleteGuardrailRequest(name=name)
        try:
            response = self._stub.DeleteGuardrail(
                request, timeout=_seconds(timeout, self.timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return response.registry_generation

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> GuardrailClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


async def _aiter_chunks(
    chunks: AsyncIterable[StreamChunkLike] | Iterable[StreamChunkLike],
) -> AsyncIterator[StreamChunkLike]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk


class AsyncGuardrailClient:
    """asyncio client over ``grpc.aio``; one channel, reused by every call.

    async with AsyncGuardrailClient("localhost:50051") as client:
        result = await client.check("my prompt", guardrails=["pii"])
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        channel: grpc.aio.Channel | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT_S,
        options: Iterable[tuple[str, Any]] = (),
        retry: RetryPolicy | None = None,
        fail_open: bool = False,
        api_key: str | None = None,
        root_certificates: bytes | None = None,
        client_certificate: bytes | None = None,
        client_key: bytes | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self._owns_channel = channel is None
        if credentials is None and (root_certificates or client_certificate):
            credentials = tls_credentials(root_certificates, client_certificate, client_key)
        if api_key and channel is not None:
            raise ValueError(
                "api_key needs a channel the client makes; for your own channel pass "
                "interceptors=guardrail_client.aio_bearer_interceptors(key)"
            )
        interceptors = aio_bearer_interceptors(api_key) if api_key else None
        if channel is None and credentials is not None:
            channel = grpc.aio.secure_channel(
                target, credentials, options=list(options), interceptors=interceptors
            )
        elif channel is None:
            channel = grpc.aio.insecure_channel(
                target, options=list(options), interceptors=interceptors
            )
        self._channel = channel
        self._stub = pb_grpc.GuardrailServiceStub(channel)
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.retry = retry or RetryPolicy()
        self.fail_open = fail_open
        self._slots = asyncio.Semaphore(max_in_flight)

    async def check(
        self,
        text: str | None = None,
        *,
        messages: Iterable[_payloads.MessageLike] | None = None,
        tools: Iterable[_payloads.ToolLike] | None = None,
        direction: str | int = "input",
        guardrails: Iterable[str] = (),
        client_request_id: str = "",
        caller: CallerLike = None,
        timeout: float | None = None,
    ) -> CheckResult:
        """Scan one payload; empty ``guardrails`` runs the defaults."""
        request = _check_request(
            text, messages, tools, direction, guardrails, client_request_id, caller
        )

        async def send() -> pb.CheckResponse:
            try:
                async with self._slots:
                    return await self._stub.Check(
                        request, timeout=_seconds(timeout, self.timeout)
                    )
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc

        try:
            response = await self.retry.acall(send)
        except GuardrailRpcError as error:
            if self.fail_open and error.code in FAIL_OPEN_CODES:
                return failed_open_result(error)
            raise
        return check_result_from_proto(response)

    async def check_stream(
        self,
        chunks: AsyncIterable[StreamChunkLike] | Iterable[StreamChunkLike],
        *,
        direction: str | int = "output",
        guardrails: Iterable[str] = (),
        client_request_id: str = "",
        caller: CallerLike = None,
        timeout: float | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Scan a streamed answer; yields releases and tool calls, then one StreamVerdict.

        Chunks as for ``GuardrailClient.check_stream``.
        """
        opening = _open_request(direction, guardrails, client_request_id, caller)

        failed: list[BaseException] = []

        async def requests() -> AsyncIterator[pb.CheckStreamRequest]:
            yield opening
            try:
                async for chunk in _aiter_chunks(chunks):
                    yield _chunk(chunk)
            except Exception as exc:
                # grpc.aio would only cancel the call; keep it for the caller.
                failed.append(exc)
                raise
            yield pb.CheckStreamRequest(end=pb.StreamEnd())

        async with self._slots:
            call = self._stub.CheckStream(
                requests(), timeout=_seconds(timeout, self.stream_timeout)
            )
            try:
                async for response in call:
                    yield stream_event_from_proto(response)
            except (grpc.RpcError, asyncio.CancelledError) as exc:
                if failed:
                    raise failed[0] from None
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise from_rpc_error(exc) from exc
            finally:
                call.cancel()

    async def register(
        self,
        guardrails: Iterable[GuardrailLike],
        *,
        validate_only: bool = False,
        timeout: float | None = None,
    ) -> list[RegisterResult]:
        """Create, replace or dry-run validate guardrails; one result per item."""
        requests = _register_requests(guardrails, validate_only)
        try:
            async with self._slots:
                call = self._stub.Register(
                    iter(requests), timeout=_seconds(timeout, self.timeout)
                )
                responses = [response async for response in call]
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return _register_results(requests, responses)

    async def list_guardrails(
        self, *, include_rules: bool = False, timeout: float | None = None
    ) -> list[pb.Guardrail]:
        request = pb.ListGuardrailsRequest(include_rules=include_rules)
        try:
            response = await self._stub.ListGuardrails(
                request, timeout=_seconds(timeout, self.timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return list(response.guardrails)

    async def get_guardrail(
        self, name: str, *, timeout: float | None = None
    ) -> pb.Guardrail:
        request = pb.GetGuardrailRequest(name=name)
        try:
            response = await self._stub.GetGuardrail(
                request, timeout=_seconds(timeout, self.timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return response.guardrail

    async def delete_guardrail(self, name: str, *, timeout: float | None = None) -> int:
        """Remove a guardrail; returns the new registry generation."""
        request = pb.DeleteGuardrailRequest(name=name)
        try:
            response = await self._stub.DeleteGuardrail(
                request, timeout=_seconds(timeout, self.timeout)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return response.registry_generation

    async def aclose(self) -> None:
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncGuardrailClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
