"""The ghz JSON writer: field names, nanosecond units and nearest-rank percentiles."""

from __future__ import annotations

import grpc

from loadtest.ghz_report import CallLog, build_report, go_code_name

MS = 1_000_000


def _log() -> CallLog:
    log = CallLog()
    for i in range(1, 11):
        log.add(i * MS, grpc.StatusCode.OK)
    log.add(50 * MS, grpc.StatusCode.NOT_FOUND, "guardrail 'x' not found")
    log.add(70 * MS, grpc.StatusCode.NOT_FOUND, "guardrail 'x' not found")
    return log


def test_report_has_ghz_fields_in_nanoseconds():
    """Counts, average over all calls, fastest/slowest over successes, all in ns."""
    report = build_report(_log(), 2_000_000_000, name="t")

    assert report["count"] == 12
    assert report["total"] == 2_000_000_000
    assert report["average"] == (55 + 50 + 70) * MS // 12
    assert report["fastest"] == 1 * MS
    assert report["slowest"] == 10 * MS
    assert report["rps"] == 6.0


def test_latency_distribution_uses_nearest_rank_over_successes():
    """Percentiles 10..99 pick ghz's ranks from the successful latencies only."""
    rows = build_report(_log(), 1_000_000_000)["latencyDistribution"]

    assert [r["percentage"] for r in rows] == [10, 25, 50, 75, 90, 95, 99]
    assert [r["latency"] // MS for r in rows] == [1, 3, 5, 8, 9, 10, 10]


def test_status_and_error_distributions_use_go_spelling():
    """Status codes are keyed like Go's codes.Code and errors by their text."""
    report = build_report(_log(), 1_000_000_000)

    assert report["statusCodeDistribution"] == {"OK": 10, "NotFound": 2}
    assert report["errorDistribution"] == {
        "rpc error: code = NotFound desc = guardrail 'x' not found": 2
    }
    assert go_code_name(grpc.StatusCode.CANCELLED) == "Canceled"
    assert go_code_name(grpc.StatusCode.RESOURCE_EXHAUSTED) == "ResourceExhausted"


def test_empty_run_reports_zeros():
    """A run with no calls still has every field, with zeros."""
    report = build_report(CallLog(), 1_000_000)

    assert report["count"] == 0 and report["rps"] == 0
    assert (
        report["latencyDistribution"] == [] and report["statusCodeDistribution"] == {}
    )
