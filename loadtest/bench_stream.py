"""CheckStream cost per chunk: through a real server, and the engine alone.

    python loadtest/bench_stream.py [--streams 20] [--chunk-chars 24] [--json]

Streams of 50 and 1,000 chunks of model-like prose (an e-mail every few
hundred characters, so masking work is included) with the default output
guardrails. "server" sends each stream through the real servicer and its
interceptors on 127.0.0.1 (one stream at a time, every chunk written, every
release read) and divides the wall time of the whole stream by its chunks;
"engine" runs the same streams through ``service.streaming`` without gRPC.
Prints the median and p90 µs per chunk. Per-chunk cost that stays flat from
50 to 1,000 chunks is what "linear in the stream's length" looks like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from service.app import start_server
from service.checking import select_guardrails
from service.engine import builtin_specs
from service.registry import Registry
from service.settings import load_settings
from service.streaming import ScoreBook, TextStream, engine_for
from service.types import Direction

CHUNK_COUNTS = (50, 1000)
_PROSE = (
    "The quarterly numbers look steady; revenue grew in every region and the "
    "team shipped the migration on time. Reach the owner at ops.lead@example.org "
    "if the dashboard disagrees. Next we plan capacity for the autumn peak. "
)


def _chunks(count: int, size: int) -> list[str]:
    text = _PROSE * (count * size // len(_PROSE) + 1)
    return [text[i * size : (i + 1) * size] for i in range(count)]


def _engine_run(registry: Registry, chunks: list[str], cap: int) -> float:
    snapshot = registry.snapshot
    selection = select_guardrails(snapshot, [], Direction.OUTPUT)
    engine = engine_for(snapshot)
    holdback = engine.holdback(selection.names, cap)
    started = time.perf_counter()
    stream = TextStream(
        0, engine.scanner, selection.names, holdback.chars, ScoreBook(selection.ran)
    )
    for chunk in chunks:
        stream.feed(chunk)
    stream.finish()
    return time.perf_counter() - started


async def _server_run(stub: pb_grpc.GuardrailServiceStub, chunks: list[str]) -> float:
    started = time.perf_counter()
    call = stub.CheckStream()
    await call.write(pb.CheckStreamRequest(open=pb.StreamOpen()))
    for chunk in chunks:
        await call.write(pb.CheckStreamRequest(chunk=pb.StreamChunk(text=chunk)))
    await call.done_writing()
    async for answer in call:
        if answer.HasField("verdict"):
            break
    return time.perf_counter() - started


def _summary(samples: list[float], chunks: int) -> dict[str, float]:
    per_chunk = sorted(s / chunks * 1e6 for s in samples)
    return {
        "median_us_per_chunk": round(statistics.median(per_chunk), 1),
        "p90_us_per_chunk": round(per_chunk[int(len(per_chunk) * 0.9) - 1], 1),
    }


async def _server_results(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            host="127.0.0.1", port=0, metrics_port=0, log_level="error",
            log_format="json", database_url=f"sqlite:///{Path(tmp) / 'spend.db'}",
        )
        server = await start_server(settings)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = pb_grpc.GuardrailServiceStub(channel)
                await _server_run(stub, _chunks(10, args.chunk_chars))  # warm up
                results = {}
                for count in CHUNK_COUNTS:
                    chunks = _chunks(count, args.chunk_chars)
                    runs = [await _server_run(stub, chunks) for _ in range(args.streams)]
                    results[f"server_{count}_chunks"] = _summary(runs, count)
        finally:
            await server.stop(grace=1.0)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20, help="streams per size")
    parser.add_argument("--chunk-chars", type=int, default=24, help="characters per chunk")
    parser.add_argument("--cap", type=int, default=256, help="hold-back cap")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    registry = Registry(builtin_specs())
    results: dict[str, object] = {}
    for count in CHUNK_COUNTS:
        chunks = _chunks(count, args.chunk_chars)
        runs = [_engine_run(registry, chunks, args.cap) for _ in range(args.streams)]
        results[f"engine_{count}_chunks"] = _summary(runs, count)
    results.update(asyncio.run(_server_results(args)))
    results["machine"] = f"{platform.python_version()} {platform.machine()}"
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, value in results.items():
        print(f"{name:22} {value}")


if __name__ == "__main__":
    main()
