"""GuardrailServicer: convert, call the checker or registry, convert back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.api.call_context import current_call
from service.api.convert import spec_to_mapping, spec_to_pb
from service.api.status import to_status_proto
from service.api.stream_check import log_holdback, run_check_stream
from service.checking import Checker
from service.engine import spec_from_mapping
from service.errors import (
    FieldViolation,
    GuardrailError,
    InvalidArgumentError,
    ScanDeadlineError,
)
from service.registry import LocalChanges, Registry, RegistryChanges

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
        changes: RegistryChanges | None = None,
    ) -> None:
        self._registry = registry
        self._changes = changes or LocalChanges(registry)
        self._checker = checker
        self._holdback = holdback
        log_holdback(registry.snapshot, holdback)  # and builds the stream engine
        self._offload_chars = offload_chars

    async def Check(
        self, request: pb.CheckRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckResponse:
        if request.ByteSize() <= self._offload_chars:
            return self._checker.check(request)
        # RE2 releases the GIL: a big scan in a thread keeps the loop serving.
        scan = asyncio.to_thread(self._checker.check, request)
        remaining = context.time_remaining()
        if remaining is None:
            return await scan
        try:
            # Answer just before the caller gives up, so the row says why.
            return await asyncio.wait_for(scan, max(0.0, remaining - DEADLINE_MARGIN_S))
        except TimeoutError:
            raise ScanDeadlineError(
                "the scan did not finish before the call's deadline"
            ) from None

    def CheckStream(
        self,
        request_iterator: AsyncIterator[pb.CheckStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.CheckStreamResponse]:
        return run_check_stream(
            self._registry, request_iterator, holdback=self._holdback
        )

    async def Register(
        self,
        request_iterator: AsyncIterator[pb.RegisterRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.RegisterResponse]:
        record = current_call.get(None)
        metadata = {"request_id": record.request_id} if record is not None else {}
        async for request in request_iterator:
            try:
                yield await self._register_one(request)
            except GuardrailError as error:
                yield pb.RegisterResponse(error=to_status_proto(error, metadata))

    async def _register_one(self, request: pb.RegisterRequest) -> pb.RegisterResponse:
        if not request.HasField("guardrail"):
            raise InvalidArgumentError(
                "register request has no guardrail",
                [FieldViolation("guardrail", "required")],
            )
        spec = spec_from_mapping(spec_to_mapping(request.guardrail))
        if request.validate_only:
            checked = self._registry.validate(spec)
            generation = self._registry.snapshot.generation
        else:
            self._registry.validate(spec)  # fail here, before any process sees it
            checked, generation = await self._changes.register(spec)
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
            spec_to_pb(g.spec, include_rules=request.include_rules)
            for _, g in sorted(snapshot.guardrails.items())
        ]
        return pb.ListGuardrailsResponse(
            guardrails=guardrails, registry_generation=snapshot.generation
        )

    async def GetGuardrail(
        self, request: pb.GetGuardrailRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetGuardrailResponse:
        snapshot = self._registry.snapshot
        self._note_generation(snapshot.generation)
        guardrail = snapshot.resolve([_required_name(request.name)])[0]
        return pb.GetGuardrailResponse(guardrail=spec_to_pb(guardrail.spec))

    async def DeleteGuardrail(
        self, request: pb.DeleteGuardrailRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteGuardrailResponse:
        name = _required_name(request.name)
        self._registry.check_deletable(name)
        generation = await self._changes.delete(name)
        self._note_generation(generation)
        return pb.DeleteGuardrailResponse(registry_generation=generation)

    @staticmethod
    def _note_generation(generation: int) -> None:
        record = current_call.get(None)
        if record is not None:
            record.registry_generation = generation


def _required_name(name: str) -> str:
    if not name:
        raise InvalidArgumentError("name is required", [FieldViolation("name", "required")])
    return name
