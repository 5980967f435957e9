"""A fake GuardrailService on a real in-process gRPC server.

Only the source of answers is fake: the client talks real gRPC to it and the
errors travel as real ``grpc-status-details-bin`` trailers, built by the
service's own ``service.api.status`` table.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.protobuf import duration_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.api.status import to_grpc_status, to_status_proto
from service.errors import (
    FieldViolation,
    GuardrailDefinitionError,
    NotFoundError,
    UnavailableError,
)

KNOWN = {"pii", "secrets"}


def secret_finding(start: int, end: int) -> pb.Finding:
    return pb.Finding(
        guardrail="secrets",
        rule_id="aws-access-key",
        category="secret",
        severity=pb.SEVERITY_HIGH,
        action=pb.ACTION_BLOCK,
        location=pb.Location(path="text", start=start, end=end),
        redacted_preview="AKIA…",
    )


class FakeGuardrailService(pb_grpc.GuardrailServiceServicer):
    def Check(self, request, context):
        unknown = [n for n in request.guardrails if n not in KNOWN]
        if unknown:
            error = NotFoundError(f"unknown guardrail {unknown[0]!r}", unknown)
            context.abort_with_status(to_grpc_status(error))
        if request.payload.text == "overload":
            context.abort_with_status(to_grpc_status(UnavailableError("busy", retry_after_s=0.5)))
        text = request.payload.text
        at = text.find("AKIA")
        findings = [secret_finding(at, at + 20)] if at >= 0 else []
        return pb.CheckResponse(
            request_id="req-1",
            decision=pb.DECISION_BLOCK if findings else pb.DECISION_ALLOW,
            findings=findings,
            guardrail_results=[
                pb.GuardrailResult(
                    name="secrets",
                    version=1,
                    status=pb.GUARDRAIL_STATUS_INTERVENED if findings else pb.GUARDRAIL_STATUS_PASSED,
                    finding_count=len(findings),
                    action=pb.ACTION_BLOCK,
                    score=1.0 if findings else 0.0,
                )
            ],
            registry_generation=7,
            scan_duration=duration_pb2.Duration(nanos=1500),
            applied_guardrails=list(request.guardrails) or ["secrets"],
        )

    def CheckStream(self, request_iterator, context):
        opening = next(request_iterator)
        chunks = 0
        for request in request_iterator:
            if request.WhichOneof("kind") == "end":
                break
            chunks += 1
            yield pb.CheckStreamResponse(release=pb.StreamRelease(text=request.chunk.text.upper()))
        yield pb.CheckStreamResponse(
            verdict=pb.StreamVerdict(
                request_id="stream-1",
                decision=pb.DECISION_ALLOW,
                chunk_count=chunks,
                applied_guardrails=list(opening.open.guardrails),
            )
        )

    def Register(self, request_iterator, context):
        for number, request in enumerate(request_iterator, start=1):
            name = request.guardrail.name
            if not request.guardrail.rules:
                error = GuardrailDefinitionError(name, [FieldViolation("rules", "at least one rule")])
                yield pb.RegisterResponse(error=to_status_proto(error))
                continue
            yield pb.RegisterResponse(
                accepted=pb.RegisterAccepted(
                    name=name, version=1, registry_generation=10 + number,
                    validate_only=request.validate_only,
                )
            )

    def ListGuardrails(self, request, context):
        return pb.ListGuardrailsResponse(
            guardrails=[pb.Guardrail(name=n) for n in sorted(KNOWN)], registry_generation=7
        )

    def GetGuardrail(self, request, context):
        if request.name not in KNOWN:
            context.abort_with_status(to_grpc_status(NotFoundError("no such guardrail", [request.name])))
        return pb.GetGuardrailResponse(guardrail=pb.Guardrail(name=request.name))

    def DeleteGuardrail(self, request, context):
        if request.name == "secrets":
            # A status with no rich details at all: the client must cope.
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, "built-in guardrails stay")
        return pb.DeleteGuardrailResponse(registry_generation=8)


@pytest.fixture(scope="session")
def fake_target() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_GuardrailServiceServicer_to_server(FakeGuardrailService(), server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("draining", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)

