"""Assemble and run the server: records, interceptors, servicers, health.

Start order: logging → tracing → metrics → SpendLogs writer → registry →
gRPC server. Stop order is the reverse, after health turns NOT_SERVING and
in-flight RPCs finish, so that every call's row is written before exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.api.interceptors.auth import AuthInterceptor
from service.api.interceptors.recording import RecordingInterceptor
from service.api.servicer import GuardrailServicer
from service.auth import build_authenticator
from service.checking import Checker
from service.engine import builtin_specs
from service.errors import GuardrailError, SettingsError
from service import integrations
from service.limits import PayloadLimits
from service.mcp_pins import RUG_PULL_GUARDRAIL, McpPins
from service.mcp_pins_store import open_pin_store
from service.policy import Policy, load_policy
from service.registry import Registry, RegistryChanges
from service.types import Action
from service.registry_changes import StoredRegistry
from service.settings import Settings, load_settings
from service.store.spend_logs import SpendLogWriter
from service.telemetry.logging import configure_logging, get_logger
from service.telemetry.metrics import Metrics
from service.telemetry.tracing import Tracing
from service.tls import server_credentials

__all__ = ["RegistryLink", "RunningServer", "run", "start_server"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GuardrailService"].full_name
GRACE_SECONDS = 10.0
# grpc core's receive limit, as a multiple of GUARDRAIL_MAX_MESSAGE_BYTES.
TRANSPORT_LIMIT_FACTOR = 2


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
    # The persistent registry when this process runs without a supervisor.
    stored_registry: StoredRegistry | None = None
    pins: McpPins | None = None  # MCP tool pins of this process (service/mcp_pins.py)

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
        if self.stored_registry is not None:
            await self.stored_registry.stop()
        if self.pins is not None:
            await self.pins.stop()
        self.tracing.shutdown()
        self.metrics.stop()


def _load_registry() -> Registry:
    try:
        return Registry(builtin_specs())
    except GuardrailError as exc:
        raise SettingsError(f"built-in guardrails failed to load: {exc}") from exc


async def _policy_and_pins(
    settings: Settings, registry: Registry
) -> tuple[Policy, McpPins]:
    """The policy file checked against the guardrails in force, and the pins loaded."""
    known = [*registry.snapshot.guardrails, RUG_PULL_GUARDRAIL]
    policy = load_policy(settings.policy_file, known=known)
    pins = McpPins(open_pin_store(settings.database_url.get_secret_value()))
    try:
        await pins.start()
    except Exception as exc:
        await pins.stop()  # the store may have opened before the load failed
        raise SettingsError(f"MCP pin store failed to open: {type(exc).__name__}: {exc}") from exc
    return policy, pins


def check_policy_file(settings: Settings, state: dict[str, Any]) -> None:
    """The supervisor's check of GUARDRAIL_POLICY_FILE against the stored registry state."""
    stored = [
        pb.Guardrail.FromString(base64.b64decode(item["spec"])).name
        for item in state.get("guardrails", ())
    ]
    builtin = [spec.name for spec in builtin_specs()]
    load_policy(settings.policy_file, known=[*builtin, *stored, RUG_PULL_GUARDRAIL])


class RegistryLink(Protocol):
    """Joins this process's registry to the others of an instance."""

    async def attach(self, registry: Registry) -> RegistryChanges: ...


async def start_server(
    settings: Settings,
    *,
    worker: int = 0,
    link: RegistryLink | None = None,
    reuse_port: bool = False,
    runtime_dir: Path | None = None,
) -> RunningServer:
    """Start one server process's gRPC server and everything it records to.

    A worker of a supervised instance passes its slot number, the link that
    brings it the instance's registry, ``reuse_port`` so its siblings can
    bind the same port, and the instance's ``runtime_dir`` (shared rate
    buckets).
    """
    configure_logging(settings)
    # A start that fails half-way closes what it had opened: a database
    # thread or port left behind would keep the process from exiting.
    async with contextlib.AsyncExitStack() as opened:
        running = await _start(
            settings, worker, link, reuse_port, opened, runtime_dir=runtime_dir
        )
        opened.pop_all()  # from here on RunningServer.stop() closes them
    return running


