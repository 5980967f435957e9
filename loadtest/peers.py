"""Side by side with the peers on the same texts, in one run.

    python loadtest/peers.py [--limit 300] [--warmup 300] [--grpc-duration 5] [--json]

Texts: every record of ../shared/datasets between 512 and 2048 characters
("1 KB-ish prompts"), a seeded sample of ``--limit``, plus ``--warmup`` other
records that every library contestant scans first, untimed, so that each
measured text is new to it but it is not fresh from start-up (RE2 builds its
DFA states lazily: a fresh process pays several times more for its first
texts). Contestants, each called as a library on one thread, one text at a
time:

* ours, in process: ``build_default_checker().check(CheckRequest)``, once
  fresh (no warm-up) and once after the warm-up texts;
* ours over gRPC: ``guardrail serve`` (1 worker, all recording on) driven at
  8 concurrent calls with the measured texts in a loop, so warm after their
  first pass; its per-record cost is the server's CPU per call, so "per
  core" does not depend on the load tool;
* LiteLLM's content filter (``apply_guardrail``) with its prebuilt PII and
  credential patterns and its prompt-injection categories;
* LLM Guard's CPU scanners Secrets, InvisibleText, BanSubstrings and Regex,
  imported without the package ``__init__`` (which pulls in the ML stack).

A peer that is not installed is reported as missing, not skipped silently.

What is like for like: LiteLLM and LLM Guard are measured as library calls,
i.e. their scan in process with no transport. Our in-process row is the same
kind of call (``Checker.check``: plan, scan, decision and the response
message), so "scan vs scan" is ours-in-process against theirs. The gRPC row
is our whole call as the server pays it (HTTP/2 and protobuf, the recording
interceptor, the SpendLogs insert), so against a peer's in-process scan it
understates us. LiteLLM's ``apply_guardrail`` is a coroutine, run here with
``run_until_complete`` per text, which adds a few tens of µs of event-loop
work to each of its records. Every row comes from the same run on the same
texts, so the load on a shared machine scales all of them: compare ratios
within one run, not figures across runs (PEERS.md was measured on a quieter
machine).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import random
import statistics
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `loadtest` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# LiteLLM fetches a model price list from the internet at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from guardrail.v1 import guardrail_pb2 as pb

from loadtest.processes import exit_on_sigterm
from loadtest.scenarios import REPO_ROOT, Scenario, find_method

__all__ = ["Contestant", "load_texts", "main", "measure_library", "run_peers"]

DATASETS = REPO_ROOT.parent / "shared" / "datasets"
if not DATASETS.exists():  # CI lays shared/ beside the clone
    DATASETS = Path(
        os.environ.get("GUARDRAIL_DATASETS", "../shared/datasets")
    ).resolve()

Contestant = Callable[[str], object]

# LiteLLM configuration: the closest to our built-ins it ships.
LITELLM_PATTERNS = (
    "us_ssn",
    "email",
    "us_phone",
    "visa",
    "mastercard",
    "amex",
    "discover",
    "credit_card",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "slack_token",
    "generic_api_key",
    "ipv4",
    "ipv6",
    "iban",
)
LITELLM_CATEGORIES = (
    "prompt_injection_jailbreak",
    "prompt_injection_system_prompt",
    "prompt_injection_data_exfiltration",
)
# LLM Guard's BanSubstrings and Regex ship no list of their own; these are ours.
BANNED_PHRASES = (
    "ignore previous instructions",
    "ignore all previous instructions",
    "disregard the above",
    "you are now dan",
    "developer mode enabled",
    "reveal your system prompt",
)
LLM_GUARD_PATTERNS = (
    r"(?i)bearer [a-z0-9._~+/-]{20,}",
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
)


def load_texts(
    limit: int = 300, low: int = 512, high: int = 2048, seed: int = 1
) -> list[str]:
    """A seeded sample of the dataset texts between ``low`` and ``high`` characters."""
    texts = []
    for path in sorted(DATASETS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            text = json.loads(line)["text"]
            if low <= len(text) <= high:
                texts.append(text)
    if not texts:
        raise FileNotFoundError(f"no 1 KB-ish texts under {DATASETS}")
    random.Random(seed).shuffle(texts)
    return texts[:limit]


# -- contestants --------------------------------------------------------------------


def ours_in_process() -> Contestant:
    from service.checking import build_default_checker
    from service.engine.scanner import forget_shared_passes

    # Scanners share the built-in packs' compiled Sets within a process; each
    # contestant of ours starts from its own, as a new process would.
    forget_shared_passes()
    checker = build_default_checker()
    return lambda text: checker.check(pb.CheckRequest(payload=pb.Payload(text=text)))


def litellm_content_filter() -> Contestant:
    import logging

    from fastapi import HTTPException
    from litellm.proxy.guardrails.guardrail_hooks.litellm_content_filter.content_filter import (
        ContentFilterGuardrail,
    )
    from litellm.types.guardrails import ContentFilterAction, ContentFilterPattern
    from litellm.types.proxy.guardrails.guardrail_hooks.litellm_content_filter import (
        ContentFilterCategoryConfig,
    )

    guard = ContentFilterGuardrail(
        guardrail_name="peer-bench",
        patterns=[
            ContentFilterPattern(
                pattern_type="prebuilt",
                pattern_name=name,
                action=ContentFilterAction.MASK,
            )
            for name in LITELLM_PATTERNS
        ],
        categories=[
            ContentFilterCategoryConfig(category=c, action="BLOCK")
            for c in LITELLM_CATEGORIES
        ],
    )
    for logger in ("LiteLLM", "LiteLLM Proxy", "LiteLLM Router"):
        logging.getLogger(logger).setLevel(logging.ERROR)  # it logs every block
    loop = asyncio.new_event_loop()

    def scan(text: str) -> object:
        try:
            return loop.run_until_complete(
                guard.apply_guardrail(
                    {"texts": [text]}, request_data={}, input_type="request"
                )
            )
        except HTTPException as blocked:  # a BLOCK is an answer, not a failure
            return blocked

    return scan


def _llm_guard_module(name: str) -> Any:
    # Register the two packages as bare namespaces so their __init__ (which
    # imports every scanner, the ML ones included) does not run.
    if "llm_guard.input_scanners" not in sys.modules:
        spec = importlib.util.find_spec("llm_guard")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("llm_guard")
        base = Path(next(iter(spec.submodule_search_locations)))
        for package, path in (
            ("llm_guard", base),
            ("llm_guard.input_scanners", base / "input_scanners"),
        ):
            module = types.ModuleType(package)
            module.__path__ = [str(path)]
            sys.modules[package] = module
    return importlib.import_module(f"llm_guard.input_scanners.{name}")


def llm_guard_cpu_scanners() -> Contestant:
    import logging

    import structlog

    # LLM Guard logs every finding through structlog at warning level.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR)
    )
    scanners = [
        _llm_guard_module("secrets").Secrets(),
        _llm_guard_module("invisible_text").InvisibleText(),
        _llm_guard_module("ban_substrings").BanSubstrings(
            substrings=list(BANNED_PHRASES)
        ),
        _llm_guard_module("regex").Regex(patterns=list(LLM_GUARD_PATTERNS)),
    ]
    return lambda text: [scanner.scan(text) for scanner in scanners]


FRESH = "ours (in process, fresh: no texts before these)"
LIBRARIES: dict[str, Callable[[], Contestant]] = {
    "ours (in process, all built-in guardrails)": ours_in_process,
    "LiteLLM content filter (PII, credentials, injection categories)": litellm_content_filter,
    "LLM Guard CPU scanners (Secrets, InvisibleText, BanSubstrings, Regex)": llm_guard_cpu_scanners,
}


# -- measuring -------------------------------------------------------------------------


def measure_library(
    contestant: Contestant, texts: list[str], warmup: Sequence[str] = ()
) -> dict[str, float]:
    """CPU µs per record (median, mean) on one thread, and records/s on that core.

    ``warmup`` texts (other than the measured ones) run first, untimed. Every
    measured text is new to the contestant, as a gateway's prompts are: RE2
    builds its DFA states lazily, so our first texts after start cost several
    times what they cost once other texts have run through (Python ``re``,
    which the peers use, has no such warm-up beyond compiling).

    CPU time, not wall time: on a machine shared with other jobs the wall
    clock also counts the time this process waited for a core.
    """
    for text in warmup:
        contestant(text)
    samples = []
    wall_started = time.perf_counter_ns()
    for text in texts:
        started = time.process_time_ns()
        contestant(text)
        samples.append((time.process_time_ns() - started) / 1000)
    wall_us = (time.perf_counter_ns() - wall_started) / 1000 / len(texts)
    mean = statistics.fmean(samples)
    return {
        "us_median": round(statistics.median(samples), 1),
        "us_mean": round(mean, 1),
        "records_per_s_per_core": round(1e6 / mean, 1),
        "wall_us_mean": round(wall_us, 1),
    }


def _texts_scenario(texts: list[str], concurrency: int) -> Scenario:
    call = "guardrail.v1.GuardrailService.Check"
    messages = tuple(pb.CheckRequest(payload=pb.Payload(text=t)) for t in texts)
    config = {
        "call": call,
        "concurrency": concurrency,
        "connections": 1,
        "name": "peer texts",
    }
    return Scenario("peer_texts", config, find_method(call), messages, {})


def measure_service(
    texts: list[str], duration_s: float, concurrency: int = 8
) -> dict[str, float]:
    """Ours over gRPC: the server's CPU per call gives µs per record and records/s per core."""
    from loadtest.processes import start_service
    from loadtest.run import measure

    service = start_service(workers=1)
    try:
        run = measure(
            service,
            _texts_scenario(texts, concurrency),
            concurrency=concurrency,
            total=None,
            duration_s=duration_s,
        )
    finally:
        service.stop()
    statuses = run.result.report["statusCodeDistribution"]
    if set(statuses) != {"OK"}:
        raise RuntimeError(f"service answered errors on the peer texts: {statuses}")
    return {
        "us_median": round(run.cpu_us_per_call, 1),
        "us_mean": round(run.cpu_us_per_call, 1),
        "wall_us_mean": round(1e6 / run.result.rps, 1),
        "records_per_s_per_core": round(1e6 / run.cpu_us_per_call, 1),
        "wall_rps": round(run.result.rps, 1),
        "p50_ms": run.result.latency_ms(50),
    }


