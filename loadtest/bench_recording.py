"""Recording cost per RPC: metrics + span + access line + SpendLogs row.

    python loadtest/bench_recording.py [--calls 20000] [--rounds 5] [--json]
                                       [--no-write-ahead]

Drives the recording interceptor's wrapped handler directly with a stand-in
ServicerContext (no sockets, no gRPC core), around a handler that fills the
call record the way ``Check`` does (decision, two guardrail outcomes, one
finding). The figure is the wrapped call minus the bare handler call, per
call, median of ``--rounds`` rounds. Modes:

* ``no-exporter``: ``OTEL_TRACES_EXPORTER`` unset; the caller's traceparent
  still reaches the log line.
* ``export``: every call sampled, spans batched and encoded to OTLP protobuf
  by the batch processor's thread (encoded and discarded: the CPU of export
  without a network). The export thread's CPU is included in the
  process-CPU column, not in the wall-clock one.
* ``contrib-export``: as ``export``, but the span comes from
  opentelemetry-instrumentation-grpc's asyncio server interceptor stacked
  outside ours (ours then makes no span): the alternative we measured.
* ``multiprocess``: ``no-exporter`` with metrics in multiprocess files
  (what a worker of the supervisor pays). Runs last: it switches
  prometheus_client's value class for the whole process.

The SpendLogs row is queued with the real writer's ``submit``, which builds
the row and appends it to the write-ahead file in a temporary directory
before the call returns, as served (``--no-write-ahead``: the file is off,
the row is still built). Every 1000 calls the queue is emptied and its rows
settled, as the writer task would after storing them. ``row_build_us`` times
the row build alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
METHOD = "/guardrail.v1.GuardrailService/Check"


class _EncodingExporter(SpanExporter):
    """Encodes each batch as an OTLP request would, then drops it."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class _Metadatum(NamedTuple):
    """grpc's metadata item shape (the contrib interceptor reads .key/.value)."""

    key: str
    value: str


