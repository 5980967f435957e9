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
from pathlib import Path
from typing import Protocol

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
from service import integrations
from service.registry import Registry, RegistryChanges
from service.settings import Settings, load_settings
from service.store.spend_logs import SpendLogWriter
from service.telemetry.logging import configure_logging, get_logger
from service.telemetry.metrics import Metrics
from service.telemetry.tracing import Tracing

__all__ = ["RegistryLink", "RunningServer", "run", "start_server"]

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
    http: integrations.HttpEndpoint | None = None  # integrations: Generic Guardrail API

    @property
    def metrics_port(self) -> int:
        return self.metrics.port

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        await self.health.enter_graceful_shutdown()
        # Load balancers and probes see NOT_SERVING before the port closes.
        await asyncio.sleep(self.settings.drain_delay_s)
        await integrations.stop_http(self.http)
        await self.server.stop(grace)
        await self.writer.aclose()
        self.tracing.shutdown()
        self.metrics.stop()


def _load_registry() -> Registry:
    try:
        return Registry(builtin_specs())
    except GuardrailError as exc:
        raise SettingsError(f"built-in guardrails failed to load: {exc}") from exc


class RegistryLink(Protocol):
    """Joins this process's registry to the others of an instance."""

    async def attach(self, registry: Registry) -> RegistryChanges: ...


async def start_server(
    settings: Settings,
    *,
    worker: int = 0,
    link: RegistryLink | None = None,
    reuse_port: bool = False,
) -> RunningServer:
    """Start one server process's gRPC server and everything it records to.

    A worker of a supervised instance passes its slot number, the link that
    brings it the instance's registry, and ``reuse_port`` so its siblings can
    bind the same port.
    """
    configure_logging(settings)
    tracing = Tracing.from_settings(settings)
    metrics = Metrics.start(settings)
    writer = SpendLogWriter(settings, metrics)
    await writer.start()
    registry = _load_registry()
    changes = await link.attach(registry) if link is not None else None
    registry.subscribe(metrics.follow_registry)

    message_limit = settings.max_message_bytes
    server = grpc.aio.server(
        interceptors=[RecordingInterceptor(metrics, tracing, writer, worker=worker)],
        options=[
            ("grpc.max_receive_message_length", message_limit),
            # A masked answer can be larger than its request (labels longer
            # than the matches they replace): leave it room.
            ("grpc.max_send_message_length", 4 * message_limit),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
    )
    checker = Checker(registry, max_text_chars=settings.max_text_chars)
    servicer = GuardrailServicer(
        registry,
        checker,
        holdback=settings.stream_holdback_chars,
        offload_chars=settings.offload_chars,
        changes=changes,
    )
    pb_grpc.add_GuardrailServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    integration_names = integrations.add_integrations(server, checker, registry, settings)
    names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME, *integration_names)
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise SettingsError(f"GUARDRAIL_PORT={settings.port}: cannot bind {settings.host}")
    await server.start()
    http = await integrations.start_http(  # None unless GUARDRAIL_HTTP_PORT is set
        settings, checker, metrics=metrics, tracing=tracing, writer=writer
    )
    serving = health_pb2.HealthCheckResponse.SERVING
    await health_servicer.set("", serving)
    await health_servicer.set(SERVICE_NAME, serving)
    get_logger("service.app").info(
        "server started",
        port=port,
        worker=worker,
        metrics_port=metrics.port,
        registry_generation=registry.snapshot.generation,
    )
    return RunningServer(
        settings, server, port, metrics, writer, tracing, registry, health_servicer, http
    )


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, installed before anything starts."""
    from service.worker_entry import stop_requested_early

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    if stop_requested_early():
        stopping.set()
    return stopping


async def _serve_worker(settings: Settings, slot: int, socket_path: str) -> None:
    from service.control import WorkerLink

    # A SIGTERM that arrives while the worker is still starting must drain it
    # too, not kill it mid-start.
    stopping = _stop_on_signals()
    link = WorkerLink(socket_path, slot)
    running = await start_server(settings, worker=slot, link=link, reuse_port=True)
    await stopping.wait()
    get_logger("service.app").info("draining", worker=slot, grace_seconds=GRACE_SECONDS)
    await running.stop()


def _runner() -> asyncio.Runner:
    try:
        import uvloop

        return asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # uvloop has no Windows build; asyncio's loop works too
        return asyncio.Runner()


def _settings_or_exit(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        print(f"guardrail: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run_worker(
    slot: int, port: int, socket_path: str, metrics_dir: Path | None
) -> None:
    """A worker process: one whole server sharing the supervisor's port."""
    if metrics_dir is not None:
        from service.telemetry.metrics import configure_worker_metrics

        configure_worker_metrics(metrics_dir, slot)
    # The supervisor serves the merged metrics; workers only count.
    settings = _settings_or_exit(port=port, metrics_enabled=False)
    with _runner() as runner:
        runner.run(_serve_worker(settings, slot, socket_path))


def run() -> None:
    """Entry point of ``guardrail serve``: settings from the environment."""
    from service.workers import Supervisor

    settings = _settings_or_exit()
    configure_logging(settings)
    with _runner() as runner:
        code = runner.run(Supervisor(settings).run())
    raise SystemExit(code)
