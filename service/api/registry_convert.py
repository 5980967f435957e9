"""Registry records (provenance, audit trail) to protobuf, beside ``convert``."""

from __future__ import annotations

from guardrail.v1 import guardrail_pb2 as pb

from service.api.convert import spec_to_pb
from service.registry import GuardrailInfo
from service.store.registry_store import HistoryEntry
from service.types import GuardrailSpec

__all__ = ["guardrail_to_pb", "history_to_pb"]

_ACTIONS = {
    "create": pb.GUARDRAIL_CHANGE_ACTION_CREATE,
    "update": pb.GUARDRAIL_CHANGE_ACTION_UPDATE,
    "override": pb.GUARDRAIL_CHANGE_ACTION_OVERRIDE,
    "delete": pb.GUARDRAIL_CHANGE_ACTION_DELETE,
}


def guardrail_to_pb(
    spec: GuardrailSpec, info: GuardrailInfo, *, include_rules: bool = True
) -> pb.Guardrail:
    guardrail = spec_to_pb(spec, include_rules=include_rules)
    guardrail.disabled = info.disabled
    guardrail.source = info.source
    if info.updated_at:
        guardrail.updated_at.FromNanoseconds(int(info.updated_at * 1e9))
    return guardrail


def _stored(data: bytes | None, version: int) -> pb.Guardrail | None:
    if data is None:
        return None
    guardrail = pb.Guardrail.FromString(data)
    guardrail.version = version
    return guardrail


def history_to_pb(entry: HistoryEntry) -> pb.GuardrailChange:
    change = pb.GuardrailChange(
        registry_generation=entry.generation,
        name=entry.name,
        version=entry.version,
        action=_ACTIONS.get(entry.action, pb.GUARDRAIL_CHANGE_ACTION_UNSPECIFIED),
        actor=entry.actor,
        source=entry.source,
        before=_stored(entry.before, 0),
        after=_stored(entry.after, entry.version),
    )
    change.changed_at.FromNanoseconds(int(entry.at * 1e9))
    return change
