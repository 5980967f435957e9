"""Persist first, then put in force: the one place registry changes happen.

``StoredRegistry`` lives in the supervisor (or in the only process when the
server runs without one). A Register or Delete is written to the database in
one transaction that bumps the registry generation; then the whole stored
state is published (to every worker, which must acknowledge it) and only then
does the caller hear OK. A change made by another instance sharing the
database is picked up by ``watch``: PostgreSQL NOTIFY wakes it at once, and a
generation check every ``poll_s`` seconds is the safety net (SQLite relies
on the check alone).

The published state travels as ``wire_state`` (JSON-safe: specs base64) so
the same message serves the control socket and the in-process path.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from guardrail.v1 import guardrail_pb2 as pb

from service.api.convert import spec_to_mapping, spec_to_pb
from service.engine import spec_from_mapping
from service.errors import UnavailableError
from service.registry import Registry, StoredSpec, unknown_guardrails
from service.store.errors import StoreError
from service.store.registry_store import Put, RegistryState, RegistryStore
from service.telemetry.logging import get_logger
from service.types import GuardrailSpec

__all__ = [
    "PublishState",
    "StoreBackedChanges",
    "StoredRegistry",
    "apply_wire_state",
    "decode_stored",
    "storable",
    "wire_state",
]

log = get_logger("service.registry_changes")

#: Seconds between generation checks: PostgreSQL has NOTIFY besides; SQLite only this.
POLL_S = {"postgresql": 1.0, "sqlite": 0.25}
#: The fields a caller cannot set: the registry fills them in.
_OUTPUT_ONLY = ("version", "builtin", "source", "updated_at")

PublishState = Callable[[dict[str, Any]], Awaitable[None]]


def storable(guardrail: pb.Guardrail) -> bytes:
    """The bytes stored for a definition: as sent, output-only fields cleared."""
    copy = pb.Guardrail()
    copy.CopyFrom(guardrail)
    for name in _OUTPUT_ONLY:
        copy.ClearField(name)
    return copy.SerializeToString(deterministic=True)


def spec_from_stored(data: bytes, version: int) -> GuardrailSpec:
    """A stored definition back to a spec (fields added later come along)."""
    mapping = spec_to_mapping(pb.Guardrail.FromString(data))
    mapping["version"] = version
    return spec_from_mapping(mapping)


def wire_state(state: RegistryState) -> dict[str, Any]:
    return {
        "generation": state.generation,
        "guardrails": [
            {
                "spec": base64.b64encode(g.spec).decode("ascii"),
                "version": g.version,
                "source": g.source,
                "disabled": g.disabled,
                "updated_at": g.updated_at,
            }
            for g in state.guardrails
        ],
    }


def decode_stored(item: Mapping[str, Any]) -> StoredSpec:
    spec = spec_from_stored(base64.b64decode(item["spec"]), int(item["version"]))
    return StoredSpec(
        spec,
        source=str(item["source"]),
        disabled=bool(item["disabled"]),
        updated_at=float(item["updated_at"]),
    )


def apply_wire_state(registry: Registry, state: Mapping[str, Any]) -> bool:
    """Put a published state in force in this process; False if it was stale."""
    stored = [decode_stored(item) for item in state["guardrails"]]
    return registry.apply_state(stored, int(state["generation"]))


class StoredRegistry:
    """The database's registry, published to whoever enforces it."""

    def __init__(
        self,
        store: RegistryStore,
        publish: PublishState,
        builtin_versions: Callable[[str], int],
    ) -> None:
        self._store = store
        self._publish = publish
        self._builtin_version = builtin_versions
        self._lock = asyncio.Lock()
        self._generation = 0
        self._state: dict[str, Any] | None = None
        self._watcher: asyncio.Task[None] | None = None

    @property
    def state(self) -> dict[str, Any]:
        """The last published state (what a joining worker must receive)."""
        if self._state is None:
            raise UnavailableError("the registry has not been loaded yet")
        return self._state

    async def start(self, config: Sequence[Put] | None = None) -> None:
        """Open, apply ``GUARDRAIL_CONFIG`` (when given), load, publish, watch."""
        await self._store.open()
        if config is not None:
            with_versions = [
                Put(p.name, p.spec, p.disabled, self._builtin_version(p.name)) for p in config
            ]
            await self._store.sync_source("config", with_versions, actor="config")
        async with self._lock:
            await self._reload()
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
        await self._store.close()

    async def register(
        self, name: str, spec: bytes, *, disabled: bool, actor: str
    ) -> tuple[int, int]:
        """Store and publish; (version, generation)."""
        item = Put(name, spec, disabled, self._builtin_version(name))
        async with self._lock:
            stored, generation = await self._guard(
                self._store.put(item, source="api", actor=actor)
            )
            await self._reload()
        return stored.version, generation

    async def delete(self, name: str, *, actor: str) -> int:
        async with self._lock:
            generation = await self._guard(self._store.delete(name, actor=actor))
            if generation is None:
                raise unknown_guardrails([name])
            await self._reload()
        return generation

    async def history(self, name: str, limit: int) -> list[Any]:
        return await self._guard(self._store.history(name, limit))

    async def _guard(self, operation: Awaitable[Any]) -> Any:
        try:
            return await operation
        except StoreError as exc:
            raise UnavailableError(
                f"the registry database is unavailable ({exc.reason}); nothing changed"
            ) from exc

    async def _reload(self) -> None:
        state = await self._store.load()
        if state.generation <= self._generation:
            return
        wire = wire_state(state)
        await self._publish(wire)
        self._state, self._generation = wire, state.generation

    async def _watch(self) -> None:
        poll = POLL_S.get(self._store.dialect, 1.0)
        while True:
            await self._store.watch(poll)
            try:
                if await self._store.generation() <= self._generation:
                    continue
                async with self._lock:
                    await self._reload()
                log.info("registry changed elsewhere", registry_generation=self._generation)
            except StoreError as exc:
                log.warning("registry check failed", reason=exc.reason)
            except Exception:  # keep watching whatever one reload did
                log.exception("registry reload failed")


class StoreBackedChanges:
    """``RegistryChanges`` for a process without a supervisor."""

    def __init__(self, stored: StoredRegistry, registry: Registry) -> None:
        self._stored = stored
        self._registry = registry

    async def register(
        self,
        spec: GuardrailSpec,
        *,
        encoded: bytes = b"",
        disabled: bool = False,
        actor: str = "",
    ) -> tuple[GuardrailSpec, int]:
        data = encoded or spec_to_pb(spec).SerializeToString()
        version, generation = await self._stored.register(
            spec.name, data, disabled=disabled, actor=actor
        )
        return _with_version(spec, version), generation

    async def delete(self, name: str, *, actor: str = "") -> int:
        return await self._stored.delete(name, actor=actor)

    async def history(self, name: str, limit: int) -> list[Any]:
        return await self._stored.history(name, limit)


def _with_version(spec: GuardrailSpec, version: int) -> GuardrailSpec:
    return dataclasses.replace(spec, version=version, builtin=False)
