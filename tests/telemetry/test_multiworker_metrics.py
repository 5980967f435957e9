"""Totals on the supervisor's /metrics are exact across worker processes."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from guardrail.v1 import guardrail_pb2 as pb
from guardrail.v1 import guardrail_pb2_grpc as pb_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.procs import serving, start_service, wait_for

WORKERS = 3
CALLS = 1_000
CONNECTIONS = 8
CHECK_OK = {"grpc_method": "Check", "grpc_code": "OK"}


class Instance:
    """The shared service process helper, plus scraping and load for these tests."""

    def __init__(self, tmp_path: Path) -> None:
        self.service = start_service(
            tmp_path, workers=WORKERS, env={"GUARDRAIL_LOG_FORMAT": "json"}
        )
        self.process = self.service.process
        self.port, self.metrics_port = self.service.port, self.service.metrics_port

    def worker_pids(self) -> list[int]:
        # Only the spawned workers: multiprocessing's resource tracker is a child too.
        return self.service.worker_pids()

    def serving(self) -> bool:
        return serving(self.service.target)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.service.metrics_text()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def call(self, count: int) -> None:
        """``count`` Checks spread over several connections (so over workers)."""

        def run(share: int) -> None:
            # A private subchannel pool: a new connection, as separate gateways make.
            options = [("grpc.use_local_subchannel_pool", 1)]
            with grpc.insecure_channel(f"127.0.0.1:{self.port}", options=options) as ch:
                stub = pb_grpc.GuardrailServiceStub(ch)
                for _ in range(share):
                    stub.Check(
                        pb.CheckRequest(payload=pb.Payload(text="hi")), timeout=10
                    )

        shares = [
            count // CONNECTIONS + (i < count % CONNECTIONS) for i in range(CONNECTIONS)
        ]
        with ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(run, shares))


def _wait(predicate, timeout: float = 240.0) -> None:
    # Workers compile every pack at start: tens of seconds on a busy 2-core box.
    wait_for(predicate, timeout)


def total(series, name: str, match: dict[str, str]) -> float:
    wanted = set(match.items())
    return sum(
        v for (n, labels), v in series.items() if n == name and wanted <= set(labels)
    )


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Iterator[Instance]:
    running = Instance(tmp_path_factory.mktemp("multiworker"))
    try:
        _wait(lambda: len(running.worker_pids()) == WORKERS and running.serving())
        yield running
    finally:
        running.service.terminate()


def test_thousand_calls_over_several_workers_are_exactly_a_thousand(instance):
    """With several worker processes, 1,000 calls show exactly 1,000 on
    grpc_server_handled_total in a single scrape."""
    instance.call(CALLS)

    series = instance.scrape()
    assert total(series, "grpc_server_handled_total", CHECK_OK) == CALLS
    assert total(series, "grpc_server_started_total", {"grpc_method": "Check"}) == CALLS
    assert total(
        series, "grpc_server_handling_seconds_count", {"grpc_method": "Check"}
    ) == (CALLS)
    assert not any("pid" in dict(labels) for _, labels in series)


def test_a_killed_worker_loses_nothing_and_mints_no_series(instance):
    """SIGKILL keeps what the worker counted; its restart continues the slot's series."""
    start = total(instance.scrape(), "grpc_server_handled_total", CHECK_OK)
    instance.call(300)
    before = instance.scrape()
    victim = instance.worker_pids()[0]

    os.kill(victim, signal.SIGKILL)
    _wait(lambda: victim not in instance.worker_pids())
    _wait(lambda: len(instance.worker_pids()) == WORKERS and instance.serving())
    instance.call(200)

    after = instance.scrape()
    assert total(before, "grpc_server_handled_total", CHECK_OK) == start + 300
    assert total(after, "grpc_server_handled_total", CHECK_OK) == start + 500
    assert set(after) == set(before)
