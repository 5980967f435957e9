"""GuardrailServicer: convert, call the checker or registry, convert back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.api.call_context import current_call
from service.api.convert import caller_from_pb
from service.api.convert import spec_to_mapping
from service.api.status import to_status_proto
from service.api.stream_check import log_holdback, run_check_stream
from service.checking import Checker
from service.errors import (
    FailedPreconditionError,
    FieldViolation,
    GuardrailDefinitionError,
    GuardrailError,
    InvalidArgumentError,
)
from service.limits import LIMIT_EXCEEDED, registration_limit_violations
from service.api.registry_convert import guardrail_to_pb, history_to_pb
from service.definition_checks import require_valid
from service.mcp_pins import McpPins, pin_scope, pins_for_request
from service.registry import Registry, RegistryChanges, Snapshot, shown_name
from service.registry_changes import storable
from service.settings import Settings
from service.types import CallRecord, GuardrailSpec, RegisterItem

__all__ = ["GuardrailServicer"]

#: Time kept back from the caller's deadline to send our own answer.
DEADLINE_MARGIN_S = 0.005


class GuardrailServicer(pb_grpc.GuardrailServiceServicer):
    def __init__(
        self,
        registry: Registry,
        checker: Checker,
        *,
        holdback: int,
        offload_chars: int,
        changes: RegistryChanges,
        settings: Settings | None = None,
    ) -> None:
        self._settings = settings  # None: no Register-side limits (tests, CLI)
        self._registry = registry
        self._changes = changes  # stored and put in force everywhere before OK
        self._checker = checker
        self._holdback = holdback
        log_holdback(registry.snapshot, holdback)  # and builds the stream engine
        self._offload_chars = offload_chars

    async def Check(
        self, request: pb.CheckRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckResponse:
        # Answer just before the caller gives up, so the row says why.
        remaining = context.time_remaining()
        deadline = (
            None if remaining is None else time.monotonic() + remaining - DEADLINE_MARGIN_S
        )
        if request.ByteSize() <= self._offload_chars:
            return self._checker.check(request, deadline=deadline)
        # RE2 releases the GIL: a big scan in a thread keeps the loop serving.
        return await self._checker.check_offloaded(request, deadline=deadline)

    async def PinMcpTools(
        self, request: pb.PinMcpToolsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PinMcpToolsResponse:
        pins, scope = self._pins_and_scope(request.caller)
        hashes = pins_for_request(request.server, request.tools)
        await pins.pin(scope, request.server, hashes)
        return pb.PinMcpToolsResponse(pins=_pins_pb(pins.listed(scope, request.server)))

    async def ListMcpPins(
        self, request: pb.ListMcpPinsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMcpPinsResponse:
        pins, scope = self._pins_and_scope(request.caller)
        return pb.ListMcpPinsResponse(pins=_pins_pb(pins.listed(scope, request.server)))

    async def ClearMcpPins(
        self, request: pb.ClearMcpPinsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClearMcpPinsResponse:
        pins, scope = self._pins_and_scope(request.caller)
        return pb.ClearMcpPinsResponse(cleared=await pins.clear(scope, request.server))

    def _pins_and_scope(self, caller: pb.Caller) -> tuple[McpPins, str]:
        record = current_call.get(None)
        if record is not None:
            record.caller = caller_from_pb(caller)
        pins = self._checker.pins
        if pins is None:
            raise FailedPreconditionError(
                "MCP pinning is not configured on this server", reason="PINS_DISABLED"
            )
        principal = record.principal if record is not None else None
        return pins, pin_scope(principal, caller.team_id)

    def CheckStream(
        self,
        request_iterator: AsyncIterator[pb.CheckStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.CheckStreamResponse]:
        return run_check_stream(
            self._registry,
            request_iterator,
            holdback=self._holdback,
            policy=self._checker.policy,
            max_json_depth=self._checker.limits.max_json_depth,
        )

    async def Register(
        self,
        request_iterator: AsyncIterator[pb.RegisterRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.RegisterResponse]:
        record = current_call.get(None)
        metadata = {"request_id": record.request_id} if record is not None else {}
        actor = _actor(context)
        async for request in request_iterator:
            name = shown_name(request.guardrail.name)
            try:
                answer = await self._register_one(request, actor)
            except GuardrailError as error:
                _note_item(record, RegisterItem(name, False, reason=error.reason))
                yield pb.RegisterResponse(error=to_status_proto(error, metadata))
                continue
            accepted = answer.accepted
            item = RegisterItem(name, True, accepted.version, accepted.validate_only)
            _note_item(record, item)
            yield answer

    async def _register_one(
        self, request: pb.RegisterRequest, actor: str = ""
    ) -> pb.RegisterResponse:
        if not request.HasField("guardrail"):
            raise InvalidArgumentError(
                "register request has no guardrail",
                [FieldViolation("guardrail", "required")],
            )
        # Every problem of the item at once, before any process sees it.
        spec = require_valid(spec_to_mapping(request.guardrail))
        self._check_limits(spec)
        if request.validate_only:
            checked = self._registry.next_version(spec)
            generation = self._registry.snapshot.generation
        else:
            checked, generation = await self._changes.register(
                spec,
                encoded=storable(request.guardrail),
                disabled=request.guardrail.disabled,
                actor=actor,
            )
        self._note_generation(generation)
        accepted = pb.RegisterAccepted(
            name=checked.name,
            version=checked.version,
            registry_generation=generation,
            validate_only=request.validate_only,
        )
        return pb.RegisterResponse(accepted=accepted)

    async def ListGuardrails(
        self, request: pb.ListGuardrailsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGuardrailsResponse:
        snapshot = self._registry.snapshot
        self._note_generation(snapshot.generation)
        guardrails = [
            _described(snapshot, name, include_rules=request.include_rules)
            for name in snapshot.names()
        ]
        return pb.ListGuardrailsResponse(
            guardrails=guardrails, registry_generation=snapshot.generation
        )

    async def GetGuardrail(
        self, request: pb.GetGuardrailRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetGuardrailResponse:
        snapshot = self._registry.snapshot
        self._note_generation(snapshot.generation)
        guardrail = _described(snapshot, _required_name(request.name))
        return pb.GetGuardrailResponse(guardrail=guardrail)

    async def DeleteGuardrail(
        self, request: pb.DeleteGuardrailRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteGuardrailResponse:
        name = _required_name(request.name)
        self._registry.check_deletable(name)
        generation = await self._changes.delete(name, actor=_actor(context))
        self._note_generation(generation)
        return pb.DeleteGuardrailResponse(registry_generation=generation)

    async def GetGuardrailHistory(
        self, request: pb.GetGuardrailHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetGuardrailHistoryResponse:
        name = _required_name(request.name)
        history = getattr(self._changes, "history", None)
        if history is None:
            raise FailedPreconditionError(
                "this server keeps no registry history (no database)",
                reason="NO_REGISTRY_STORE",
            )
        entries = await history(name, request.limit or 100)
        if not entries:
            self._registry.snapshot.describe(name)  # NOT_FOUND for a name never known
        self._note_generation(self._registry.snapshot.generation)
        return pb.GetGuardrailHistoryResponse(changes=[history_to_pb(e) for e in entries])

    def _check_limits(self, spec: GuardrailSpec) -> None:
        if self._settings is None:
            return
        registered = sum(
            1
            for name, g in self._registry.snapshot.guardrails.items()
            if not g.spec.builtin and name != spec.name  # a same-name item replaces
        )
        violations = registration_limit_violations(spec, self._settings, registered)
        if violations:
            error = GuardrailDefinitionError(spec.name, violations)
            error.reason = LIMIT_EXCEEDED
            raise error

    @staticmethod
    def _note_generation(generation: int) -> None:
        record = current_call.get(None)
        if record is not None:
            record.registry_generation = generation


def _actor(context: grpc.aio.ServicerContext) -> str:
    """Who makes a change: the API key id when authenticated, else the peer."""
    record = current_call.get(None)
    if record is not None and record.principal is not None:
        return f"key:{record.principal.key_id}"
    try:
        return str(context.peer() or "")
    except Exception:  # a context without a peer (in-process tests)
        return ""


def _described(snapshot: Snapshot, name: str, *, include_rules: bool = True) -> pb.Guardrail:
    spec, info = snapshot.describe(name)
    return guardrail_to_pb(spec, info, include_rules=include_rules)


def _pins_pb(rows: list[tuple[str, str, str]]) -> list[pb.McpToolPin]:
    return [pb.McpToolPin(server=s, tool=t, sha256=h) for s, t, h in rows]


def _required_name(name: str) -> str:
    if not name:
        raise InvalidArgumentError("name is required", [FieldViolation("name", "required")])
    return name


# Items listed in one Register row; a longer stream says how many more.
MAX_RECORDED_ITEMS = 100


def _note_item(record: CallRecord | None, item: RegisterItem) -> None:
    if record is None:
        return
    record.register_item_count += 1
    if len(record.register_items) < MAX_RECORDED_ITEMS:
        record.register_items.append(item)
