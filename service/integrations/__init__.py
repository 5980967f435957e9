"""Gateway integrations that need no glue code on the gateway's side.

- Envoy ``ext_proc`` and ``ext_authz`` services, on the same gRPC server
  (``add_integrations``).
- LiteLLM's Generic Guardrail API over HTTP/JSON (``start_http``), on the
  same asyncio loop, when ``GUARDRAIL_HTTP_PORT`` is set.

All of them run the same ``Checker`` against the same registry, and every
call is recorded like a gRPC call (one SpendLogs row each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from service.auth import Authenticator
from service.checking import Checker
from service.integrations._envoy_common import EnvoyPolicy
from service.integrations.envoy_ext_authz import SERVICE_NAME as EXT_AUTHZ_SERVICE
from service.integrations.envoy_ext_authz import ExtAuthzServicer
from service.integrations.envoy_ext_proc import SERVICE_NAME as EXT_PROC_SERVICE
from service.integrations.envoy_ext_proc import ExtProcServicer
from service.registry import Registry
from service.settings import Settings
from service.store.spend_logs import SpendLogWriter
from service.telemetry.metrics import Metrics
from service.telemetry.tracing import Tracing

if TYPE_CHECKING:
    from service.integrations.http_server import HttpEndpoint

__all__ = [
    "EXT_AUTHZ_SERVICE",
    "EXT_PROC_SERVICE",
    "EnvoyPolicy",
    "HttpEndpoint",
    "add_integrations",
    "envoy_policy",
    "start_http",
    "stop_http",
]


def envoy_policy(settings: Settings) -> EnvoyPolicy:
    return EnvoyPolicy(
        message_timeout_s=settings.envoy_message_timeout_ms / 1000,
        fail_open=settings.envoy_failure_mode_allow,
        offload_chars=settings.offload_chars,
        holdback=settings.stream_holdback_chars,
    )


def add_integrations(
    server: grpc.aio.Server, checker: Checker, registry: Registry, settings: Settings
) -> list[str]:
    """Add the Envoy services to ``server``; returns their names for reflection."""
    from envoy.service.auth.v3 import external_auth_pb2_grpc
    from envoy.service.ext_proc.v3 import external_processor_pb2_grpc

    policy = envoy_policy(settings)
    external_processor_pb2_grpc.add_ExternalProcessorServicer_to_server(
        ExtProcServicer(checker, registry, policy), server
    )
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(
        ExtAuthzServicer(checker, policy), server
    )
    return [EXT_PROC_SERVICE, EXT_AUTHZ_SERVICE]


async def start_http(
    settings: Settings,
    checker: Checker,
    *,
    metrics: Metrics,
    tracing: Tracing | None,
    writer: SpendLogWriter,
    authenticator: Authenticator | None = None,
) -> HttpEndpoint | None:
    """Start the Generic Guardrail API endpoint; None when GUARDRAIL_HTTP_PORT is 0."""
    if not settings.http_port:
        return None
    # aiohttp costs half a second to import: only a server that serves HTTP pays.
    from service.integrations.http_server import start_http as _start_http

    return await _start_http(
        checker,
        host=settings.host,
        port=settings.http_port,
        metrics=metrics,
        tracing=tracing,
        writer=writer,
        offload_chars=settings.offload_chars,
        max_body_bytes=settings.max_message_bytes,
        reuse_port=settings.workers > 1,
        authenticator=authenticator,  # same API keys as the gRPC port
        holdback_cap=settings.stream_holdback_chars,
    )


async def stop_http(endpoint: HttpEndpoint | None) -> None:
    """Finish in-flight HTTP calls and close the port (no-op when it never started)."""
    if endpoint is not None:
        await endpoint.stop()


def __getattr__(name: str) -> Any:
    # HttpEndpoint is exported lazily, for the same import-time reason.
    if name == "HttpEndpoint":
        from service.integrations.http_server import HttpEndpoint

        return HttpEndpoint
    raise AttributeError(name)
