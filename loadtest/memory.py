"""Memory over many calls: the server's RSS from a warm-up point to the end.

    python loadtest/memory.py [--calls 1000000] [--concurrency 8] [--json]
    python loadtest/memory.py --target 127.0.0.1:50051 --pid 1234 --calls 200000

Drives ``--calls`` Check calls that rotate everything a caller controls:
caller ids (user, team, end user, session, tags, API key), client request ids
(metadata and body), payloads (the ghz bodies plus a per-call suffix),
directions, and guardrail names: defaults, built-ins by name, guardrails
this run Registers (and re-Registers every ``--reregister-every`` calls, so
versions and registry generations churn), and 5,000 distinct unknown names
that fail with NOT_FOUND. The server's RSS (the process and its children,
from /proc) is sampled every ``--sample-every`` seconds; growth is measured
from the first sample after ``--warmup-fraction`` of the calls. Target: < 5 %.
Without ``--target`` it starts ``guardrail serve`` itself and stops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `loadtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from guardrail.v1 import guardrail_pb2 as pb

from loadtest.aio import run_async
from loadtest.ghz_report import go_code_name
from loadtest.processes import exit_on_sigterm, rss_bytes, start_service
from loadtest.scenarios import load_scenario

__all__ = ["MemoryRun", "drive", "main", "request_for"]

CHECK_PATH = "/guardrail.v1.GuardrailService/Check"
REGISTER_PATH = "/guardrail.v1.GuardrailService/Register"
PAYLOAD_SCENARIOS = ("check_1kb", "check_chat_4kb", "check_16kb_hits", "check_tools")
CUSTOM = tuple(f"mem_custom_{i}" for i in range(5))
UNKNOWN_NAMES = 5000
TARGET_GROWTH_PCT = 5.0


def _payload_bodies() -> list[pb.Payload]:
    payloads = []
    for name in PAYLOAD_SCENARIOS:
        for request in load_scenario(name).messages:
            assert isinstance(request, pb.CheckRequest)
            payloads.append(request.payload)
    return payloads


def _guardrails_for(number: int) -> tuple[list[str], int]:
    """Guardrail names and direction for call ``number``: a fixed 10-call cycle."""
    slot = number % 10
    custom = CUSTOM[number // 10 % len(CUSTOM)]
    if slot == 5:
        return ["secrets", "pii"], pb.DIRECTION_INPUT
    if slot == 6:
        return [custom], pb.DIRECTION_INPUT
    if slot == 7:
        return [f"unknown_{number // 10 % UNKNOWN_NAMES}"], pb.DIRECTION_INPUT
    if slot == 8:
        return ["prompt_injection", custom], pb.DIRECTION_INPUT
    if slot == 9:
        return [], pb.DIRECTION_OUTPUT
    return [], pb.DIRECTION_INPUT


def request_for(
    number: int, payloads: list[bytes]
) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The serialized CheckRequest and metadata of call ``number``.

    Serialized protobuf messages merge when concatenated, so the large payload
    is serialized once and only the small rotating fields per call.
    """
    names, direction = _guardrails_for(number)
    suffix = pb.CheckRequest(payload=pb.Payload(text=f" Reference {number}."))
    rotating = pb.CheckRequest(
        direction=direction,
        guardrails=names,
        client_request_id=f"mem-{number}",
        caller=pb.Caller(
            user=f"user-{number % 100_000}",
            team_id=f"team-{number % 97}",
            end_user=f"end-{number % 50_000}",
            session_id=f"session-{number // 20}",
            request_tags=[f"tag-{number % 13}", "loadtest"],
        ),
    )
    body = payloads[number % len(payloads)]
    if number % 3 == 0:  # a third of the texts differ on every call
        body += suffix.SerializeToString()
    metadata = (
        ("authorization", f"Bearer key-{number % 1000}"),
        ("x-request-id", f"mem-md-{number}"),
    )
    return body + rotating.SerializeToString(), metadata


def _custom_guardrail(name: str, generation: int) -> pb.Guardrail:
    word = f"codeword{generation}"
    return pb.Guardrail(
        name=name,
        description="memory test",
        action=pb.ACTION_FLAG,
        rules=[
            pb.Rule(
                id="word",
                category="custom",
                severity=pb.SEVERITY_LOW,
                keywords=[word],
                must_match=[f"say {word} now"],
                must_not_match=["nothing here"],
            )
        ],
    )


async def _register(channel: grpc.aio.Channel, generation: int) -> None:
    call = channel.stream_stream(
        REGISTER_PATH,
        request_serializer=pb.RegisterRequest.SerializeToString,
        response_deserializer=pb.RegisterResponse.FromString,
    )
    requests = [
        pb.RegisterRequest(guardrail=_custom_guardrail(n, generation)) for n in CUSTOM
    ]
    async for answer in call(iter(requests)):
        if answer.HasField("error"):
            raise RuntimeError(f"Register failed: {answer.error.message}")


