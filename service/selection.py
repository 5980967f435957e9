"""Which guardrails run on a call, and what that selection implies, worked out once.

``select_guardrails`` resolves a call's guardrails through the policy
(caller, direction, explicit names, defaults, required ones) with their
modes and fail modes. Everything that follows from a selection alone (which
guardrails are fail-closed, each one's outcome when it finds nothing, the
NOT_RUN outcomes of those that do not apply to the direction, and their
response messages) is the same for every call with the same caller,
direction and names: on a 1 KB Check, working it out per call cost more
CPU than the scan. ``SelectionCache`` keeps it per registry snapshot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from guardrail.v1 import guardrail_pb2 as pb

from service.api.convert import outcome_to_pb
from service.decide import direction_reason, not_run, ran_outcome
from service.engine import CompiledGuardrail, ScanResult
from service.mcp_pins import RUG_PULL_GUARDRAIL
from service.policy import EMPTY_POLICY, Policy
from service.registry import Snapshot
from service.types import (
    Direction,
    FailMode,
    GuardrailMode,
    GuardrailOutcome,
    Principal,
)

__all__ = [
    "PreparedSelection",
    "RanGuardrail",
    "Selection",
    "SelectionCache",
    "outcome_pb",
    "select_guardrails",
]

# Distinct (direction, names, caller) selections kept per snapshot; past
# this the cache starts again (a flood of distinct callers only misses).
MAX_CACHED_SELECTIONS = 1024

_MODE_TO_PB = {
    GuardrailMode.ENFORCE: pb.GUARDRAIL_MODE_ENFORCE,
    GuardrailMode.MONITOR: pb.GUARDRAIL_MODE_MONITOR,
    GuardrailMode.DRY_RUN: pb.GUARDRAIL_MODE_DRY_RUN,
}
_FAIL_MODE_TO_PB = {FailMode.OPEN: pb.FAIL_MODE_OPEN, FailMode.CLOSED: pb.FAIL_MODE_CLOSED}


def outcome_pb(outcome: GuardrailOutcome) -> pb.GuardrailResult:
    """outcome_to_pb plus the mode and fail mode it ran with."""
    result = outcome_to_pb(outcome)
    result.mode = _MODE_TO_PB[outcome.mode]
    result.fail_mode = _FAIL_MODE_TO_PB[outcome.fail_mode]
    return result


@dataclass(frozen=True, slots=True)
class Selection:
    """Which guardrails run on a call, and which were named but cannot."""

    ran: list[CompiledGuardrail]
    skipped: list[CompiledGuardrail]
    applied: list[str] = field(default_factory=list)  # every resolved name, in order
    layers: list[str] = field(default_factory=list)
    modes: dict[str, GuardrailMode] = field(default_factory=dict)
    fail_modes: dict[str, FailMode] = field(default_factory=dict)
    rug_pull: bool = False  # mcp_rug_pull resolved and applies to the direction
    rug_pull_skipped: bool = False  # resolved but not for this direction

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.ran]

    def mode_of(self, guardrail: CompiledGuardrail) -> GuardrailMode:
        return self.modes.get(guardrail.name, guardrail.spec.mode)

    def fail_mode_of(self, guardrail: CompiledGuardrail) -> FailMode:
        return self.fail_modes.get(guardrail.name, guardrail.spec.fail_mode)


def select_guardrails(
    snapshot: Snapshot,
    names: list[str],
    direction: Direction,
    *,
    policy: Policy = EMPTY_POLICY,
    principal: Principal | None = None,
    request_team: str = "",
    rug_pull_default: bool = False,
) -> Selection:
    """Resolve through the policy; unknown names (anywhere) fail the call."""
    defaults = list(snapshot.defaults[direction])
    if rug_pull_default and direction is Direction.TOOL_DESCRIPTION:
        defaults.append(RUG_PULL_GUARDRAIL)
    resolution = policy.resolve(
        principal=principal, request_team=request_team, explicit=names, defaults=defaults
    )
    wanted = resolution.names
    has_rug_pull = RUG_PULL_GUARDRAIL in wanted and rug_pull_default
    engine_names = [n for n in wanted if not (n == RUG_PULL_GUARDRAIL and has_rug_pull)]
    resolved = snapshot.resolve(engine_names)
    return Selection(
        ran=[g for g in resolved if g.spec.applies_to(direction)],
        skipped=[g for g in resolved if not g.spec.applies_to(direction)],
        applied=wanted,
        layers=resolution.layers,
        modes=resolution.modes,
        fail_modes=resolution.fail_modes,
        rug_pull=has_rug_pull and direction is Direction.TOOL_DESCRIPTION,
        rug_pull_skipped=has_rug_pull and direction is not Direction.TOOL_DESCRIPTION,
    )


@dataclass(frozen=True, slots=True)
class RanGuardrail:
    """One guardrail that runs on the call, with how it runs."""

    guardrail: CompiledGuardrail
    mode: GuardrailMode
    fail_mode: FailMode
    passed: GuardrailOutcome  # its outcome when it finds nothing and scores 0


@dataclass(frozen=True, slots=True)
class PreparedSelection:
    """A selection and what follows from it alone; shared by calls, never changed."""

    selection: Selection
    ran: tuple[RanGuardrail, ...]
    closed: list[str]  # fail-closed guardrails that run, in order
    open: list[str]  # fail-open ones
    skipped: tuple[GuardrailOutcome, ...]  # NOT_RUN: named, but not for this direction
    # id() of each outcome above -> its response message, built once. The
    # outcomes live as long as this object, so their ids stay theirs.
    messages: dict[int, pb.GuardrailResult]

    def message(self, outcome: GuardrailOutcome) -> pb.GuardrailResult:
        """The response message of an outcome (built once for the shared ones)."""
        built = self.messages.get(id(outcome))
        return built if built is not None else outcome_pb(outcome)


def prepare(selection: Selection, direction: Direction) -> PreparedSelection:
    ran = []
    for g in selection.ran:
        mode, fail_mode = selection.mode_of(g), selection.fail_mode_of(g)
        passed = ran_outcome(g, ScanResult(), Counter(), mode=mode, fail_mode=fail_mode)
        ran.append(RanGuardrail(g, mode, fail_mode, passed))
    reason = direction_reason(direction)
    skipped = tuple(
        not_run(g, reason, mode=selection.mode_of(g), fail_mode=selection.fail_mode_of(g))
        for g in selection.skipped
    )
    shared = [r.passed for r in ran] + list(skipped)
    return PreparedSelection(
        selection=selection,
        ran=tuple(ran),
        closed=[r.guardrail.name for r in ran if r.fail_mode is FailMode.CLOSED],
        open=[r.guardrail.name for r in ran if r.fail_mode is FailMode.OPEN],
        skipped=skipped,
        messages={id(o): outcome_pb(o) for o in shared},
    )


class SelectionCache:
    """Prepared selections for the current registry snapshot and policy.

    Keyed by direction, the request's distinct guardrail names, the caller's
    API-key binding, the request's team and whether rug-pull pinning is on:
    all that ``select_guardrails`` reads besides the snapshot and the policy,
    whose change starts a new cache. Calls naming unknown guardrails raise
    and are not kept.

    Checks also run in worker threads (large bodies are offloaded), so the
    snapshot, the policy and their entries are one tuple, read once per call
    and replaced whole: a thread still on the previous snapshot works in that
    snapshot's entries and can never store into the current one's.
    """

    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state: tuple[object, object, dict[tuple[object, ...], PreparedSelection]] = (
            None,
            None,
            {},
        )

    def get(
        self,
        snapshot: Snapshot,
        policy: Policy,
        direction: Direction,
        names: tuple[str, ...],
        *,
        principal: Principal | None,
        request_team: str,
        rug_pull_default: bool,
    ) -> PreparedSelection:
        state = self._state
        if state[0] is not snapshot or state[1] is not policy:
            state = self._state = (snapshot, policy, {})
        entries = state[2]
        # Repeats of a name change nothing a selection depends on; keeping
        # them in the key would let one request pin a huge key in memory.
        distinct = tuple(dict.fromkeys(names)) if len(names) > 1 else names
        key = (direction, distinct, principal, request_team, rug_pull_default)
        prepared = entries.get(key)
        if prepared is None:
            selection = select_guardrails(
                snapshot,
                list(distinct),
                direction,
                policy=policy,
                principal=principal,
                request_team=request_team,
                rug_pull_default=rug_pull_default,
            )
            prepared = prepare(selection, direction)
            if len(entries) >= MAX_CACHED_SELECTIONS:
                entries.clear()
            entries[key] = prepared
        return prepared

    def __len__(self) -> int:
        return len(self._state[2])
