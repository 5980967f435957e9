"""The guardrails in force: definitions, their compiled form, a generation.

Every change builds a complete new ``Snapshot`` (compiled guardrails plus one
combined scanner) and swaps it in with a single assignment, so an RPC that
read the snapshot at entry sees one consistent registry throughout, and a
definition that does not compile never replaces the one in force.

What is in force = the built-ins, overlaid by the stored definitions (from
the API or ``GUARDRAIL_CONFIG``). A stored definition with a built-in's name
overrides it; deleting that override brings the built-in back; a stored
definition marked ``disabled`` takes its name out of enforcement (a Check
naming it gets ``FAILED_PRECONDITION`` / ``GUARDRAIL_DISABLED``). The stored
definitions are persisted and kept in step by ``service.registry_changes``.

Known shortcoming: every change rebuilds the combined scanner of all
guardrails (~135 ms CPU on the built-in packs). Definitions themselves are
compiled once and reused while they stay unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from service.engine import CompiledGuardrail, Scanner, compile_guardrail
from service.engine.compiler import is_valid_name
from service.errors import FailedPreconditionError, NotFoundError
from service.types import Direction, GuardrailSpec

__all__ = [
    "GuardrailInfo",
    "Registry",
    "RegistryChanges",
    "Snapshot",
    "StoredSpec",
    "shown_name",
    "unknown_guardrails",
]


def unknown_guardrails(names: Sequence[str]) -> NotFoundError:
    """NOT_FOUND for names no guardrail has. A name that could not be one
    (``is_valid_name``) may be anything pasted by mistake, a credential
    included: it is shown only by its length and a hash prefix."""
    shown = [shown_name(name) for name in names]
    return NotFoundError(f"unknown guardrail(s): {', '.join(shown)}", resource_names=shown)


def shown_name(name: str) -> str:
    """A guardrail name as errors and records may show it (see unknown_guardrails)."""
    if is_valid_name(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"<invalid name of {len(name)} characters, sha256 {digest}>"


@dataclass(frozen=True, slots=True)
class GuardrailInfo:
    """Where a guardrail in the registry comes from and whether it is enforced."""

    source: str  # "builtin", "api" or "config"
    disabled: bool = False
    updated_at: float = 0.0  # epoch seconds of the last change; 0 for built-ins


@dataclass(frozen=True, slots=True)
class StoredSpec:
    """A stored (not built-in) definition as the registry receives it."""

    spec: GuardrailSpec
    source: str = "api"
    disabled: bool = False
    updated_at: float = 0.0


_BUILTIN_INFO = GuardrailInfo("builtin")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One immutable generation of the registry."""

    generation: int
    guardrails: Mapping[str, CompiledGuardrail]  # enforced ones only
    scanner: Scanner
    defaults: Mapping[Direction, tuple[str, ...]]
    # Disabled guardrails (known, not enforced) and every name's provenance.
    disabled: Mapping[str, GuardrailSpec] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    info: Mapping[str, GuardrailInfo] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def build(
        cls,
        generation: int,
        guardrails: Iterable[CompiledGuardrail],
        *,
        disabled: Iterable[GuardrailSpec] = (),
        info: Mapping[str, GuardrailInfo] | None = None,
    ) -> Snapshot:
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
            disabled=MappingProxyType({s.name: s for s in disabled}),
            info=MappingProxyType(dict(info or {})),
        )

    def resolve(self, names: Sequence[str]) -> list[CompiledGuardrail]:
        """The named guardrails, in request order; every unknown name is an error."""
        unknown = sorted({n for n in names if n not in self.guardrails})
        off = [n for n in unknown if n in self.disabled]
        if off and len(off) == len(unknown):
            raise FailedPreconditionError(
                f"guardrail(s) disabled: {', '.join(off)}", reason="GUARDRAIL_DISABLED"
            )
        if unknown:
            raise unknown_guardrails(unknown)
        return [self.guardrails[n] for n in dict.fromkeys(names)]

    def describe(self, name: str) -> tuple[GuardrailSpec, GuardrailInfo]:
        """Any known guardrail (enforced or disabled) and where it comes from."""
        if name in self.guardrails:
            spec = self.guardrails[name].spec
        elif name in self.disabled:
            spec = self.disabled[name]
        else:
            raise unknown_guardrails([name])
        return spec, self.info.get(name, _BUILTIN_INFO if spec.builtin else GuardrailInfo("api"))

    def names(self) -> list[str]:
        """Every known name, enforced or disabled, sorted."""
        return sorted({*self.guardrails, *self.disabled})