@dataclass
class MemoryRun:
    """What one run saw: call outcomes and (calls done, seconds, RSS) samples."""

    calls: int
    done: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    samples: list[tuple[int, float, int]] = field(default_factory=list)

    def summary(self, warmup_fraction: float, elapsed_s: float) -> dict[str, Any]:
        warm_at = int(self.calls * warmup_fraction)
        warm = next((s for s in self.samples if s[0] >= warm_at), self.samples[-1])
        final = self.samples[-1]
        growth = (final[2] - warm[2]) / warm[2] * 100
        mb = 1024 * 1024
        return {
            "calls": self.done,
            "seconds": round(elapsed_s, 1),
            "rps": round(self.done / elapsed_s, 1),
            "statusCodeDistribution": dict(self.codes),
            "rss_start_mb": round(self.samples[0][2] / mb, 1),
            "rss_warm_mb": round(warm[2] / mb, 1),
            "warm_at_calls": warm[0],
            "rss_final_mb": round(final[2] / mb, 1),
            "rss_max_mb": round(max(s[2] for s in self.samples) / mb, 1),
            "growth_pct": round(growth, 2),
            "target_pct": TARGET_GROWTH_PCT,
            "passed": growth < TARGET_GROWTH_PCT,
            "samples": [(c, round(t, 1), round(r / mb, 1)) for c, t, r in self.samples],
        }


async def _sampler(run: MemoryRun, pid: int, every_s: float, started: float) -> None:
    while True:
        sample = (run.done, time.monotonic() - started, rss_bytes(pid))
        run.samples.append(sample)
        # One line per sample on stderr, so a run cut short still leaves its curve.
        print(
            json.dumps(
                {
                    "calls": sample[0],
                    "s": round(sample[1], 1),
                    "rss_mb": round(sample[2] / 2**20, 1),
                }
            ),
            file=sys.stderr,
            flush=True,
        )
        await asyncio.sleep(every_s)


async def drive(
    target: str,
    pid: int,
    calls: int,
    *,
    concurrency: int = 8,
    sample_every_s: float = 2.0,
    reregister_every: int = 20_000,
    stop_on_signals: bool = False,
) -> tuple[MemoryRun, float]:
    """Run the calls; returns the run and its wall time in seconds.

    With ``stop_on_signals``, SIGINT or SIGTERM ends the run early and the
    calls made so far are still summarised.
    """
    stopping = asyncio.Event()
    if stop_on_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
    payloads = [p.SerializeToString() for p in _payload_bodies()]
    bodies = [
        pb.CheckRequest(payload=pb.Payload.FromString(p)).SerializeToString()
        for p in payloads
    ]
    run = MemoryRun(calls)
    async with grpc.aio.insecure_channel(target) as channel:
        await _register(channel, 0)
        check = channel.unary_unary(CHECK_PATH)
        counter = iter(range(calls))

        async def caller() -> None:
            for number in counter:
                if stopping.is_set():
                    return
                if number and number % reregister_every == 0:
                    await _register(channel, number // reregister_every)
                body, metadata = request_for(number, bodies)
                try:
                    await check(body, metadata=metadata)
                    run.codes["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    run.codes[go_code_name(error.code())] += 1
                run.done += 1

        started = time.monotonic()
        sampler = asyncio.create_task(_sampler(run, pid, sample_every_s, started))
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        sampler.cancel()
        run.samples.append((run.done, elapsed, rss_bytes(pid)))
    return run, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds")
    parser.add_argument("--warmup-fraction", type=float, default=0.1)
    parser.add_argument("--reregister-every", type=int, default=20_000)
    parser.add_argument("--target", help="a running server (then --pid is required)")
    parser.add_argument("--pid", type=int, help="the running server's process id")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.target and not args.pid:
        parser.error("--target needs --pid")
    service = None if args.target else start_service(workers=args.workers)
    target = args.target or service.target  # type: ignore[union-attr]
    pid = args.pid or service.pid  # type: ignore[union-attr]
    try:
        run, elapsed = run_async(
            drive(
                target,
                pid,
                args.calls,
                concurrency=args.concurrency,
                sample_every_s=args.sample_every,
                reregister_every=args.reregister_every,
                stop_on_signals=True,
            )
        )
    finally:
        if service is not None:
            service.stop()
    summary = run.summary(args.warmup_fraction, elapsed)
    if not args.json:
        summary.pop("samples")
    print(json.dumps(summary, indent=None if args.json else 2))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