async def _start(
    settings: Settings,
    worker: int,
    link: RegistryLink | None,
    reuse_port: bool,
    opened: contextlib.AsyncExitStack,
    *,
    runtime_dir: Path | None = None,
) -> RunningServer:
    tracing = Tracing.from_settings(settings)
    opened.callback(tracing.shutdown)
    metrics = Metrics.start(settings)
    opened.callback(metrics.stop)
    # The slot's write-ahead rows, left by a killed predecessor, are stored
    # before this worker serves.
    writer = SpendLogWriter(settings, metrics, slot=worker)
    await writer.start()
    opened.push_async_callback(writer.aclose)
    registry = _load_registry()
    stored_registry = None
    if link is not None:
        changes = await link.attach(registry)
    else:
        stored_registry, changes = await _own_registry(settings, registry)
        opened.push_async_callback(stored_registry.stop)
    registry.subscribe(metrics.follow_registry)

    message_limit = settings.max_message_bytes
    # Keys file read before serving.
    authenticator = build_authenticator(settings, runtime_dir)
    tls = server_credentials(settings)
    server = grpc.aio.server(
        # Recording outermost: a call refused by auth is still recorded.
        interceptors=[
            RecordingInterceptor(
                metrics, tracing, writer, worker=worker, max_message_bytes=message_limit
            ),
            AuthInterceptor(authenticator),
        ],
        options=[
            ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
            # The limit itself is enforced inside the recorded call (a reason,
            # a request id, a row); grpc core only refuses what is past twice
            # the limit, before any handler and so without a row.
            ("grpc.max_receive_message_length", TRANSPORT_LIMIT_FACTOR * message_limit),
            # A masked answer can be larger than its request (labels longer
            # than the matches they replace): leave it room.
            ("grpc.max_send_message_length", 4 * message_limit),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ],
    )
    opened.push_async_callback(server.stop, None)
    policy, pins = await _policy_and_pins(settings, registry)  # service/policy.py, mcp_pins.py
    opened.push_async_callback(pins.stop)
    metrics.allow_guardrails([RUG_PULL_GUARDRAIL])  # built in, outside the registry
    metrics.allow_categories([RUG_PULL_GUARDRAIL])
    checker = Checker(
        registry,
        max_text_chars=settings.max_text_chars,
        limits=PayloadLimits.from_settings(settings),
        policy=policy,
        pins=pins,
        rug_pull_action=Action(settings.mcp_rug_pull_action),
        scan_budget_s=settings.scan_budget_ms / 1000,
    )
    servicer = GuardrailServicer(
        registry,
        checker,
        holdback=settings.stream_holdback_chars,
        offload_chars=settings.offload_chars,
        changes=changes,
        settings=settings,  # Register-side limits
    )
    pb_grpc.add_GuardrailServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    integration_names = integrations.add_integrations(server, checker, registry, settings)
    names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME, *integration_names)
    reflection.enable_server_reflection(names, server)
    address = f"{settings.host}:{settings.port}"
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, tls[0])
    if port == 0:
        raise SettingsError(f"GUARDRAIL_PORT={settings.port}: cannot bind {settings.host}")
    await server.start()
    http = await integrations.start_http(  # None unless GUARDRAIL_HTTP_PORT is set
        settings,
        checker,
        metrics=metrics,
        tracing=tracing,
        writer=writer,
        authenticator=authenticator,
    )
    opened.push_async_callback(integrations.stop_http, http)
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
        settings, server, port, metrics, writer, tracing, registry, health_servicer, http,
        stored_registry=stored_registry,
        pins=pins,
    )


async def _own_registry(
    settings: Settings, registry: Registry
) -> tuple[StoredRegistry, RegistryChanges]:
    """Without a supervisor this process persists and watches the registry itself."""
    from service.config_file import open_stored_registry
    from service.registry_changes import StoreBackedChanges, apply_wire_state

    async def publish(state: dict[str, object]) -> None:
        apply_wire_state(registry, state)

    stored = await open_stored_registry(settings, publish)
    return stored, StoreBackedChanges(stored, registry)


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
    running = await start_server(
        settings,
        worker=slot,
        link=link,
        reuse_port=True,
        runtime_dir=Path(socket_path).parent,
    )
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


def _auth_files_or_exit(settings: Settings) -> None:
    """A bad keys or TLS file stops start-up once, not every worker in a loop."""
    try:
        build_authenticator(settings)
        server_credentials(settings)
    except SettingsError as exc:
        print(f"guardrail: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run() -> None:
    """Entry point of ``guardrail serve``: settings from the environment."""
    from service.workers import Supervisor

    settings = _settings_or_exit()
    _auth_files_or_exit(settings)
    configure_logging(settings)
    with _runner() as runner:
        code = runner.run(Supervisor(settings).run())
    raise SystemExit(code)
