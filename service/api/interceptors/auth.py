"""The authentication interceptor: API key → principal → scope → rate.

It sits inside the recording interceptor (after it in the server's list),
so a rejected call is still one recorded call: the handler it returns raises
the error inside the recorded call, which turns it into a status with
ErrorInfo and writes the row, metric and span with the right code.

- No keys configured (GUARDRAIL_API_KEYS_FILE unset): every call passes,
  anonymous; nothing is rate limited.
- Keys configured: ``authorization: Bearer <key>`` must name a known key
  (else UNAUTHENTICATED), whose scopes include the method's (else
  PERMISSION_DENIED), whose bucket has a token (else RESOURCE_EXHAUSTED).
  Check, CheckStream, PinMcpTools and ListMcpPins need ``check``; every
  other GuardrailService method (Register, Delete, List, Get, History,
  ClearMcpPins, and any added later) needs ``admin``.
- Health and reflection are never intercepted.
- Envoy ext_proc / ext_authz: Envoy is the client. A verified client
  certificate (mutual TLS, GUARDRAIL_TLS_CLIENT_CA_FILE) authenticates it
  with scope ``check``; without mTLS Envoy must send a ``check`` key in its
  ``grpc_service.initial_metadata``. Any other service needs ``admin``.

On success the call record gets the principal and the key's hash prefix as
``api_key_hash``; the key itself is dropped here and never recorded.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from service.api.call_context import current_call
from service.api.interceptors.recording import EXCLUDED_PREFIXES
from service.auth import Authenticator
from service.types import Principal

__all__ = ["AuthInterceptor", "required_scope"]

GUARDRAIL_SERVICE = "/guardrail.v1.GuardrailService/"
# Pinning MCP tools is part of a gateway's checking and touches only the
# caller's own team/tenant pins; clearing them (which would hide a rug pull)
# is an operator's act.
CHECK_METHODS = frozenset({"Check", "CheckStream", "PinMcpTools", "ListMcpPins"})
ENVOY_PREFIXES = ("/envoy.service.ext_proc.", "/envoy.service.auth.")

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]


def required_scope(method: str) -> str:
    """The scope a full method path needs; unknown methods need ``admin``."""
    if method.startswith(GUARDRAIL_SERVICE):
        return "check" if method[len(GUARDRAIL_SERVICE) :] in CHECK_METHODS else "admin"
    if method.startswith(ENVOY_PREFIXES):
        return "check"
    return "admin"


def _certificate_principal(context: grpc.aio.ServicerContext) -> Principal | None:
    """Envoy with a verified client certificate (grpc only lists a peer
    identity after the handshake verified it against the client CA)."""
    auth = context.auth_context() or {}
    names = auth.get("x509_common_name") or auth.get("x509_subject_alternative_name")
    if not names:
        return None
    name = names[0].decode("utf-8", "replace")
    return Principal(key_id=f"cert:{name}"[:64], scopes=frozenset({"check"}))


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates and authorises every call but health and reflection."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator
        self._wrapped: dict[
            str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]
        ] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if (
            not self._auth.enabled
            or handler is None
            or method.startswith(EXCLUDED_PREFIXES)
        ):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def authorize(
        self, method: str, scope: str, context: grpc.aio.ServicerContext
    ) -> None:
        """Raise unless the call may run; the authenticator fills the record."""
        authorization = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                authorization = value
                break
        fallback = None
        if method.startswith(ENVOY_PREFIXES):
            fallback = lambda: _certificate_principal(context)
        self._auth.authorize(
            scope, authorization, current_call.get(None), fallback=fallback
        )

    def _wrap(
        self, method: str, handler: grpc.RpcMethodHandler
    ) -> grpc.RpcMethodHandler:
        scope = required_scope(method)
        authorize = self.authorize
        streaming_in = bool(handler.request_streaming)
        streaming_out = bool(handler.response_streaming)

        if streaming_out:
            inner: Behavior = (
                handler.stream_stream if streaming_in else handler.unary_stream
            )

            async def guarded_stream(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                authorize(method, scope, context)
                responses = inner(request, context)
                if not hasattr(responses, "__aiter__"):
                    await responses  # the handler writes with context.write()
                    return
                async for response in responses:
                    yield response

            behavior: Behavior = guarded_stream
        else:
            inner = handler.stream_unary if streaming_in else handler.unary_unary

            async def guarded_unary(
                request: Any, context: grpc.aio.ServicerContext
            ) -> Any:
                authorize(method, scope, context)
                response = inner(request, context)
                if inspect.isawaitable(response):
                    response = await response
                return response

            behavior = guarded_unary

        factory = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(streaming_in, streaming_out)]
        return factory(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
