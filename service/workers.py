"""The supervisor: N whole server processes on one port, kept alive and in step.

Each worker is a complete server (grpc.aio on its own event loop, scanning
inline) bound to the same port with SO_REUSEPORT; the kernel spreads
connections over them. The supervisor restarts a worker that dies, owns
the persistent registry (stores each change first, then fans it out to every
worker before it is acknowledged; see ``service.control`` and
``service.registry_changes``), serves the merged metrics of all workers, and
on SIGTERM or SIGINT drains them all.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path

from service.control import Message, history_to_wire, read_message, send
from service.errors import GuardrailError, SettingsError
from service.registry_changes import StoredRegistry
from service.settings import Settings
from service.telemetry.logging import get_logger
from service.worker_entry import worker_main

__all__ = ["Supervisor"]

#: A worker that dies sooner than this after starting is restarted after a pause.
QUICK_DEATH_S = 2.0
APPLY_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.2

log = get_logger("service.workers")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _check_bindable(host: str, port: int) -> None:
    """Fail fast on a port another program holds, or a host that is not ours.

    The workers bind with SO_REUSEPORT; when they cannot, each one dies and is
    restarted for ever, so the supervisor tries the same bind once first.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"guardrail: cannot serve gRPC on {host}:{port}: {exc.strerror}"
                " (GUARDRAIL_HOST, GUARDRAIL_PORT)"
            ) from None


def _lock_port(host: str, port: int) -> int:
    """Refuse a second instance on the same port: SO_REUSEPORT would not."""
    path = Path(tempfile.gettempdir()) / f"guardrail-{host.replace(':', '_')}-{port}.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise SystemExit(f"guardrail: another instance already serves {host}:{port}") from None
    return fd


@dataclass
class _Worker:
    slot: int
    process: BaseProcess
    started: float
    writer: asyncio.StreamWriter | None = None
    acks: dict[int, asyncio.Future[None]] = field(default_factory=dict)


