"""Run every scenario, the scan benchmark and the peers; write the results table.

    python loadtest/report.py [--runs 3] [--duration 5s] [--peers-limit 300] [--no-write]

Replaces only the block between the ``loadtest:results`` markers in
loadtest/README.md (other sections are left as they are) and prints the same
Markdown. Figures are medians of ``--runs`` alternating service / echo runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `loadtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loadtest.peers import FRESH, run_peers
from loadtest.processes import exit_on_sigterm
from loadtest.run import run_scenario
from loadtest.scenarios import REPO_ROOT, parse_go_duration

__all__ = ["machine_facts", "main", "render", "write_section"]

README = REPO_ROOT / "loadtest" / "README.md"
START = "<!-- loadtest:results:start (written by loadtest/report.py) -->"
END = "<!-- loadtest:results:end -->"
SCENARIOS = (
    "check_1kb",
    "check_chat_4kb",
    "check_16kb_hits",
    "check_tools",
    "check_stream_50",
    "register_churn",
)
LITELLM = "LiteLLM content filter (PII, credentials, injection categories)"
OURS_GRPC = "ours (gRPC service, 1 worker, all recording; server CPU per call)"
OURS_LOCAL = "ours (in process, all built-in guardrails)"
#: What each of our rows is compared with LiteLLM as. LiteLLM is measured as a
#: library call (its scan, in process, no transport), so only the in-process
#: row is like for like; the gRPC row adds our transport and recording.
COMPARISONS = (
    (OURS_LOCAL, "scan vs scan (both in process, same texts, one thread, CPU time)"),
    (FRESH, "scan vs scan, ours fresh from start-up (theirs after the warm-up texts)"),
    (
        OURS_GRPC,
        "our whole gRPC call (transport + recording, server CPU) vs their in-process scan",
    ),
)


def machine_facts() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "load_average": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _script_json(name: str, *args: str) -> dict[str, Any]:
    """Run loadtest/NAME with ``--json`` and read the JSON it prints last."""
    output = subprocess.run(
        [sys.executable, str(REPO_ROOT / "loadtest" / name), "--json", *args],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def _bench_scan() -> dict[str, Any]:
    return _script_json("bench_scan.py")


def _bench_recording() -> dict[str, Any]:
    """Recording CPU µs per call by mode, and row build, from bench_recording.py."""
    modes = "no-exporter,export,multiprocess"
    report = _script_json(
        "bench_recording.py", "--calls", "5000", "--rounds", "5", "--modes", modes
    )
    result: dict[str, Any] = {
        r["mode"]: r["recording_cpu_us_per_call"]
        for r in report["results"]
        if "recording_cpu_us_per_call" in r
    }
    result["row_build"] = report["row_build_us"]
    return result


def _bench_call() -> dict[str, Any]:
    """Where a 1 KB Check's CPU goes in process, from bench_call.py."""
    return _script_json("bench_call.py")


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _targets(
    scenarios: dict[str, dict[str, Any]],
    scan: dict[str, Any],
    peers: dict[str, Any],
    bench: dict[str, Any] | None = None,
) -> list[str]:
    bench = bench or {}
    rows = ["| target | measured | verdict |", "|---|---|---|"]
    check = scenarios.get("check_1kb")
    if check is not None:
        rows.append(
            f"| Check 1 KB ≥ 0.75 × echo requests/s | {check['ratio']} "
            f"| {_verdict(check['ratio'] >= 0.75)} |"
        )
        rows.append(
            "| the same as CPU per call (echo CPU/call ÷ service CPU/call) "
            f"| {check['cpu_ratio']} | {_verdict(check['cpu_ratio'] >= 0.75)} |"
        )
        rows.append(
            f"| Check 1 KB p99 ≤ 5 ms at {check['concurrency']} streams | {check['p99_ms']} ms | {_verdict(check['p99_ms'] <= 5)} |"
        )
    p50 = scan.get("prose_1kb", {}).get("p50_us")
    if p50 is not None:
        rows.append(
            f"| scan alone p50 ≤ 25 µs for 1 KB (bench_scan.py) | {p50} µs | {_verdict(p50 <= 25)} |"
        )
    peer_rows = peers["rows"]
    if LITELLM in peer_rows:
        base = peer_rows[LITELLM]["records_per_s_per_core"]
        for name, label in COMPARISONS:
            if name in peer_rows:
                times = round(peer_rows[name]["records_per_s_per_core"] / base, 1)
                rows.append(
                    f"| ≥ 100 × LiteLLM content filter per core, {label} | {times} × | {_verdict(times >= 100)} |"
                )
    recording = bench.get("recording", {})
    for mode, label in (
        ("multiprocess", "as a worker of `guardrail serve` runs it"),
        ("no-exporter", "single process"),
    ):
        cost = recording.get(mode)
        if cost is not None:
            rows.append(
                f"| recording (metrics + log line + row queued, no span exporter) ≤ 20 µs "
                f"per call, {label} (bench_recording.py, CPU) | {cost} µs "
                f"| {_verdict(cost <= 20)} |"
            )
    return rows


