"""The transport ceiling: our service's shape with no scanning and no recording.

    python loadtest/echo_server.py --port 50061 [--host 127.0.0.1]

Same framework as the service (grpc.aio + uvloop, generated servicer, health
service, same message-size options), same methods and message types. Check
parses the request like the service does and answers with the response the
real checker gives for that payload, computed once at start-up for every
Check body in ``loadtest/ghz`` (looked up by the payload's bytes); any other
payload gets the benign ALLOW response. CheckStream answers one release per
chunk and a verdict; Register answers every item as accepted.

Known shortcoming: the look-up re-serializes the payload (about a microsecond
for 1 KB), a cost the real service does not have; it makes the ceiling
slightly lower, so the ratios slightly kinder to the service.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `loadtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from loadtest.scenarios import load_scenario, scenario_names
from service.checking import build_default_checker

__all__ = ["EchoServicer", "canned_check_responses", "main", "start_echo_server"]

MESSAGE_LIMIT = 4 * 1024 * 1024  # the service's default GUARDRAIL_MAX_MESSAGE_BYTES


def _payload_key(payload: pb.Payload) -> bytes:
    return payload.SerializeToString(deterministic=True)


def canned_check_responses() -> tuple[dict[bytes, pb.CheckResponse], pb.CheckResponse]:
    """Real Check responses for every Check body in loadtest/ghz, and the benign one."""
    checker = build_default_checker()
    canned: dict[bytes, pb.CheckResponse] = {}
    for name in scenario_names():
        scenario = load_scenario(name)
        if scenario.method.name != "Check":
            continue
        for request in scenario.messages:
            assert isinstance(request, pb.CheckRequest)
            canned[_payload_key(request.payload)] = checker.check(request)
    benign = checker.check(
        pb.CheckRequest(payload=pb.Payload(text="Summarise the notes."))
    )
    return canned, benign


class EchoServicer(pb_grpc.GuardrailServiceServicer):
    """Answers of the real sizes, computed before the first call."""

    def __init__(self) -> None:
        self._canned, self._benign = canned_check_responses()
        self._verdict = pb.StreamVerdict(
            request_id=self._benign.request_id,
            decision=pb.DECISION_ALLOW,
            guardrail_results=self._benign.guardrail_results,
            registry_generation=1,
            chunk_count=50,
            applied_guardrails=self._benign.applied_guardrails,
        )

    async def Check(
        self, request: pb.CheckRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckResponse:
        return self._canned.get(_payload_key(request.payload), self._benign)

    async def CheckStream(
        self,
        request_iterator: AsyncIterator[pb.CheckStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.CheckStreamResponse]:
        async for item in request_iterator:
            if item.HasField("chunk"):
                release = pb.StreamRelease(
                    choice_index=item.chunk.choice_index, text=item.chunk.text
                )
                yield pb.CheckStreamResponse(release=release)
            elif item.HasField("end"):
                break
        yield pb.CheckStreamResponse(verdict=self._verdict)

    async def Register(
        self,
        request_iterator: AsyncIterator[pb.RegisterRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.RegisterResponse]:
        async for item in request_iterator:
            accepted = pb.RegisterAccepted(
                name=item.guardrail.name,
                version=1,
                registry_generation=1,
                validate_only=item.validate_only,
            )
            yield pb.RegisterResponse(accepted=accepted)


async def start_echo_server(
    host: str = "127.0.0.1", port: int = 0
) -> tuple[grpc.aio.Server, int]:
    """Start the echo server; returns it and the bound port."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MESSAGE_LIMIT),
            ("grpc.max_send_message_length", MESSAGE_LIMIT),
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_GuardrailServiceServicer_to_server(EchoServicer(), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return server, bound


async def _serve(host: str, port: int) -> None:
    server, bound = await start_echo_server(host, port)
    print(f"echo server on {host}:{bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50061)
    args = parser.parse_args()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # same fallback as the service
        loop_factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