class Supervisor:
    """Runs ``settings.workers`` worker processes until SIGTERM or SIGINT."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = settings.port or _free_port(settings.host)
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="guardrail-"))
        self.socket_path = str(self.runtime_dir / "control.sock")
        self.metrics_dir = self.runtime_dir / "metrics"
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._stored: StoredRegistry | None = None
        self._published: Message = {"generation": 0, "guardrails": []}
        self._seq = 0
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    # -- lifecycle

    async def run(self) -> int:
        lock_fd = _lock_port(self.settings.host, self.port)
        try:
            _check_bindable(self.settings.host, self.port)
            self._stored = await self._open_registry()
        except BaseException:
            os.close(lock_fd)
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
            raise
        control: asyncio.Server | None = None
        metrics_server = None
        try:  # a failure from here on must still stop the registry's threads
            control = await asyncio.start_unix_server(
                self._serve_worker, path=self.socket_path, limit=64 * 1024 * 1024
            )
            metrics_server = self._serve_metrics()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stopping.set)
            for slot in range(self.settings.workers):
                self._spawn(slot)
            log.info("supervisor started", port=self.port, workers=self.settings.workers)
            await self._watch()
            return await self._drain()
        finally:
            if control is not None:
                control.close()
            await self._stored.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
            os.close(lock_fd)
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    async def _open_registry(self) -> StoredRegistry:
        """The stored registry, loaded (with ``GUARDRAIL_CONFIG``) before any worker starts."""
        from service.config_file import open_stored_registry

        try:
            stored = await open_stored_registry(self.settings, self._broadcast)
        except SettingsError as exc:
            raise SystemExit(f"guardrail: {exc}") from None
        try:  # a bad policy file stops start-up here, not in a worker crash loop
            from service.app import check_policy_file

            check_policy_file(self.settings, stored.state)
        except SettingsError as exc:
            await stored.stop()
            raise SystemExit(f"guardrail: {exc}") from None
        return stored

    def _serve_metrics(self) -> object | None:
        if not self.settings.metrics_enabled:
            return None
        from service.telemetry.metrics import prepare_metrics_dir, serve_merged_metrics

        prepare_metrics_dir(self.metrics_dir)
        host, port = self.settings.host, self.settings.metrics_port
        try:
            server, port = serve_merged_metrics(self.metrics_dir, host, port)
        except OSError as exc:
            raise SystemExit(
                f"guardrail: cannot serve metrics on {host}:{port}: {exc.strerror}"
                " (GUARDRAIL_HOST, GUARDRAIL_METRICS_PORT)"
            ) from None
        log.info("metrics served", metrics_port=port)
        return server

    def _spawn(self, slot: int) -> None:
        process = self._context.Process(
            target=worker_main,
            args=(slot, self.port, self.socket_path, self._worker_metrics_dir()),
            name=f"guardrail-worker-{slot}",
        )
        process.start()
        self._workers[slot] = _Worker(slot, process, time.monotonic())

    def _worker_metrics_dir(self) -> str:
        return str(self.metrics_dir) if self.settings.metrics_enabled else ""

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            for worker in list(self._workers.values()):
                if worker.process.exitcode is not None:
                    await self._replace(worker)
            try:
                await asyncio.wait_for(self._stopping.wait(), POLL_INTERVAL_S)
            except TimeoutError:
                pass

    async def _replace(self, worker: _Worker) -> None:
        lived = time.monotonic() - worker.started
        log.warning(
            "worker exited; restarting",
            slot=worker.slot,
            exitcode=worker.process.exitcode,
            lived_s=round(lived, 3),
        )
        for ack in worker.acks.values():
            if not ack.done():
                ack.set_result(None)  # it restarts from the full state
        if lived < QUICK_DEATH_S:
            await asyncio.sleep(QUICK_DEATH_S)  # do not spin on a crash loop
        if not self._stopping.is_set():
            self._spawn(worker.slot)

    async def _drain(self) -> int:
        log.info("draining workers")
        for worker in self._workers.values():
            if worker.process.exitcode is None and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and any(
            w.process.exitcode is None for w in self._workers.values()
        ):
            await asyncio.sleep(0.05)
        codes = []
        for worker in self._workers.values():
            if worker.process.exitcode is None:
                worker.process.kill()
                worker.process.join()
            codes.append(worker.process.exitcode)
        log.info("supervisor stopped", worker_exit_codes=codes)
        return 0 if all(code == 0 for code in codes) else 1

    # -- control channel

    async def _serve_worker(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        hello = await read_message(reader)
        if hello is None or hello.get("op") != "hello":
            writer.close()
            return
        worker = self._workers.get(int(hello["slot"]))
        if worker is None:
            writer.close()
            return
        async with self._lock:  # no change may slip between state and joining
            await send(writer, self._state())
            worker.writer = writer
        while (message := await read_message(reader)) is not None:
            await self._handle(worker, writer, message)

    def _state(self) -> Message:
        return {"op": "state", **self._published}

    async def _handle(
        self, worker: _Worker, writer: asyncio.StreamWriter, message: Message
    ) -> None:
        op = message["op"]
        if op == "applied":
            ack = worker.acks.pop(message["seq"], None)
            if ack is not None and not ack.done():
                ack.set_result(None)
        elif op in ("register", "delete", "history"):
            # Changes are serialised by the stored registry, in arrival order.
            asyncio.create_task(self._change(writer, message))

    async def _change(self, origin: asyncio.StreamWriter, message: Message) -> None:
        try:
            reply = await self._commit(message)
        except GuardrailError as exc:
            reply = {"missing": True} if exc.reason == "GUARDRAIL_NOT_FOUND" else {
                "error": exc.message
            }
        except Exception as exc:  # the worker must hear back whatever happened
            log.exception("registry change failed")
            reply = {"error": f"registry change failed: {type(exc).__name__}"}
        reply["op"], reply["id"] = "result", message["id"]
        await send(origin, reply)

    async def _commit(self, message: Message) -> Message:
        assert self._stored is not None
        name, actor = message["name"], message.get("actor", "")
        if message["op"] == "register":
            version, generation = await self._stored.register(
                name,
                base64.b64decode(message["spec"]),
                disabled=bool(message.get("disabled")),
                actor=actor,
            )
            return {"version": version, "generation": generation}
        if message["op"] == "history":
            entries = await self._stored.history(name, int(message.get("limit") or 100))
            return {"entries": [history_to_wire(e) for e in entries]}
        return {"generation": await self._stored.delete(name, actor=actor)}

    async def _broadcast(self, state: Message) -> None:
        """Put a stored state in force on every worker; return when all applied it."""
        async with self._lock:  # a worker saying hello meanwhile gets this state
            self._published = state
            waiting = await self._send_apply(state)
        for worker, ack in waiting:
            try:
                await asyncio.wait_for(ack, APPLY_TIMEOUT_S)
            except TimeoutError:
                # A worker that cannot keep up is replaced; it restarts from the state.
                log.error("worker did not apply a change; killing it", slot=worker.slot)
                worker.process.kill()

    async def _send_apply(self, state: Message) -> list[tuple[_Worker, asyncio.Future[None]]]:
        self._seq += 1
        apply = {"op": "apply", "seq": self._seq, "state": state}
        loop = asyncio.get_running_loop()
        waiting = []
        for worker in self._workers.values():
            if worker.writer is None or worker.process.exitcode is not None:
                continue  # not joined yet: it will receive the state when it does
            ack: asyncio.Future[None] = loop.create_future()
            worker.acks[self._seq] = ack
            await send(worker.writer, apply)
            waiting.append((worker, ack))
        return waiting
