"""The guardrails in force: definitions, their compiled form, a generation.

Every change builds a complete new ``Snapshot`` (compiled guardrails plus one
combined scanner) and swaps it in with a single assignment, so an RPC that
read the snapshot at entry sees one consistent registry throughout, and a
definition that does not compile never replaces the one in force.

With several worker processes, changes go through the supervisor
(``service.workers``), which applies each one to every worker before the
caller hears OK. Known shortcoming: registered guardrails live in memory and
are lost when the whole service restarts (built-ins are always there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from service.engine import CompiledGuardrail, Scanner, compile_guardrail
from service.errors import FailedPreconditionError, NotFoundError
from service.types import Direction, GuardrailSpec

__all__ = ["LocalChanges", "Registry", "RegistryChanges", "Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One immutable generation of the registry."""

    generation: int
    guardrails: Mapping[str, CompiledGuardrail]
    scanner: Scanner
    defaults: Mapping[Direction, tuple[str, ...]]

    @classmethod
    def build(cls, generation: int, guardrails: Iterable[CompiledGuardrail]) -> Snapshot:
        by_name = {g.name: g for g in guardrails}
        defaults = {
            direction: tuple(
                name
                for name, g in sorted(by_name.items())
                if g.spec.default_on and g.spec.applies_to(direction)
            )
            for direction in Direction
        }
        return cls(
            generation=generation,
            guardrails=MappingProxyType(by_name),
            scanner=Scanner(list(by_name.values())),
            defaults=MappingProxyType(defaults),
        )

    def resolve(self, names: Sequence[str]) -> list[CompiledGuardrail]:
        """The named guardrails, in request order; every unknown name is an error."""
        unknown = sorted({n for n in names if n not in self.guardrails})
        if unknown:
            raise NotFoundError(
                f"unknown guardrail(s): {', '.join(unknown)}", resource_names=unknown
            )
        return [self.guardrails[n] for n in dict.fromkeys(names)]


class Registry:
    """Holds the current snapshot; register and delete replace it whole."""

    def __init__(self, builtin: Sequence[GuardrailSpec]) -> None:
        compiled = [compile_guardrail(spec) for spec in builtin]
        self._snapshot = Snapshot.build(1, compiled)
        self._listeners: list[Callable[[Snapshot], None]] = []

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        """Call ``listener`` with the current snapshot now and after every change."""
        self._listeners.append(listener)
        listener(self._snapshot)

    def _swap(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        for listener in self._listeners:
            listener(snapshot)

    def validate(self, spec: GuardrailSpec) -> GuardrailSpec:
        """Compile without storing; the spec with the version it would get."""
        versioned = self._next_version(spec)
        compile_guardrail(versioned)
        return versioned

    def check_deletable(self, name: str) -> None:
        """Raise what delete would raise, without deleting."""
        existing = self._snapshot.resolve([name])[0]
        if existing.spec.builtin:
            raise FailedPreconditionError(
                f"guardrail {name!r} is built in and cannot be deleted",
                reason="BUILTIN_GUARDRAIL",
            )

    def register(self, spec: GuardrailSpec) -> tuple[GuardrailSpec, int]:
        """Compile and put in force; (stored spec, new generation)."""
        versioned = self.validate(spec)
        generation = self._snapshot.generation + 1
        self.put(versioned, generation)
        return versioned, generation

    def delete(self, name: str) -> int:
        self.check_deletable(name)
        generation = self._snapshot.generation + 1
        self.remove(name, generation)
        return generation

    def put(self, spec: GuardrailSpec, generation: int) -> None:
        """Put a validated, versioned spec in force as the given generation."""
        compiled = compile_guardrail(spec)
        guardrails = {**self._snapshot.guardrails, compiled.name: compiled}
        self._swap(Snapshot.build(generation, guardrails.values()))

    def remove(self, name: str, generation: int) -> None:
        remaining = [g for g in self._snapshot.guardrails.values() if g.name != name]
        self._swap(Snapshot.build(generation, remaining))

    def replace_registered(self, specs: Iterable[GuardrailSpec], generation: int) -> None:
        """Keep the built-ins, replace every registered guardrail at once."""
        builtin = [g for g in self._snapshot.guardrails.values() if g.spec.builtin]
        compiled = [compile_guardrail(spec) for spec in specs]
        self._swap(Snapshot.build(generation, [*builtin, *compiled]))

    def _next_version(self, spec: GuardrailSpec) -> GuardrailSpec:
        existing = self._snapshot.guardrails.get(spec.name)
        if existing is not None and existing.spec.builtin:
            raise FailedPreconditionError(
                f"guardrail {spec.name!r} is built in; register under another name",
                reason="BUILTIN_GUARDRAIL",
            )
        version = existing.spec.version + 1 if existing is not None else 1
        return dataclasses.replace(spec, version=version, builtin=False)


class RegistryChanges(Protocol):
    """How Register and Delete reach every process that enforces guardrails."""

    async def register(self, spec: GuardrailSpec) -> tuple[GuardrailSpec, int]: ...

    async def delete(self, name: str) -> int: ...


class LocalChanges:
    """One process: a change is in force everywhere once this registry has it."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def register(self, spec: GuardrailSpec) -> tuple[GuardrailSpec, int]:
        return self._registry.register(spec)

    async def delete(self, name: str) -> int:
        return self._registry.delete(name)
