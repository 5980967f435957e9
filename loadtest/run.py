"""Run a ghz scenario with grpc.aio clients, against the service and the echo ceiling.

    python loadtest/run.py --scenario check_1kb --against-echo --json
    python loadtest/run.py --scenario check_1kb --target 127.0.0.1:50051   # ghz JSON report
    python loadtest/run.py --list

Starts ``guardrail serve`` (temporary SQLite SpendLogs, access log to a file,
every recording sink on) and, with ``--against-echo``, the reference echo
server, each in its own process; this process is the load tool. Runs
alternate service / echo ``--runs`` times after a warm-up each, and the
summary gives medians: requests/s, p50 and p99, the service's rate as a ratio
of the echo's, and CPU per call of each server (from /proc), which does not
depend on how fast the load tool is. Without ``--json`` it prints the ghz
JSON report of the median service run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `loadtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtest.aio import run_async
from loadtest.driver import LoadResult, run_load
from loadtest.processes import (
    ServerProcess,
    cpu_seconds,
    exit_on_sigterm,
    start_echo,
    start_service,
)
from loadtest.scenarios import (
    Scenario,
    load_scenario,
    parse_go_duration,
    scenario_names,
)

__all__ = ["Measurement", "main", "measure", "run_scenario", "summarise"]

DEFAULT_RUNS = 3
DEFAULT_DURATION = "5s"
WARMUP_S = 1.0


@dataclass(frozen=True)
class Measurement:
    """One run against one server: the load result and the server's CPU."""

    target_name: str
    result: LoadResult
    server_cpu_s: float

    @property
    def cpu_us_per_call(self) -> float:
        count = self.result.report["count"]
        return self.server_cpu_s / count * 1e6 if count else float("nan")


def measure(
    server: ServerProcess,
    scenario: Scenario,
    *,
    concurrency: int | None,
    total: int | None,
    duration_s: float | None,
    warmup_s: float = WARMUP_S,
    pid: int | None = None,
) -> Measurement:
    """A warm-up (not counted), then one counted run with the server's CPU read around it."""
    if warmup_s > 0:
        run_async(
            run_load(
                server.target, scenario, concurrency=concurrency, duration_s=warmup_s
            )
        )
    watched = pid or server.pid
    before = cpu_seconds(watched)
    result = run_async(
        run_load(
            server.target,
            scenario,
            concurrency=concurrency,
            total=total,
            duration_s=duration_s,
        )
    )
    return Measurement(server.name, result, cpu_seconds(watched) - before)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4) if values else float("nan")


def summarise(
    scenario: str, runs: list[Measurement], echo_runs: list[Measurement]
) -> dict[str, Any]:
    """Medians over the runs, and the service-to-echo ratios."""
    summary: dict[str, Any] = {
        "scenario": scenario,
        "runs": len(runs),
        "rps": _median([m.result.rps for m in runs]),
        "p50_ms": _median([m.result.latency_ms(50) for m in runs]),
        "p99_ms": _median([m.result.latency_ms(99) for m in runs]),
        "server_cpu_us_per_call": _median([m.cpu_us_per_call for m in runs]),
        "client_cpu_share": _median(
            [m.result.client_cpu_s / (m.result.report["total"] / 1e9) for m in runs]
        ),
        "statusCodeDistribution": runs[len(runs) // 2].result.report[
            "statusCodeDistribution"
        ],
    }
    if echo_runs:
        echo_rps = _median([m.result.rps for m in echo_runs])
        echo_cpu = _median([m.cpu_us_per_call for m in echo_runs])
        summary.update(
            echo_rps=echo_rps,
            ratio=round(summary["rps"] / echo_rps, 3) if echo_rps else float("nan"),
            echo_p50_ms=_median([m.result.latency_ms(50) for m in echo_runs]),
            echo_p99_ms=_median([m.result.latency_ms(99) for m in echo_runs]),
            echo_cpu_us_per_call=echo_cpu,
            cpu_ratio=round(echo_cpu / summary["server_cpu_us_per_call"], 3),
        )
    return summary


def run_scenario(
    name: str,
    *,
    against_echo: bool = True,
    workers: int = 1,
    concurrency: int | None = None,
    total: int | None = None,
    duration_s: float | None = None,
    runs: int = DEFAULT_RUNS,
    warmup_s: float = WARMUP_S,
    report_dir: Path | None = None,
) -> tuple[dict[str, Any], list[Measurement]]:
    """Start the servers, alternate runs, stop them; the summary and the service runs."""
    scenario = load_scenario(name)
    if total is None and duration_s is None:
        duration_s = parse_go_duration(DEFAULT_DURATION)
    limits = {
        "concurrency": concurrency,
        "total": total,
        "duration_s": duration_s,
        "warmup_s": warmup_s,
    }
    service_runs: list[Measurement] = []
    echo_runs: list[Measurement] = []
    service = start_service(workers=workers)
    echo: ServerProcess | None = None
    try:
        echo = start_echo() if against_echo else None
        for _ in range(runs):
            service_runs.append(measure(service, scenario, **limits))
            if echo is not None:
                echo_runs.append(measure(echo, scenario, **limits))
    finally:
        service.stop()
        if echo is not None:
            echo.stop()
    summary = summarise(name, service_runs, echo_runs)
    summary.update(concurrency=concurrency or scenario.concurrency, workers=workers)
    if report_dir is not None:
        _write_reports(report_dir, name, service_runs + echo_runs)
    return summary, service_runs


def _write_reports(report_dir: Path, name: str, runs: list[Measurement]) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    for i, run in enumerate(runs):
        path = report_dir / f"{name}-{run.target_name}-{i}.json"
        path.write_text(json.dumps(run.result.report, indent=2))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", help="a config name in loadtest/ghz (see --list)")
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    parser.add_argument(
        "--against-echo", action="store_true", help="also run the echo server"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--workers", type=int, default=1, help="GUARDRAIL_WORKERS of the service"
    )
    parser.add_argument(
        "--concurrency", type=int, help="callers (default: the config's)"
    )
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument(
        "--duration", help=f"Go duration per run (default {DEFAULT_DURATION})"
    )
    limit.add_argument("--total", type=int, help="calls per run")
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help="runs per server"
    )
    parser.add_argument(
        "--warmup", type=float, default=WARMUP_S, help="seconds, not counted"
    )
    parser.add_argument(
        "--target", help="drive a running server instead (no echo, no start)"
    )
    parser.add_argument(
        "--report-dir", type=Path, help="write every run's ghz JSON report here"
    )
    return parser


def _against_running(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario)
    duration = parse_go_duration(args.duration) if args.duration else None
    result = run_async(
        run_load(
            args.target,
            scenario,
            concurrency=args.concurrency,
            total=args.total,
            duration_s=duration,
        )
    )
    print(json.dumps(result.report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    exit_on_sigterm()
    if args.list:
        print("\n".join(scenario_names()))
        return 0
    if not args.scenario:
        _parser().error("--scenario is required")
    if args.target:
        return _against_running(args)
    summary, runs = run_scenario(
        args.scenario,
        against_echo=args.against_echo,
        workers=args.workers,
        concurrency=args.concurrency,
        total=args.total,
        duration_s=parse_go_duration(args.duration) if args.duration else None,
        runs=args.runs,
        warmup_s=args.warmup,
        report_dir=args.report_dir,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        median = sorted(runs, key=lambda m: m.result.rps)[len(runs) // 2]
        print(json.dumps(median.result.report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
