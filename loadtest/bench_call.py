"""Where one Check's CPU goes, in process: scan, checker, servicer, recording.

    python loadtest/bench_call.py [--scenario check_1kb] [--calls 3000] [--rounds 5] [--json]

Runs the scenario's request(s) through four nested layers, each timed in
process CPU time (median of ``--rounds`` rounds, µs per call) on one thread:

* ``scan``: the engine's ``Scanner.scan`` on the request's segments, every
  guardrail the call resolves to (not ours to tune: service/engine);
* ``checker``: ``Checker.check(request)``, i.e. plan + scan + decision +
  the response message;
* ``servicer``: ``GuardrailServicer.Check`` with a stand-in context and a
  call record in place (the checker fills it, as under the interceptor);
* ``recorded-no-wal``: the raw request bytes through the recording
  interceptor's wrapped handler (protobuf parse, request id, metrics, access
  line to /dev/null, SpendLogs row built and queued; metrics in a worker's
  slot file, as ``guardrail serve`` runs them), no span exporter, and the
  SpendLogs write-ahead file off;
* ``recorded``: as ``recorded-no-wal``, with the row also appended to the
  write-ahead file before the call returns, as served. Every 1000 calls the
  queue is emptied and its rows settled, as the writer task does after
  storing them (the database insert is not included).

The differences between layers are the costs this repository's recording,
conversion and servicer add on top of the scan. No sockets and no gRPC
core: for the transport, compare with the echo server (loadtest/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `loadtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

METHOD = "/guardrail.v1.GuardrailService/Check"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _cpu_us(run: Any, calls: int) -> float:
    started = time.process_time_ns()
    run(calls)
    return (time.process_time_ns() - started) / 1000 / calls


def measure(scenario_name: str, calls: int, rounds: int) -> dict[str, Any]:
    from guardrail.v1 import guardrail_pb2 as pb
    from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

    from loadtest.bench_recording import _Context, bench_settings
    from loadtest.scenarios import load_scenario
    from service.api.call_context import current_call
    from service.api.interceptors import RecordingInterceptor
    from service.api.servicer import GuardrailServicer
    from service.checking import Checker
    from service.engine.pack import builtin_specs
    from service.registry import Registry
    from service.store.spend_logs import SpendLogWriter
    from service.telemetry import metrics as metrics_module
    from service.telemetry.tracing import Tracing
    from service.types import CallRecord

    scenario = load_scenario(scenario_name)
    requests = [m for m in scenario.messages if isinstance(m, pb.CheckRequest)]
    if not requests:
        raise SystemExit(f"{scenario_name} has no Check requests")
    raw = [r.SerializeToString() for r in requests]
    tmp = Path(tempfile.mkdtemp(prefix="bench-call-"))
    settings = bench_settings(tmp)
    metrics_module.prepare_metrics_dir(tmp / "metrics")
    metrics_module.configure_worker_metrics(tmp / "metrics", 0)
    metrics = metrics_module.Metrics()
    registry = Registry(builtin_specs())
    registry.subscribe(metrics.follow_registry)
    metrics.follow_registry(registry.snapshot)
    checker = Checker(registry)
    servicer = GuardrailServicer(  # Check needs no registry changes
        registry, checker, holdback=256, offload_chars=1 << 30, changes=None
    )
    bare_writer = SpendLogWriter(settings, metrics)  # never opens the file
    writer = SpendLogWriter(settings, metrics)
    writer._open_write_ahead()  # what start() does; no database, no tasks
    interceptor = RecordingInterceptor(
        metrics, Tracing(None, None), writer, worker=0
    )
    bare_interceptor = RecordingInterceptor(
        metrics, Tracing(None, None), bare_writer, worker=0
    )
    handlers: dict[str, Any] = {}

    class _Server:
        def add_generic_rpc_handlers(self, generic: Any) -> None:
            for each in generic:
                handlers.update(each._method_handlers)

        def add_registered_method_handlers(self, service: str, methods: Any) -> None:
            for name, handler in methods.items():
                handlers[f"/{service}/{name}"] = handler

    pb_grpc.add_GuardrailServiceServicer_to_server(servicer, _Server())
    handler = handlers[METHOD]

    async def continuation(_: Any) -> Any:
        return handler

    class _Details:
        method = METHOD
        invocation_metadata = ()

    loop = asyncio.new_event_loop()
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        pass
    wrapped = loop.run_until_complete(interceptor.intercept_service(continuation, _Details()))
    behavior = wrapped.unary_unary
    bare = loop.run_until_complete(
        bare_interceptor.intercept_service(continuation, _Details())
    ).unary_unary
    context = _Context(
        (
            ("traceparent", TRACEPARENT),
            ("authorization", "Bearer bench-key"),
            ("x-request-id", "bench-1"),
        )
    )
    snapshot = registry.snapshot
    plans = [checker.plan(r, None) for r in requests]
    names = [p.closed + p.open for p in plans]

    def empty(each: Any) -> None:
        each._settle(list(each._pending))  # the writer task is not running here
        each._pending.clear()

    def scan(n: int) -> None:
        for i in range(n):
            k = i % len(plans)
            snapshot.scanner.scan(plans[k].segments, names[k])

    def check(n: int) -> None:
        for i in range(n):
            checker.check(requests[i % len(requests)])

    def serve(n: int) -> None:
        # With a call record in place, as the interceptor leaves one, so the
        # checker fills it here too and the next layer adds only recording.
        async def go() -> None:
            for i in range(n):
                current_call.set(CallRecord("r" * 32, "Check", "check", 0.0, 0))
                await servicer.Check(requests[i % len(requests)], context)

        loop.run_until_complete(go())

    def recorded(n: int, write_ahead: bool = True) -> None:
        call, each = (behavior, writer) if write_ahead else (bare, bare_writer)

        async def go() -> None:
            for i in range(n):
                await call(raw[i % len(raw)], context)
                if i % 1000 == 999:
                    empty(each)
            empty(each)

        loop.run_until_complete(go())

    layers = {
        "scan": scan,
        "checker": check,
        "servicer": serve,
        "recorded-no-wal": lambda n: recorded(n, write_ahead=False),
        "recorded": recorded,
    }
    for run in layers.values():
        run(1000)  # warm up
    samples: dict[str, list[float]] = {name: [] for name in layers}
    for _ in range(rounds):
        for name, run in layers.items():
            samples[name].append(_cpu_us(run, calls))
    medians = {name: round(statistics.median(v), 1) for name, v in samples.items()}
    loop.close()
    return {
        "scenario": scenario_name,
        "calls": calls,
        "rounds": rounds,
        "cpu_us_per_call": medians,
        "added_us": {
            "checker_over_scan": round(medians["checker"] - medians["scan"], 1),
            "servicer_over_checker": round(medians["servicer"] - medians["checker"], 1),
            "recording_over_servicer": round(medians["recorded"] - medians["servicer"], 1),
            "write_ahead": round(medians["recorded"] - medians["recorded-no-wal"], 1),
        },
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="check_1kb")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.scenario, args.calls, args.rounds)
    if args.json:
        print(json.dumps(result))
        return
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
