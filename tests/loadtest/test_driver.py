"""The load driver and the echo server against real servers on real sockets."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

from loadtest.driver import run_load
from loadtest.echo_server import start_echo_server
from loadtest.memory import drive
from loadtest.run import run_scenario
from loadtest.scenarios import load_scenario


def _inline_config(tmp_path: Path, data: object, call: str = "Check") -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(
        json.dumps(
            {
                "proto": "proto/guardrail/v1/guardrail.proto",
                "import-paths": ["third_party/proto"],
                "call": f"guardrail.v1.GuardrailService.{call}",
                "concurrency": 4,
                "total": 50,
                "insecure": True,
                "host": "127.0.0.1:0",
                "data": data,
                "metadata": {"x-request-id": "drv-{{.RequestNumber}}"},
            }
        )
    )
    return path


async def test_fifty_checks_are_counted_and_all_ok(server):
    """A 50-call run of the 1 KB scenario reports 50 calls, all OK, with latencies."""
    scenario = load_scenario("check_1kb")

    result = await run_load(
        f"127.0.0.1:{server.port}", scenario, total=50, concurrency=4
    )

    report = result.report
    assert report["count"] == 50
    assert report["statusCodeDistribution"] == {"OK": 50}
    assert report["errorDistribution"] == {}
    assert (
        0
        < report["fastest"]
        <= report["latencyDistribution"][2]["latency"]
        <= report["slowest"]
    )
    assert report["rps"] > 0


async def test_unknown_guardrail_calls_are_counted_as_not_found(server, tmp_path):
    """Calls naming an unknown guardrail land in NotFound with the server's message."""
    path = _inline_config(
        tmp_path, {"payload": {"text": "hi"}, "guardrails": ["no_such_one"]}
    )

    result = await run_load(f"127.0.0.1:{server.port}", load_scenario(path))

    assert result.report["count"] == 50
    assert result.report["statusCodeDistribution"] == {"NotFound": 50}
    (error,) = result.report["errorDistribution"]
    assert error.startswith("rpc error: code = NotFound desc = ")
    assert result.report["latencyDistribution"] == []


async def test_streams_and_register_runs_complete(server):
    """CheckStream of 50 chunks and Register churn run as whole streams, each call OK."""
    target = f"127.0.0.1:{server.port}"

    stream = await run_load(
        target, load_scenario("check_stream_50"), total=10, concurrency=2
    )
    register = await run_load(
        target, load_scenario("register_churn"), total=6, concurrency=2
    )

    assert stream.report["statusCodeDistribution"] == {"OK": 10}
    assert register.report["statusCodeDistribution"] == {"OK": 6}


async def test_echo_answers_with_the_size_of_the_real_response(stub):
    """For the 16 KB body the echo server's response is as large as the service's."""
    (request,) = load_scenario("check_16kb_hits").messages
    echo, port = await start_echo_server()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echoed = await pb_grpc.GuardrailServiceStub(channel).Check(request)
    finally:
        await echo.stop(None)
    real = await stub.Check(request)

    assert echoed.decision == real.decision == pb.DECISION_BLOCK
    assert abs(echoed.ByteSize() - real.ByteSize()) <= 8  # scan_duration varint width


async def test_memory_drive_rotates_and_samples(server):
    """A short memory run mixes OK and NotFound calls and samples the RSS."""
    import os

    run, elapsed = await drive(
        f"127.0.0.1:{server.port}",
        os.getpid(),
        200,
        concurrency=4,
        sample_every_s=0.05,
        reregister_every=100,
    )
    summary = run.summary(0.1, elapsed)

    assert summary["calls"] == 200
    assert summary["statusCodeDistribution"]["NotFound"] == 20  # one call in ten
    assert summary["statusCodeDistribution"]["OK"] == 180
    assert summary["rss_final_mb"] > 0 and len(summary["samples"]) >= 2


def test_run_scenario_starts_service_and_echo_and_stops_them():
    """run.py's path: `guardrail serve` and the echo server as subprocesses, 50 calls each."""
    summary, runs = run_scenario(
        "check_1kb", total=50, runs=1, warmup_s=0, against_echo=True
    )

    assert runs[0].result.report["count"] == 50
    assert summary["statusCodeDistribution"] == {"OK": 50}
    assert {
        "scenario",
        "rps",
        "echo_rps",
        "ratio",
        "p50_ms",
        "p99_ms",
    } <= summary.keys()
    assert summary["ratio"] > 0 and summary["server_cpu_us_per_call"] > 0
    assert runs[0].result.report["options"]["total"] == 50