def _load_remark(facts: dict[str, str]) -> str:
    """Say whether other work shared the cores, judged from the 1-minute load."""
    one_minute = [
        float(facts[key].split("/")[0]) for key in ("load_average", "load_end")
    ]
    if max(one_minute) > 0.75 * int(facts["nproc"]):
        return (
            "**shared with other jobs**, so absolute figures are low and noisy; "
            "the ratios matter."
        )
    return "a quiet machine (1-minute load under 3/4 of the cores)."


def render(
    facts: dict[str, str],
    settings: str,
    scenarios: dict[str, dict[str, Any]],
    scan: dict[str, Any],
    peers: dict[str, Any],
    bench: dict[str, Any] | None = None,
) -> str:
    bench = bench or {}
    lines = [
        START,
        (
            f"Machine: {facts['nproc']} cores, {facts['cpu']}, Python {facts['python']}; "
            f"load average at start {facts['load_average']}, at end {facts['load_end']} — "
            f"{_load_remark(facts)} Load tool on the same machine."
        ),
        f"Settings: {settings}.",
        "",
        "### Targets",
        "",
        *_targets(scenarios, scan, peers, bench),
        "",
        "### Scenarios (service vs echo ceiling, medians)",
        "",
        "| scenario | rps | echo rps | ratio | p50 ms | p99 ms | echo p99 ms | server CPU µs/call | echo CPU µs/call | CPU ratio | statuses |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in scenarios.items():
        lines.append(
            f"| {name} | {s['rps']:.0f} | {s['echo_rps']:.0f} | {s['ratio']} | {s['p50_ms']:.2f} | "
            f"{s['p99_ms']:.2f} | {s['echo_p99_ms']:.2f} | {s['server_cpu_us_per_call']:.0f} | "
            f"{s['echo_cpu_us_per_call']:.0f} | {s['cpu_ratio']} | {s['statusCodeDistribution']} |"
        )
    lines += [
        "",
        (
            f"### Peers on the same texts ({peers['texts']} dataset records of 512–2048 "
            f"characters, mean {peers['mean_chars']}; one thread each; every library row "
            f"after {peers.get('warmup_texts', 0)} other records, untimed, except the fresh one)"
        ),
        "",
        (
            "| contestant | CPU µs per record (median) | CPU µs per record (mean) "
            "| records/s per core | wall µs per record (mean) |"
        ),
        "|---|---|---|---|---|",
    ]
    for name, row in peers["rows"].items():
        lines.append(
            f"| {name} | {row['us_median']} | {row['us_mean']} "
            f"| {row['records_per_s_per_core']} | {row['wall_us_mean']} |"
        )
    for name, reason in peers["missing"].items():
        lines.append(f"| {name} | not measured: {reason} | | | |")
    lines += [
        "",
        (
            "Like for like: LiteLLM is called as a library (its scan, in process); so is "
            "`ours (in process)` (`Checker.check`: plan, scan, decision, response message). "
            "The gRPC row is our whole call as the server pays it (transport, parsing, "
            "recording, SpendLogs insert), set against LiteLLM's scan alone: it understates "
            "us. Both sides run in the same process run on the same texts, so load on the "
            "machine scales both."
        ),
    ]
    if "recording" in bench:
        lines += [
            "",
            (
                "Recording CPU µs per call (loadtest/bench_recording.py --calls 5000 "
                f"--rounds 5): `{json.dumps(bench['recording'])}` (`export`: every call "
                "sampled, server span + one child per guardrail, OTLP-encoded)."
            ),
        ]
    if "call" in bench:
        call = bench["call"]
        lines += [
            "",
            (
                "One 1 KB Check in process, CPU µs per call (loadtest/bench_call.py): "
                f"`{json.dumps(call['cpu_us_per_call'])}`; added by each layer: "
                f"`{json.dumps(call['added_us'])}`."
            ),
        ]
    lines += [
        "",
        f"Scan alone (loadtest/bench_scan.py --json): `{json.dumps(scan)}`",
        END,
    ]
    return "\n".join(lines)


def write_section(block: str, readme: Path = README) -> None:
    """Replace the marked block in the README, or append it; nothing else changes."""
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--duration", default="5s", help="Go duration of each counted run"
    )
    parser.add_argument("--peers-limit", type=int, default=300)
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    facts = machine_facts()
    started = time.monotonic()
    duration = parse_go_duration(args.duration)
    scenarios = {}
    for name in args.scenarios:
        scenarios[name], _ = run_scenario(name, runs=args.runs, duration_s=duration)
        print(json.dumps(scenarios[name]), file=sys.stderr)
    scan = _bench_scan()
    bench = {"recording": _bench_recording(), "call": _bench_call()}
    peers = run_peers(args.peers_limit, grpc_duration_s=duration)
    settings = (
        f"`python loadtest/report.py --runs {args.runs} --duration {args.duration} "
        f"--peers-limit {args.peers_limit}`, {args.runs} runs × {args.duration} per server after 1 s "
        f"warm-up, 1 service worker, took {time.monotonic() - started:.0f} s"
    )
    facts["load_end"] = machine_facts()["load_average"]
    block = render(facts, settings, scenarios, scan, peers, bench)
    print(block)
    if not args.no_write:
        write_section(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
