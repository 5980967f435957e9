"""SpendLogs writer benchmarks against the local PostgreSQL (not a unit test).

    python loadtest/bench_spend_logs.py throughput [--rows 100000] [--method copy|insert] [--under-load]
    python loadtest/bench_spend_logs.py outage [--rate 2000] [--seconds 90] [--cut 60]

``throughput``: one writer, records submitted as fast as the queue takes them,
timed until every row is committed. With ``--under-load`` the same run
shares its event loop with a real in-process guardrail server (its own
SpendLogs on SQLite) that a separate load process keeps busy with Check
calls (``--load-concurrency`` callers, 1 KiB texts with an e-mail to mask)
for the whole run; the load's calls/s are printed beside the rows/s.
``outage``: a steady submit rate through
a TCP proxy that is cut for ``--cut`` seconds; reports rows lost after it
returns and the process RSS before, at the end of the cut, and after replay.
Each run uses a fresh schema, dropped afterwards. The shared server is never
stopped: only the proxy is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.settings import load_settings  # noqa: E402
from service.store.postgres import PostgresBackend  # noqa: E402
from service.store.spend_logs import SpendLogWriter  # noqa: E402
from service.telemetry.metrics import Metrics  # noqa: E402
from tests.store.proxy import TcpProxy  # noqa: E402
from tests.store.records import count, make_record  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432/test"


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _schema() -> str:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG)
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.close()
    return schema


async def _drop(schema: str) -> None:
    conn = await asyncpg.connect(PG)
    await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    await conn.close()


async def _rows_in(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM spend_logs"))
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _service_under_load(args: argparse.Namespace):
    """A real server in this event loop, hammered by a separate process."""
    from service.app import start_server

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            host="127.0.0.1", port=0, metrics_port=0, workers=1, log_level="error",
            database_url=f"sqlite:///{tmp}/service.db",
            spend_log_journal_path=Path(tmp) / "journal",
        )  # fmt: skip
        running = await start_server(settings)
        load = subprocess.Popen(
            [sys.executable, __file__, "_load", "--target", f"127.0.0.1:{running.port}",
             "--concurrency", str(args.load_concurrency), "--seconds", "600"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            await asyncio.sleep(2.0)  # let the load reach its pace
            yield load
        finally:
            load.terminate()
            # In a thread: blocking here would stall the server the load is waiting on.
            out, _ = await asyncio.to_thread(load.communicate, timeout=30)
            print(f"load: {out.strip()}")
            await running.stop(grace=1.0)


async def _load(args: argparse.Namespace) -> None:
    """The load process: N callers sending Check until told to stop or time is up."""
    import signal

    import grpc

    from guardrail.v1 import guardrail_pb2 as pb
    from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

    text = ("Please summarise the report and write to ann.example@example.org. " * 16)[:1024]
    request = pb.CheckRequest(payload=pb.Payload(text=text))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    calls = errors = 0
    codes: dict[str, int] = {}
    started = time.perf_counter()
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub = pb_grpc.GuardrailServiceStub(channel)

        async def caller() -> None:
            nonlocal calls, errors
            while not stop.is_set() and time.perf_counter() - started < args.seconds:
                try:
                    await stub.Check(request, timeout=10)
                    calls += 1
                except grpc.RpcError as exc:
                    errors += 1
                    codes[exc.code().name] = codes.get(exc.code().name, 0) + 1

        await asyncio.gather(*(caller() for _ in range(args.concurrency)))
    seconds = time.perf_counter() - started
    print(f"calls={calls} errors={errors} {codes} seconds={seconds:.1f} "
          f"calls_per_s={calls / seconds:,.0f}")  # fmt: skip


async def throughput(args: argparse.Namespace) -> None:
    schema = await _schema()
    url = f"{PG}?search_path={schema}"
    load = _service_under_load(args) if args.under_load else contextlib.nullcontext()
    try:
        async with load:
            metrics, seconds = await _timed_writer(args, url)
        stored = await _rows_in(url)
    finally:
        await _drop(schema)
    print(f"method={args.method} batch={args.batch} rows={args.rows} stored={stored} "
          f"under_load={args.under_load} seconds={seconds:.2f} "
          f"rows_per_s={args.rows / seconds:,.0f} written={count(metrics, 'written'):.0f} "
          f"load1={os.getloadavg()[0]:.2f}")  # fmt: skip


async def _timed_writer(args: argparse.Namespace, url: str) -> tuple[Metrics, float]:
    with tempfile.TemporaryDirectory() as journal:
        settings = load_settings(
            database_url=url,
            spend_log_batch_size=args.batch, spend_log_journal_path=Path(journal),
        )  # fmt: skip
        metrics = Metrics()
        writer = SpendLogWriter(settings, metrics, backend=PostgresBackend(url, method=args.method))
        await writer.start()
        records = [make_record() for _ in range(args.rows)]
        started = time.perf_counter()
        for record in records:
            while writer.queue_depth() >= args.batch * 4:
                await asyncio.sleep(0.001)  # the writer's pace, not the queue's size
            writer.submit(record)
        await writer.wait_replayed()
        seconds = time.perf_counter() - started
        await writer.aclose()
    return metrics, seconds


async def outage(args: argparse.Namespace) -> None:
    schema = await _schema()
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    url = proxy.url(query=f"?search_path={schema}")
    try:
        with tempfile.TemporaryDirectory() as journal:
            settings = load_settings(
                database_url=url, spend_log_journal_path=Path(journal),
                spend_log_journal_max_bytes=args.journal_mib * 1024 * 1024,
            )  # fmt: skip
            metrics = Metrics()
            writer = SpendLogWriter(settings, metrics)
            await writer.start()
            report = await _steady(writer, proxy, args)
            await writer.wait_replayed()
            report["rss_after_replay_mib"] = rss_mib()
            await writer.aclose()
        stored = await _rows_in(proxy.url(query=f"?search_path={schema}"))
    finally:
        await proxy.close()
        await _drop(schema)
    submitted = report.pop("submitted")
    print(f"rate={args.rate}/s seconds={args.seconds} cut={args.cut}s submitted={submitted} "
          f"stored={stored} lost={submitted - stored} dropped={count(metrics, 'dropped'):.0f}")
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                   for k, v in report.items()))  # fmt: skip


async def _steady(writer: SpendLogWriter, proxy: TcpProxy, args: argparse.Namespace) -> dict:
    report: dict = {"rss_before_mib": rss_mib()}
    cut_at = (args.seconds - args.cut) / 2
    tick = 0.01
    per_tick = args.rate * tick
    started = time.perf_counter()
    submitted = 0
    max_journal = 0
    while (elapsed := time.perf_counter() - started) < args.seconds:
        if proxy.mode == "up" and cut_at <= elapsed < cut_at + args.cut:
            proxy.cut()
            print(f"cut at {elapsed:.1f}s", flush=True)
        elif proxy.mode == "cut" and elapsed >= cut_at + args.cut:
            report["rss_end_of_cut_mib"] = rss_mib()
            report["journal_mib_end_of_cut"] = writer.journal_bytes / 2**20
            proxy.restore()
            print(f"restored at {elapsed:.1f}s", flush=True)
        due = int(elapsed * args.rate) - submitted
        for _ in range(max(0, due)):
            writer.submit(make_record())
        submitted += max(0, due)
        max_journal = max(max_journal, writer.journal_bytes)
        await asyncio.sleep(tick)
    await writer.flush()
    report.update(submitted=submitted, max_journal_mib=max_journal / 2**20,
                  rss_end_mib=rss_mib(), queue_size=writer._capacity)  # fmt: skip
    del per_tick
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    t = modes.add_parser("throughput")
    t.add_argument("--rows", type=int, default=100_000)
    t.add_argument("--batch", type=int, default=500)
    t.add_argument("--method", choices=["copy", "insert"], default="copy")
    t.add_argument("--under-load", action="store_true", help="with a busy in-process server")
    t.add_argument("--load-concurrency", type=int, default=16)
    lo = modes.add_parser("_load")  # the load process of --under-load
    lo.add_argument("--target", required=True)
    lo.add_argument("--concurrency", type=int, default=16)
    lo.add_argument("--seconds", type=float, default=600)
    o = modes.add_parser("outage")
    o.add_argument("--rate", type=int, default=2000, help="rows submitted per second")
    o.add_argument("--seconds", type=float, default=90)
    o.add_argument("--cut", type=float, default=60)
    o.add_argument("--journal-mib", type=int, default=1024)
    args = parser.parse_args()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        modes_run = {"throughput": throughput, "outage": outage, "_load": _load}
        runner.run(modes_run[args.mode](args))


if __name__ == "__main__":
    main()
