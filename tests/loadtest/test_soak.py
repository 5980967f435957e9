"""The soak report code: percentiles, windows, RSS readings, the Markdown table."""

from __future__ import annotations

import collections
import os

from guardrail.v1 import guardrail_pb2 as pb

from loadtest.soak import (
    KINDS,
    SoakRecorder,
    Window,
    build_report,
    nearest_rank,
    process_rss,
    render_markdown,
    request_mix,
)


def test_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert nearest_rank(values, 50) == 50.0
    assert nearest_rank(values, 99) == 99.0
    assert nearest_rank(values, 100) == 100.0
    assert nearest_rank([7.0], 99) == 7.0
    assert nearest_rank([], 50) is None


def test_window_summary_counts_errors_by_code():
    window = Window()
    for ms in (1.0, 2.0, 3.0, 4.0):
        window.add(ms, "OK")
    window.add(50.0, "Unavailable")

    summary = window.summary(seconds=2.0)

    assert summary["calls"] == 5
    assert summary["rps"] == 2.5
    assert summary["p50_ms"] == 3.0
    assert summary["p99_ms"] == 50.0
    assert summary["codes"] == {"OK": 4, "Unavailable": 1}
    assert summary["errors"] == 1


def test_recorder_closes_one_window_per_sample():
    recorder = SoakRecorder(started=100.0)
    recorder.record(1.0, "OK")
    recorder.record(3.0, "OK")
    first = recorder.sample(110.0, [{"pid": 1, "role": "supervisor", "rss_mb": 50.0}])
    recorder.record(5.0, "NotFound")
    second = recorder.sample(
        120.0,
        [
            {"pid": 1, "role": "supervisor", "rss_mb": 50.0},
            {"pid": 2, "role": "worker", "rss_mb": 120.5},
        ],
    )

    assert (first["t_s"], first["calls"], first["rps"]) == (10.0, 2, 0.2)
    assert (second["calls"], second["calls_total"], second["codes"]) == (
        1,
        3,
        {"NotFound": 1},
    )
    assert second["rss_total_mb"] == 170.5
    totals = recorder.totals_summary(20.0)
    assert totals["calls"] == 3 and totals["errors"] == 1


def test_markdown_has_machine_facts_totals_and_one_row_per_sample():
    recorder = SoakRecorder(started=0.0)
    recorder.record(2.0, "OK")
    recorder.sample(10.0, [{"pid": 9, "role": "worker", "rss_mb": 100.0}])
    recorder.record(4.0, "Internal")
    recorder.sample(20.0, [{"pid": 9, "role": "worker", "rss_mb": 101.0}])
    machine = {
        "nproc": 2,
        "cpu_model": "Test CPU",
        "python": "3.11",
        "load_before": "0.1 / 0.2 / 0.3",
        "load_after": "1.0 / 1.0 / 1.0",
    }
    report = build_report(
        recorder,
        command="python loadtest/soak.py --duration 20",
        machine=machine,
        seconds=20.0,
        spend_rows={"0": 2},
        settings={},
    )

    text = render_markdown(report)

    assert "`python loadtest/soak.py --duration 20`" in text
    assert "2 cores (Test CPU)" in text and "after 1.0 / 1.0 / 1.0" in text
    assert "SpendLogs rows 2 for 2 calls" in text
    table = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and line[2].isdigit()
    ]
    assert len(table) == 2
    assert "{'Internal': 1}" in table[1]
    assert "worker 9 101.0" in table[1]
    assert report["rss_max_mb"] == 101.0


def test_request_mix_follows_the_shares():
    mix = request_mix(size=200)
    counts = collections.Counter(kind for kind, _ in mix)
    total = sum(share for _, share in KINDS)
    assert counts == {kind: 200 * share // total for kind, share in KINDS}
    for _, body in mix:
        request = pb.CheckRequest.FromString(body)
        assert request.payload.text or request.payload.messages


def test_process_rss_reads_this_process():
    [me, *_] = process_rss(os.getpid())
    assert me["pid"] == os.getpid()
    assert me["role"] == "supervisor"  # the root of the tree
    assert me["rss_mb"] > 0


def test_markdown_every_nth_sample_keeps_the_last():
    recorder = SoakRecorder(started=0.0)
    for second in range(1, 8):
        recorder.record(1.0, "OK")
        recorder.sample(second * 10.0, [])
    machine = {
        "nproc": 1,
        "cpu_model": "x",
        "python": "3",
        "load_before": "0",
        "load_after": "0",
    }
    report = build_report(
        recorder, command="c", machine=machine, seconds=70.0, spend_rows={}, settings={}
    )

    text = render_markdown(report, every=3)

    rows = [
        line.split(" | ")[0]
        for line in text.splitlines()
        if line.startswith("| ") and line[2].isdigit()
    ]
    assert rows == ["| 30.0", "| 60.0", "| 70.0"]
