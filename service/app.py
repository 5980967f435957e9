"""Assemble and run the server: records, interceptors, servicers, health.

Start order: logging → tracing → metrics → SpendLogs writer → registry →
gRPC server. Stop order is the reverse, after health turns NOT_SERVING and
in-flight RPCs finish, so that every call's row is written before exit.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.api.interceptors.recording import RecordingInterceptor
from service.api.servicer import GuardrailServicer
from service.checking import Checker
from service.engine import builtin_specs
from service.errors import GuardrailError, SettingsError
from service.registry import Registry
from service.settings import Settings, load_settings
from service.store.spend_logs import SpendLogWriter
from service.telemetry.logging import configure_logging, get_logger
from service.telemetry.metrics import Metrics
from service.telemetry.tracing import Tracing

__all__ = ["RunningServer", "run", "start_server"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GuardrailService"].full_name
GRACE_SECONDS = 10.0


@dataclass
class RunningServer:
    """A started server and what it owns; ``stop()`` drains and closes all."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    metrics: Metrics
    writer: SpendLogWriter
    tracing: Tracing
    registry: Registry
    health: health.aio.HealthServicer

    @property
    def metrics_port(self) -> int:
        return self.metrics.port

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.writer.aclose()
        self.tracing.shutdown()
        self.metrics.stop()


def _load_registry() -> Registry:
    try:
        return Registry(builtin_specs())
    except GuardrailError as exc:
        raise SettingsError(f"built-in guardrails failed to load: {exc}") from exc


async def start_server(settings: Settings) -> RunningServer:
    configure_logging(settings)
    tracing = Tracing.from_settings(settings)
    metrics = Metrics.start(settings)
    writer = SpendLogWriter(settings, metrics)
    await writer.start()
    registry = _load_registry()
    registry.subscribe(metrics.follow_registry)

    message_limit = settings.max_message_bytes
    server = grpc.aio.server(
        interceptors=[RecordingInterceptor(metrics, tracing, writer)],
        options=[
            ("grpc.max_receive_message_length", message_limit),
            ("grpc.max_send_message_length", message_limit),
            ("grpc.so_reuseport", 0),
        ],
    )
    checker = Checker(registry, max_text_chars=settings.max_text_chars)
    servicer = GuardrailServicer(
        registry,
        checker,
        holdback=settings.stream_holdback_chars,
        offload_chars=settings.offload_chars,
    )
    pb_grpc.add_GuardrailServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise SettingsError(f"GUARDRAIL_PORT={settings.port}: cannot bind {settings.host}")
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    await health_servicer.set(SERVICE_NAME, serving)
    get_logger("service.app").info(
        "server started", port=port, metrics_port=metrics.port,
        registry_generation=registry.snapshot.generation,
    )
    return RunningServer(
        settings, server, port, metrics, writer, tracing, registry, health_servicer
    )


async def _serve(settings: Settings) -> None:
    running = await start_server(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    get_logger("service.app").info("draining", grace_seconds=GRACE_SECONDS)
    await running.stop()


def run() -> None:
    """Entry point of ``guardrail serve``: settings from the environment."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"guardrail: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # uvloop has no Windows build; asyncio's loop works too
        loop_factory = asyncio.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(settings))
    except SettingsError as exc:
        print(f"guardrail: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
