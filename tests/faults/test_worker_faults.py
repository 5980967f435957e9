"""Faults under load on the real supervisor: SIGKILL a worker, SIGTERM the instance.

Each scenario runs ``python -m service serve`` with two workers and SQLite
SpendLogs, keeps several connections busy with Check calls, injects the
fault, and then compares what the callers saw with the rows on disk.

SIGKILL: a worker answers before the row is in the database, but not before
it is in the worker slot's write-ahead file; the replacement worker stores
what its killed predecessor left there before it serves, so no answered
call loses its row (``test_sigkill_loses_no_answered_row``).

Known gap this file pins down:
* SIGTERM: a few calls that arrive as the gRPC server shuts down are
  cancelled inside grpc core (CANCELLED, no request id, no row) rather than
  refused with UNAVAILABLE; clients that retry only UNAVAILABLE will not
  retry them.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2

from tests.faults.load import Call, Load
from tests.procs import health_status, running_service, wait_for

WORKERS = 2
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
GRACE_S = 10.0  # service.app.GRACE_SECONDS
DRAIN_DELAY_S = 2.0
# Flush interval (0.2 s) plus a write and a busy machine's scheduling delays.
QUEUE_WINDOW_S = 1.5


def _rows_by_request_id(rows) -> collections.Counter[str]:
    return collections.Counter(row["request_id"] for row in rows)


def _describe(calls: list[Call]) -> str:
    codes = collections.Counter(c.code.name for c in calls)
    return f"{len(calls)} calls: {dict(codes)}"


@dataclass(frozen=True)
class KillRun:
    calls: list[Call]
    killed_at: float
    exit_code: int
    rows: collections.Counter[str]
    output: str
    callers: int


@pytest.fixture(scope="module")
def kill_run(tmp_path_factory) -> KillRun:
    """One SIGKILL of a worker under load, shared by the tests below."""
    workdir = tmp_path_factory.mktemp("sigkill")
    with running_service(workdir, workers=WORKERS) as service:
        load = Load(
            service, callers=6, text_chars=4000, reconnect_every=25, wait_for_ready=True
        ).start()
        try:
            load.wait_ok(40)
            # The victim is a worker that holds callers' connections right now.
            victim = _busiest_worker(service)
            os.kill(victim, signal.SIGKILL)
            killed_at, killed_wall = time.monotonic(), time.time()
            wait_for(
                lambda: (
                    victim not in service.worker_pids()
                    and len(service.worker_pids()) == WORKERS
                ),
                timeout=120,
                what="replacement worker",
            )
            # Traffic goes on until the restarted slot answers calls again
            # (it compiles every pack first: seconds on a busy machine).
            wait_for(
                lambda: (
                    _slots_answering_since(service, killed_wall) == set(range(WORKERS))
                ),
                timeout=180,
                what="every worker slot answering after the kill",
            )
        finally:
            calls = load.stop()
        exit_code = service.terminate()
        rows = _rows_by_request_id(service.rows())
    return KillRun(
        calls, killed_at, exit_code, rows, service.output_text(), load.callers
    )


def _busiest_worker(service) -> int:
    def holders() -> list[tuple[int, int]]:
        return sorted(
            (service.established_connections(pid), pid) for pid in service.worker_pids()
        )

    wait_for(lambda: holders()[-1][0] > 0, timeout=30, what="a worker with connections")
    return holders()[-1][1]


def _slots_answering_since(service, since: float) -> set[int]:
    return {
        row["worker"]
        for row in service.rows()
        if row["grpc_code"] == "OK" and _epoch(row["startTime"]) > since
    }


def _epoch(value) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


def test_sigkill_worker_is_replaced_and_only_its_calls_in_flight_fail(kill_run):
    """The supervisor replaces the killed worker and drains cleanly later;
    only calls in flight on the victim fail, with UNAVAILABLE."""
    run = kill_run
    assert run.exit_code == 0, run.output[-3000:]
    failed = [c for c in run.calls if not c.ok]
    assert {c.code for c in failed} <= {grpc.StatusCode.UNAVAILABLE}, _describe(failed)
    # In flight on the victim: sent before its connection was seen to drop.
    # One call per caller at most: a caller's next call reconnects elsewhere.
    assert all(c.started <= run.killed_at + 1.0 for c in failed), _describe(failed)
    assert len(failed) <= run.callers, _describe(failed)


def test_sigkill_loses_only_rows_still_queued_in_the_victim(kill_run):
    """Rows reach the database within a batch interval (0.2 s) of the answer:
    a call answered well before the kill, or after it, always has its row."""
    run = kill_run
    answered = [c for c in run.calls if c.ok]
    assert all(c.request_id for c in answered)
    settled = [
        c
        for c in answered
        if c.ended < run.killed_at - QUEUE_WINDOW_S or c.started > run.killed_at
    ]
    missing = [c for c in settled if run.rows[c.request_id] != 1]
    assert not missing, f"{len(missing)} of {len(settled)} settled calls have no row"
    lost = [c for c in answered if run.rows[c.request_id] != 1]
    print(
        f"\nSIGKILL: {len(answered)} answered, {len(lost)} rows lost "
        f"(answered within {QUEUE_WINDOW_S} s before the kill), "
        f"failed {_describe([c for c in run.calls if not c.ok])}"
    )


def test_sigkill_loses_no_answered_row(kill_run):
    """The issue's requirement: no answered call loses its row, even on SIGKILL
    (its row was in the slot's write-ahead file; the replacement stored it)."""
    answered = [c for c in kill_run.calls if c.ok]
    missing = [c for c in answered if kill_run.rows[c.request_id] != 1]
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no row"
    lines = kill_run.output.splitlines()
    replays = [line for line in lines if "write-ahead rows replayed" in line]
    print(f"\nSIGKILL: {len(answered)} answered, all with a row; replays: {replays}")


def _watch_health(service, statuses: list[int | None], stop: threading.Event) -> None:
    while not stop.is_set():
        statuses.append(health_status(service.target, timeout=0.5))
        time.sleep(0.05)


def test_sigterm_under_load_drains(tmp_path):
    """SIGTERM: health turns NOT_SERVING, calls in flight complete, exit 0 within
    the grace period, and every answered call has its row."""
    env = {"GUARDRAIL_DRAIN_DELAY_S": str(DRAIN_DELAY_S)}
    with running_service(tmp_path, workers=WORKERS, env=env) as service:
        load = Load(service, callers=4, text_chars=20_000).start()
        statuses: list[int | None] = []
        stop_watch = threading.Event()
        watcher = threading.Thread(
            target=_watch_health, args=(service, statuses, stop_watch)
        )
        try:
            load.wait_ok(40)
            watcher.start()
            service.process.send_signal(signal.SIGTERM)
            term_at = time.monotonic()
            exit_code = service.process.wait(timeout=GRACE_S + DRAIN_DELAY_S + 30)
            exited_after = time.monotonic() - term_at
        finally:
            stop_watch.set()
            calls = load.stop()
            if watcher.is_alive():
                watcher.join()
        rows = _rows_by_request_id(service.rows())

    assert exit_code == 0, service.output_text()[-3000:]
    # Generous: the drain itself must stay within the grace period; process
    # teardown on a shared 2-core machine adds seconds.
    assert exited_after < GRACE_S + DRAIN_DELAY_S + 15
    assert NOT_SERVING in statuses, statuses
    sent_before = [c for c in calls if c.started < term_at]
    assert all(c.ok for c in sent_before), _describe(
        [c for c in sent_before if not c.ok]
    )
    in_flight = [c for c in sent_before if c.ended >= term_at]
    assert in_flight, "no call was in flight at SIGTERM: the test proved nothing"
    answered = [c for c in calls if c.ok]
    missing = [c.request_id for c in answered if rows[c.request_id] != 1]
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no row"
    # Calls sent after SIGTERM: answered during the drain delay, refused once
    # the port closed (UNAVAILABLE), or, racing the server's shutdown inside
    # grpc core before any handler ran, CANCELLED. None is INTERNAL/UNKNOWN,
    # and every one that reached our handler (it has a request id) was
    # completed, even if the port closed while it ran, and has its row.
    late = [c for c in calls if c.started >= term_at]
    refused = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    assert {c.code for c in late if not c.ok} <= refused, _describe(late)
    handled = [c for c in late if c.request_id]
    assert all(c.ok and rows[c.request_id] == 1 for c in handled), _describe(handled)
    cancelled = [c for c in late if c.code == grpc.StatusCode.CANCELLED]
    print(
        f"\nSIGTERM: in flight {len(in_flight)}, after SIGTERM {_describe(late)}; "
        f"CANCELLED with a request id (so a row): "
        f"{sum(bool(c.request_id) for c in cancelled)} of {len(cancelled)}"
    )
