"""The guardrails in force: definitions, their compiled form, a generation.

Every change builds a complete new ``Snapshot`` (compiled guardrails plus one
combined scanner) and swaps it in with a single assignment, so an RPC that
read the snapshot at entry sees one consistent registry throughout, and a
definition that does not compile never replaces the one in force.

Known shortcoming: the registry lives in this process's memory. Registered
guardrails are lost on restart and are not shared between processes, which
is why the service runs one worker process for now.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from service.engine import CompiledGuardrail, Scanner, compile_guardrail
from service.errors import FailedPreconditionError, NotFoundError
from service.types import Direction, GuardrailSpec

__all__ = ["Registry", "Snapshot"]


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

    def register(self, spec: GuardrailSpec) -> tuple[GuardrailSpec, int]:
        """Compile and put in force; (stored spec, new generation)."""
        versioned = self._next_version(spec)
        compiled = compile_guardrail(versioned)
        current = self._snapshot
        guardrails = {**current.guardrails, compiled.name: compiled}
        self._swap(Snapshot.build(current.generation + 1, guardrails.values()))
        return versioned, self._snapshot.generation

    def delete(self, name: str) -> int:
        current = self._snapshot
        existing = current.resolve([name])[0]
        if existing.spec.builtin:
            raise FailedPreconditionError(
                f"guardrail {name!r} is built in and cannot be deleted",
                reason="BUILTIN_GUARDRAIL",
            )
        remaining = [g for g in current.guardrails.values() if g.name != name]
        self._swap(Snapshot.build(current.generation + 1, remaining))
        return self._snapshot.generation

    def _next_version(self, spec: GuardrailSpec) -> GuardrailSpec:
        existing = self._snapshot.guardrails.get(spec.name)
        if existing is not None and existing.spec.builtin:
            raise FailedPreconditionError(
                f"guardrail {spec.name!r} is built in; register under another name",
                reason="BUILTIN_GUARDRAIL",
            )
        version = existing.spec.version + 1 if existing is not None else 1
        return dataclasses.replace(spec, version=version, builtin=False)
