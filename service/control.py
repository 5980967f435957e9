"""The control channel between the supervisor and its worker processes.

One Unix socket per instance, one JSON object per line. A worker says
``hello`` and receives the instance's registered guardrails (``state``)
before it serves. Register and Delete in any worker become a ``register`` or
``delete`` request to the supervisor, which numbers the change, sends it to
every worker as ``apply`` and answers ``result`` only when all of them have
answered ``applied``: OK means every worker enforces the new generation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from guardrail.v1 import guardrail_pb2 as pb

from service.api.convert import spec_to_mapping, spec_to_pb
from service.engine import spec_from_mapping
from service.errors import NotFoundError, UnavailableError
from service.registry import Registry, RegistryChanges
from service.types import GuardrailSpec

__all__ = ["Message", "WorkerLink", "decode_spec", "encode_spec", "read_message", "send"]

Message = dict[str, Any]
#: How long a change may take to reach every worker before the call fails.
CHANGE_TIMEOUT_S = 30.0


def encode_spec(spec: GuardrailSpec) -> str:
    return base64.b64encode(spec_to_pb(spec).SerializeToString()).decode("ascii")


def decode_spec(data: str, version: int) -> GuardrailSpec:
    guardrail = pb.Guardrail.FromString(base64.b64decode(data))
    mapping = spec_to_mapping(guardrail)
    mapping["version"] = version
    return spec_from_mapping(mapping)


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
        specs = [decode_spec(g["spec"], g["version"]) for g in state["guardrails"]]
        self._registry.replace_registered(specs, state["generation"])

    async def _read_forever(self) -> None:
        while (message := await read_message(self._reader)) is not None:
            if message["op"] == "apply":
                self._apply(message)
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

    def _apply(self, message: Message) -> None:
        generation = message["generation"]
        if message["kind"] == "put":
            self._registry.put(decode_spec(message["spec"], message["version"]), generation)
        else:
            self._registry.remove(message["name"], generation)

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
        if "error" in reply:
            raise UnavailableError(reply["error"])
        return reply


class _SupervisedChanges:
    def __init__(self, request: Callable[[Message], Awaitable[Message]]) -> None:
        self._request = request

    async def register(self, spec: GuardrailSpec) -> tuple[GuardrailSpec, int]:
        # The name travels beside the spec so the supervisor need not decode it.
        message = {"op": "register", "name": spec.name, "spec": encode_spec(spec)}
        reply = await self._request(message)
        return decode_spec(reply["spec"], reply["version"]), reply["generation"]

    async def delete(self, name: str) -> int:
        reply = await self._request({"op": "delete", "name": name})
        if reply.get("missing"):
            raise NotFoundError(f"unknown guardrail(s): {name}", resource_names=[name])
        return int(reply["generation"])