def run_peers(
    limit: int = 300, grpc_duration_s: float = 5.0, warmup: int = 300
) -> dict[str, Any]:
    """Every contestant on the same texts, after the same ``warmup`` other texts;
    ours also fresh, with no warm-up. Missing peers are listed with the reason."""
    sample = load_texts(limit + warmup)
    texts, others = sample[:limit], sample[limit:]
    results: dict[str, Any] = {
        "texts": len(texts),
        "warmup_texts": len(others),
        "mean_chars": round(statistics.fmean(len(t) for t in texts)),
        "rows": {},
        "missing": {},
    }
    results["rows"][FRESH] = measure_library(ours_in_process(), texts)
    for name, build in LIBRARIES.items():
        try:
            contestant = build()
        except ImportError as error:
            results["missing"][name] = f"not installed: {error}"
            continue
        results["rows"][name] = measure_library(contestant, texts, others)
    if grpc_duration_s > 0:
        results["rows"][
            "ours (gRPC service, 1 worker, all recording; server CPU per call)"
        ] = measure_service(texts, grpc_duration_s)
    return results


def ratios(results: dict[str, Any], reference: str) -> dict[str, float]:
    """Each of our rows' per-core throughput divided by ``reference``'s."""
    rows = results["rows"]
    if reference not in rows:
        return {}
    base = rows[reference]["records_per_s_per_core"]
    return {
        name: round(row["records_per_s_per_core"] / base, 1)
        for name, row in rows.items()
        if name.startswith("ours")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300, help="texts to use")
    parser.add_argument(
        "--grpc-duration", type=float, default=5.0, help="0 skips the gRPC row"
    )
    parser.add_argument(
        "--warmup", type=int, default=300, help="other texts each contestant sees first"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    results = run_peers(args.limit, args.grpc_duration, args.warmup)
    if args.json:
        print(json.dumps(results))
        return 0
    for name, row in results["rows"].items():
        print(
            f"{row['us_median']:>10} µs  {row['records_per_s_per_core']:>10}/s/core  {name}"
        )
    for name, reason in results["missing"].items():
        print(f"{'-':>10}     {'-':>10}         {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
