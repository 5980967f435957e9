"""Client side of the service's API keys and TLS options.

``api_key`` becomes ``authorization: Bearer <key>`` metadata on every call,
added by a channel interceptor so that it works on plaintext channels too
(gRPC's call credentials refuse to travel without TLS). Use TLS whenever a
key crosses a network you do not control.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

__all__ = ["aio_bearer_interceptors", "bearer_interceptor", "tls_credentials"]


def tls_credentials(
    root_certificates: bytes | None = None,
    client_certificate: bytes | None = None,
    client_key: bytes | None = None,
) -> grpc.ChannelCredentials:
    """TLS (system roots unless given); mutual TLS with a client cert and key."""
    if (client_certificate is None) != (client_key is None):
        raise ValueError("give both client_certificate and client_key, or neither")
    return grpc.ssl_channel_credentials(
        root_certificates, client_key, client_certificate
    )


def _with_key(metadata: Any, header: tuple[str, str]) -> list[tuple[str, Any]]:
    kept = [(k, v) for k, v in (metadata or ()) if k != "authorization"]
    return [*kept, header]


class _Details(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(self, base: grpc.ClientCallDetails, metadata: list) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def _details(self, details: grpc.ClientCallDetails) -> _Details:
        return _Details(details, _with_key(details.metadata, self._header))

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return continuation(self._details(details), requests)


def bearer_interceptor(api_key: str) -> grpc.UnaryUnaryClientInterceptor:
    """For ``grpc.intercept_channel`` (blocking channels)."""
    return _Bearer(api_key)


def _aio_details(details: Any, header: tuple[str, str]) -> Any:
    metadata = grpc.aio.Metadata(*_with_key(details.metadata, header))
    return details._replace(metadata=metadata)


class _AioBearerUnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, header: tuple[str, str]) -> None:
        self._header = header

    async def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(_aio_details(details, self._header), request)


class _AioBearerUnaryStream(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, header: tuple[str, str]) -> None:
        self._header = header

    async def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return await continuation(_aio_details(details, self._header), request)


class _AioBearerStreamUnary(grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, header: tuple[str, str]) -> None:
        self._header = header

    async def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return await continuation(_aio_details(details, self._header), requests)


class _AioBearerStreamStream(grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, header: tuple[str, str]) -> None:
        self._header = header

    async def intercept_stream_stream(self, continuation, details, requests):  # type: ignore[no-untyped-def]
        return await continuation(_aio_details(details, self._header), requests)


def aio_bearer_interceptors(api_key: str) -> Sequence[grpc.aio.ClientInterceptor]:
    """For ``grpc.aio.*_channel(interceptors=...)``."""
    header = ("authorization", f"Bearer {api_key}")
    return [
        _AioBearerUnaryUnary(header),
        _AioBearerUnaryStream(header),
        _AioBearerStreamUnary(header),
        _AioBearerStreamStream(header),
    ]
