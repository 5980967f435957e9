"""The control channel between the supervisor and its worker processes.

One Unix socket per instance, one JSON object per line. A worker says
``hello`` and receives the instance's stored guardrails (``state``) before
it serves. Register and Delete in any worker become a ``register`` or
``delete`` request to the supervisor, which stores the change in the
database, sends the new whole state to every worker as ``apply`` and answers
``result`` only when all of them have answered ``applied``: OK means every
worker enforces the new generation. ``history`` reads the audit trail
through the supervisor's database connection.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from service.api.convert import spec_to_pb
from service.errors import GuardrailError, UnavailableError
from service.registry import Registry, RegistryChanges, unknown_guardrails
from service.registry_changes import apply_wire_state
from service.store.registry_store import HistoryEntry
from service.types import GuardrailSpec

__all__ = [
    "Message",
    "WorkerLink",
    "history_from_wire",
    "history_to_wire",
    "read_message",
    "send",
]

Message = dict[str, Any]
#: How long a change may take to reach every worker before the call fails.
CHANGE_TIMEOUT_S = 30.0


async def send(writer: asyncio.StreamWriter, message: Message) -> None:
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    line = await reader.readline()
    return json.loads(line) if line else None


class WorkerLink:
    """A worker's end of the channel; ``attach`` is called once at start-up."""

    def __init__(self, socket_path: str, slot: int) -> None:
        self._socket_path = socket_path
        self._slot = slot
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._next_id = 0
        self._reader_task: asyncio.Task[None] | None = None

    async def attach(self, registry: Registry) -> RegistryChanges:
        self._registry = registry
        self._reader, self._writer = await asyncio.open_unix_connection(
            self._socket_path, limit=64 * 1024 * 1024
        )
        await send(self._writer, {"op": "hello", "slot": self._slot})
        state = await read_message(self._reader)
        if state is None or state.get("op") != "state":
            raise UnavailableError("supervisor closed the control channel at start-up")
        self._apply_state(state)
        self._reader_task = asyncio.create_task(self._read_forever())
        return _SupervisedChanges(self._request)

    def _apply_state(self, state: Message) -> None:
        apply_wire_state(self._registry, state)

    async def _read_forever(self) -> None:
        while (message := await read_message(self._reader)) is not None:
            if message["op"] == "apply":
                if self._apply(message):
                    await send(self._writer, {"op": "applied", "seq": message["seq"]})
            elif message["op"] == "result":
                future = self._pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
        # The supervisor is gone: nothing keeps the workers consistent any
        # more, so this one drains and exits as on SIGTERM.
        for future in self._pending.values():
            future.set_exception(UnavailableError("supervisor is gone"))
        os.kill(os.getpid(), signal.SIGTERM)

    def _apply(self, message: Message) -> bool:
        try:
            apply_wire_state(self._registry, message["state"])
        except GuardrailError:
            # A stored definition this worker cannot compile (never accepted
            # by Register, so the database was edited by hand): the previous
            # snapshot stays in force, no ack goes back, the change fails.
            return False
        return True

    async def _request(self, message: Message) -> Message:
        self._next_id += 1
        message["id"] = self._next_id
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await send(self._writer, message)
        try:
            reply = await asyncio.wait_for(future, CHANGE_TIMEOUT_S)
        except TimeoutError:
            self._pending.pop(message["id"], None)
            raise UnavailableError("the change did not reach every worker in time") from None
        if reply.get("missing"):
            name = message.get("name", "")
            raise unknown_guardrails([name])
        if "error" in reply:
            raise UnavailableError(reply["error"])
        return reply


class _SupervisedChanges:
    def __init__(self, request: Callable[[Message], Awaitable[Message]]) -> None:
        self._request = request

    async def register(
        self,
        spec: GuardrailSpec,
        *,
        encoded: bytes = b"",
        disabled: bool = False,
        actor: str = "",
    ) -> tuple[GuardrailSpec, int]:
        # The name travels beside the spec so the supervisor need not decode it.
        data = encoded or spec_to_pb(spec).SerializeToString()
        message = {
            "op": "register",
            "name": spec.name,
            "spec": base64.b64encode(data).decode("ascii"),
            "disabled": disabled,
            "actor": actor,
        }
        reply = await self._request(message)
        versioned = dataclasses.replace(spec, version=reply["version"], builtin=False)
        return versioned, int(reply["generation"])

    async def delete(self, name: str, *, actor: str = "") -> int:
        reply = await self._request({"op": "delete", "name": name, "actor": actor})
        return int(reply["generation"])

    async def history(self, name: str, limit: int) -> list[HistoryEntry]:
        reply = await self._request({"op": "history", "name": name, "limit": limit})
        return [history_from_wire(item) for item in reply["entries"]]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(data: str | None) -> bytes | None:
    return None if data is None else base64.b64decode(data)


def history_to_wire(entry: HistoryEntry) -> Message:
    return {**dataclasses.asdict(entry), "before": _b64(entry.before), "after": _b64(entry.after)}


def history_from_wire(item: Message) -> HistoryEntry:
    return HistoryEntry(**{**item, "before": _unb64(item["before"]), "after": _unb64(item["after"])})
