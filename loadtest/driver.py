"""The load loop: N concurrent grpc.aio callers sending one scenario's bodies.

Like ghz: ``concurrency`` callers share ``connections`` channels and take
request numbers from one counter; a run stops after ``total`` calls or when
``duration`` has passed (calls in flight then finish and count, ghz's
``duration-stop: wait``). Bodies are serialized once and responses are not
parsed, so the load tool spends its CPU on the transport, not on protobuf.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from loadtest.ghz_report import CallLog, build_report
from loadtest.scenarios import Scenario, render_metadata

__all__ = ["LoadResult", "run_load"]

_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.use_local_subchannel_pool", 1),  # one connection per channel, not shared
)


@dataclass(frozen=True)
class LoadResult:
    """A finished run: the ghz report and the load tool's own CPU time."""

    report: dict[str, Any]
    client_cpu_s: float

    @property
    def rps(self) -> float:
        return float(self.report["rps"])

    def latency_ms(self, percentage: int) -> float:
        for row in self.report["latencyDistribution"]:
            if row["percentage"] == percentage:
                return float(row["latency"]) / 1e6
        return float("nan")


class _Plan:
    """Shared state of one run: the counter, the stop condition and the log."""

    def __init__(self, total: int | None, duration_s: float | None) -> None:
        if total is None and duration_s is None:
            raise ValueError("a run needs total or duration")
        self.total = total
        self.deadline = None if duration_s is None else time.perf_counter() + duration_s
        self.next_number = 0
        self.log = CallLog()

    def take(self) -> int | None:
        if self.total is not None and self.next_number >= self.total:
            return None
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return None
        number = self.next_number
        self.next_number += 1
        return number


async def _unary_caller(
    call: Any, bodies: Sequence[bytes], scenario: Scenario, plan: _Plan
) -> None:
    while (number := plan.take()) is not None:
        metadata = render_metadata(scenario.metadata, number)
        started = time.perf_counter_ns()
        try:
            await call(bodies[number % len(bodies)], metadata=metadata)
        except grpc.aio.AioRpcError as error:
            plan.log.add(
                time.perf_counter_ns() - started, error.code(), error.details()
            )
        else:
            plan.log.add(time.perf_counter_ns() - started, grpc.StatusCode.OK)


async def _stream_caller(
    call: Any, bodies: Sequence[bytes], scenario: Scenario, plan: _Plan
) -> None:
    while (number := plan.take()) is not None:
        metadata = render_metadata(scenario.metadata, number)
        started = time.perf_counter_ns()
        try:
            async for _ in call(iter(bodies), metadata=metadata):
                pass
        except grpc.aio.AioRpcError as error:
            plan.log.add(
                time.perf_counter_ns() - started, error.code(), error.details()
            )
        else:
            plan.log.add(time.perf_counter_ns() - started, grpc.StatusCode.OK)


def _multicallable(channel: grpc.aio.Channel, scenario: Scenario) -> Any:
    # No (de)serializers: bodies go out as bytes and responses stay bytes.
    if scenario.streaming:
        return channel.stream_stream(scenario.path)
    return channel.unary_unary(scenario.path)


async def _run(
    target: str, scenario: Scenario, concurrency: int, plan: _Plan, connections: int
) -> int:
    channels = [
        grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        for _ in range(connections)
    ]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), timeout=10)
        bodies = scenario.bodies()
        caller = _stream_caller if scenario.streaming else _unary_caller
        calls = [
            _multicallable(channels[i % connections], scenario)
            for i in range(concurrency)
        ]
        started = time.perf_counter_ns()
        await asyncio.gather(*(caller(c, bodies, scenario, plan) for c in calls))
        return time.perf_counter_ns() - started
    finally:
        for channel in channels:
            await channel.close()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_load(
    target: str,
    scenario: Scenario,
    *,
    concurrency: int | None = None,
    total: int | None = None,
    duration_s: float | None = None,
    warmup_s: float = 0.0,
) -> LoadResult:
    """Drive ``scenario`` at ``target``; limits default to the config's own.

    A warm-up phase of ``warmup_s`` seconds runs first and is not counted.
    """
    concurrency = concurrency or scenario.concurrency
    connections = int(scenario.config.get("connections") or 1)
    if total is None and duration_s is None:
        total, duration_s = scenario.total, scenario.duration_s
    if warmup_s > 0:
        await _run(target, scenario, concurrency, _Plan(None, warmup_s), connections)
    plan = _Plan(total, duration_s)
    cpu_before = _cpu_seconds()
    wall_ns = await _run(target, scenario, concurrency, plan, connections)
    options = {
        "host": target,
        "call": scenario.config["call"],
        "concurrency": concurrency,
        "connections": connections,
        "total": total or 0,
        "duration": int((duration_s or 0) * 1e9),
        "insecure": True,
    }
    report = build_report(
        plan.log,
        wall_ns,
        name=scenario.config.get("name", scenario.name),
        options=options,
    )
    return LoadResult(report, _cpu_seconds() - cpu_before)
