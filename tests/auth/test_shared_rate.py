"""The per-key rate holds across the worker processes of one instance.

Two workers share the port; the kernel gives each connection to one of them.
One connection must get the key's whole rate (not rate / workers), and many
connections together must not get more than it.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from tests.auth.conftest import write_keys
from tests.procs import running_service

RATE = 5.0  # per second, and the bucket holds 20 (GUARDRAIL_RATE_LIMIT_BURST)
BURST = 20


def _calls(service, key: str, connections: int, calls: int) -> tuple[int, int]:
    """(OK, RESOURCE_EXHAUSTED) of ``calls`` Checks spread over new connections."""
    channels = [service.channel() for _ in range(connections)]
    stubs = [pb_grpc.GuardrailServiceStub(channel) for channel in channels]
    metadata = (("authorization", f"Bearer {key}"),)
    request = pb.CheckRequest(payload=pb.Payload(text="hello"))
    ok = limited = 0
    for i in range(calls):
        try:
            stubs[i % connections].Check(request, metadata=metadata, timeout=30)
            ok += 1
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
            limited += 1
    for channel in channels:
        channel.close()
    return ok, limited


def test_one_connection_gets_the_whole_rate_and_many_no_more(tmp_path: Path):
    keys = write_keys(tmp_path)
    env = {
        "GUARDRAIL_API_KEYS_FILE": str(keys.path),
        "GUARDRAIL_RATE_LIMIT_PER_S": str(RATE),
        "GUARDRAIL_RATE_LIMIT_BURST": str(BURST),
    }
    with running_service(tmp_path / "svc", workers=2, env=env) as service:
        started = time.monotonic()
        ok, _ = _calls(service, keys.check, connections=1, calls=2 * BURST)
        refill = (time.monotonic() - started) * RATE
        # Separate workers would each hold BURST / 2: one connection got half.
        assert BURST <= ok <= BURST + refill + 1

        time.sleep(BURST / RATE + 0.5)  # the bucket is full again
        started = time.monotonic()
        ok, limited = _calls(service, keys.check, connections=8, calls=3 * BURST)
        refill = (time.monotonic() - started) * RATE
        assert BURST <= ok <= BURST + refill + 1
        assert limited > 0