class Registry:
    """Holds the current snapshot; every change replaces it whole."""

    def __init__(self, builtin: Sequence[GuardrailSpec]) -> None:
        self._builtin = {spec.name: compile_guardrail(spec) for spec in builtin}
        self._stored: dict[str, StoredSpec] = {}
        self._compiled: dict[GuardrailSpec, CompiledGuardrail] = {}
        self._snapshot = self._build(1)
        self._listeners: list[Callable[[Snapshot], None]] = []

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def builtin_version(self, name: str) -> int:
        """The built-in's version under this name; 0 when there is none."""
        builtin = self._builtin.get(name)
        return builtin.version if builtin is not None else 0

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        """Call ``listener`` with the current snapshot now and after every change."""
        self._listeners.append(listener)
        listener(self._snapshot)

    def _swap(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        for listener in self._listeners:
            listener(snapshot)

    def _compile(self, spec: GuardrailSpec) -> CompiledGuardrail:
        compiled = self._compiled.get(spec)
        return compiled if compiled is not None else compile_guardrail(spec)

    def _build(self, generation: int) -> Snapshot:
        enforced = dict(self._builtin)
        info = {name: _BUILTIN_INFO for name in self._builtin}
        disabled: list[GuardrailSpec] = []
        compiled: dict[GuardrailSpec, CompiledGuardrail] = {}
        for name, stored in self._stored.items():
            info[name] = GuardrailInfo(stored.source, stored.disabled, stored.updated_at)
            if stored.disabled:
                enforced.pop(name, None)
                disabled.append(stored.spec)
                continue
            compiled[stored.spec] = enforced[name] = self._compile(stored.spec)
        self._compiled = compiled  # keep only what is in force
        return Snapshot.build(generation, enforced.values(), disabled=disabled, info=info)

    def next_version(self, spec: GuardrailSpec) -> GuardrailSpec:
        """The spec with the version a Register would give it (not compiled)."""
        return self._next_version(spec)

    def validate(self, spec: GuardrailSpec) -> GuardrailSpec:
        """Compile without storing; the spec with the version it would get."""
        versioned = self._next_version(spec)
        compile_guardrail(versioned)
        return versioned

    def check_deletable(self, name: str) -> None:
        """Raise what delete would raise, without deleting."""
        if name in self._stored:
            return
        if name in self._builtin:
            raise FailedPreconditionError(
                f"guardrail {name!r} is built in and cannot be deleted; register it"
                " with disabled set to turn it off",
                reason="BUILTIN_GUARDRAIL",
            )
        raise unknown_guardrails([name])

    def register(self, spec: GuardrailSpec) -> tuple[GuardrailSpec, int]:
        """Compile and put in force (in memory only); (stored spec, new generation)."""
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
        self._stored[spec.name] = StoredSpec(dataclasses.replace(spec, builtin=False))
        self._swap(self._build(generation))

    def remove(self, name: str, generation: int) -> None:
        self._stored.pop(name, None)
        self._swap(self._build(generation))

    def replace_registered(self, specs: Iterable[GuardrailSpec], generation: int) -> None:
        """Keep the built-ins, replace every registered guardrail at once."""
        self.apply_state([StoredSpec(spec) for spec in specs], generation)

    def apply_state(self, stored: Iterable[StoredSpec], generation: int) -> bool:
        """Replace every stored definition at once; False if ``generation`` is stale.

        A compile failure here (a stored definition this build cannot compile)
        raises and leaves the snapshot in force unchanged.
        """
        if generation < self._snapshot.generation:
            return False
        previous = self._stored
        self._stored = {s.spec.name: s for s in stored}
        try:
            snapshot = self._build(generation)
        except BaseException:
            self._stored = previous
            raise
        self._swap(snapshot)
        return True

    def _next_version(self, spec: GuardrailSpec) -> GuardrailSpec:
        stored = self._stored.get(spec.name)
        if stored is not None:
            version = stored.spec.version + 1
        else:
            version = self.builtin_version(spec.name) + 1
        return dataclasses.replace(spec, version=version, builtin=False)


class RegistryChanges(Protocol):
    """How Register and Delete reach every process that enforces guardrails.

    ``encoded`` is the definition as the caller sent it (a serialized
    ``guardrail.v1.Guardrail``), stored as is; ``actor`` says who asked.
    """

    async def register(
        self,
        spec: GuardrailSpec,
        *,
        encoded: bytes = b"",
        disabled: bool = False,
        actor: str = "",
    ) -> tuple[GuardrailSpec, int]: ...

    async def delete(self, name: str, *, actor: str = "") -> int: ...