class _Details(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class _Context:
    """The part of grpc.aio.ServicerContext the interceptor touches."""

    def __init__(self, metadata: tuple[_Metadatum, ...]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> tuple[_Metadatum, ...]:
        return self._metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        return None

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def code(self) -> None:
        return None

    def details(self) -> str:
        return ""

    def time_remaining(self) -> None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


def _fill_record() -> None:
    from service.api.call_context import current_call
    from service.types import (
        Action,
        Decision,
        Direction,
        Finding,
        GuardrailOutcome,
        GuardrailStatus,
        Severity,
    )

    record = current_call.get()
    record.direction = Direction.INPUT
    record.decision = Decision.MASK
    record.outcomes = (
        GuardrailOutcome("pii", 1, GuardrailStatus.INTERVENED, Action.MASK, 1),
        GuardrailOutcome("secrets", 1, GuardrailStatus.PASSED, Action.BLOCK, 0),
    )
    record.findings = (
        Finding("pii", "email", "email", Severity.MEDIUM, Action.MASK, "text", 9, 24),
    )
    record.applied_guardrails = ("pii", "secrets")
    record.registry_generation = 1
    record.scan_ns = 4_000


async def _handler(request: bytes, context: Any) -> bytes:
    _fill_record()
    return b"ok"


def _wrapped(interceptor: Any, outer: Any = None) -> Any:
    handler = grpc.unary_unary_rpc_method_handler(_handler)

    async def continuation(details: Any) -> Any:
        return handler

    details = _Details(METHOD, ())
    loop = asyncio.get_event_loop()
    wrapped = loop.run_until_complete(interceptor.intercept_service(continuation, details))
    if outer is None:
        return wrapped.unary_unary

    async def per_call(request: bytes, context: Any) -> bytes:
        # The contrib interceptor wraps the handler anew on every call.
        async def inner(details: Any) -> Any:
            return wrapped

        handler = await outer.intercept_service(inner, details)
        result: bytes = await handler.unary_unary(request, context)
        return result

    return per_call


def _bare() -> Any:
    from service.api.call_context import current_call
    from service.types import CallRecord

    async def bare(request: bytes, context: Any) -> bytes:
        current_call.set(CallRecord("r", "Check", "check", 0.0, 0))
        return await _handler(request, context)

    return bare


def _empty_queue(writer: Any) -> None:
    # The writer task is not running here: drop the rows as if it had stored them.
    writer._settle(list(writer._pending))
    writer._pending.clear()


def _time(behavior: Any, calls: int, writer: Any) -> tuple[float, float]:
    metadata = (
        _Metadatum("traceparent", TRACEPARENT),
        _Metadatum("authorization", "Bearer bench-key"),
        _Metadatum("x-request-id", "bench-1"),
    )
    context = _Context(metadata)
    loop = asyncio.get_event_loop()

    async def run() -> None:
        for i in range(calls):
            await behavior(b"x", context)
            if writer is not None and i % 1000 == 999:
                _empty_queue(writer)
        if writer is not None:
            _empty_queue(writer)

    wall, cpu = time.perf_counter(), time.process_time()
    loop.run_until_complete(run())
    return (
        (time.perf_counter() - wall) * 1e6 / calls,
        (time.process_time() - cpu) * 1e6 / calls,
    )


def bench_settings(tmp: Path) -> Any:
    """Settings with SQLite in ``tmp``, a queue that never fills, JSON lines to /dev/null."""
    from service.settings import load_settings
    from service.telemetry.logging import configure_logging

    settings = load_settings(
        log_format="json",
        database_url=f"sqlite:///{tmp / 'bench.db'}",
        spend_log_queue_size=1_000_000,
        spend_log_batch_size=1_000_000,
    )
    configure_logging(settings, stream=open(os.devnull, "w"))  # noqa: SIM115
    return settings


def _build(mode: str, tmp: Path, write_ahead: bool = True) -> tuple[Any, Any, Any]:
    from service.api.interceptors import RecordingInterceptor
    from service.store.spend_logs import SpendLogWriter
    from service.telemetry import metrics as metrics_module
    from service.telemetry.tracing import Tracing

    settings = bench_settings(tmp)
    if mode == "multiprocess":
        configure = getattr(metrics_module, "configure_worker_metrics", None)
        if configure is None:
            raise SystemExit("this version has no multiprocess metrics")
        directory = tmp / "metrics"
        prepare = metrics_module.prepare_metrics_dir
        prepare(directory)
        configure(directory, 0)
    metrics = metrics_module.Metrics()
    processor = None
    exporter = None
    if mode in ("export", "contrib-export"):
        exporter = _EncodingExporter()
        processor = BatchSpanProcessor(exporter)
    tracing = Tracing.from_settings(settings, processor=processor, set_global=False)
    writer = SpendLogWriter(settings, metrics)
    if write_ahead:
        writer._open_write_ahead()  # what start() does; no database, no tasks
    outer = None
    if mode == "contrib-export":
        # opentelemetry-instrumentation-grpc's span + our records without a span.
        try:
            from opentelemetry.instrumentation.grpc import aio_server_interceptor
        except ImportError as error:  # only installed for this comparison
            raise SystemExit(f"not installed: {error}") from None

        outer = aio_server_interceptor(tracer_provider=tracing.provider)
        tracing = Tracing(tracing.provider, None)
    interceptor = RecordingInterceptor(metrics, tracing, writer, worker=1)
    return (interceptor, outer), writer, (tracing, exporter)


def _row_build_us(calls: int) -> float:
    from service.api.call_context import current_call
    from service.store.spend_logs import to_row
    from service.types import CallRecord

    record = CallRecord("r" * 32, "Check", "check", time.time(), 0)
    token = current_call.set(record)
    _fill_record()
    current_call.reset(token)
    started = time.perf_counter()
    for _ in range(calls):
        to_row(record)
    return (time.perf_counter() - started) * 1e6 / calls


def measure(
    mode: str, calls: int, rounds: int, write_ahead: bool = True
) -> dict[str, Any]:
    os.environ.pop("OTEL_TRACES_EXPORTER", None)
    with tempfile.TemporaryDirectory() as tmp:
        built = _build(mode, Path(tmp), write_ahead)
        (interceptor, outer), writer, (tracing, exporter) = built
        wrapped, bare = _wrapped(interceptor, outer), _bare()
        _time(wrapped, 2000, writer)  # warm up
        samples, cpu_samples = [], []
        for _ in range(rounds):
            base_wall, base_cpu = _time(bare, calls, None)
            wall, cpu = _time(wrapped, calls, writer)
            if tracing.provider is not None:
                tracing.provider.force_flush()
            samples.append(wall - base_wall)
            cpu_samples.append(cpu - base_cpu)
        tracing.shutdown()
        if writer._write_ahead is not None:
            writer._write_ahead.close()
    return {
        "mode": mode,
        "write_ahead": write_ahead,
        "recording_us_per_call": round(statistics.median(samples), 2),
        "recording_cpu_us_per_call": round(statistics.median(cpu_samples), 2),
        "spans_exported": exporter.spans if exporter else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--modes", default="no-exporter,export,contrib-export,multiprocess"
    )
    parser.add_argument(
        "--no-write-ahead", action="store_true", help="SpendLogs write-ahead file off"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    try:
        import uvloop

        asyncio.set_event_loop(uvloop.new_event_loop())
    except ImportError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    results = []
    for mode in args.modes.split(","):
        try:
            write_ahead = not args.no_write_ahead
            results.append(measure(mode, args.calls, args.rounds, write_ahead))
        except SystemExit as exc:
            results.append({"mode": mode, "skipped": str(exc)})
    report = {
        "python": platform.python_version(),
        "calls": args.calls,
        "rounds": args.rounds,
        "row_build_us": round(_row_build_us(5000), 2),
        "results": results,
    }
    if args.json:
        json.dump(report, sys.stdout)  # one line, as report.py reads it
        print()
        return
    print(f"python {report['python']}, {args.calls} calls x {args.rounds} rounds")
    for result in results:
        print(json.dumps(result))
    print(f"row build (in submit, per row): {report['row_build_us']} µs")


if __name__ == "__main__":
    main()
