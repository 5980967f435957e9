"""Summarise call results in ghz's JSON report shape (durations in nanoseconds).

The fields and their meaning follow ghz's ``--format json`` output: ``count``,
``total`` (wall time of the run), ``average`` (over every call), ``fastest``,
``slowest`` and ``latencyDistribution`` (over successful calls only, nearest
rank at 10/25/50/75/90/95/99 %), ``rps`` (count / total),
``statusCodeDistribution`` keyed by Go's code names (``OK``, ``NotFound``)
and ``errorDistribution`` keyed by the error text.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

__all__ = ["PERCENTAGES", "CallLog", "build_report", "error_text", "go_code_name"]

PERCENTAGES = (10, 25, 50, 75, 90, 95, 99)
_GO_NAMES = {"OK": "OK", "CANCELLED": "Canceled"}


def go_code_name(code: grpc.StatusCode) -> str:
    """``NOT_FOUND`` → ``NotFound``, the spelling ghz (Go's codes.Code) uses."""
    name = code.name
    return _GO_NAMES.get(name) or "".join(p.capitalize() for p in name.split("_"))


def error_text(code: grpc.StatusCode, details: str | None) -> str:
    return f"rpc error: code = {go_code_name(code)} desc = {details or ''}"


@dataclass
class CallLog:
    """What a load run collects: one latency and one status per finished call."""

    latencies_ns: list[int] = field(default_factory=list)
    ok: list[bool] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def add(
        self, latency_ns: int, code: grpc.StatusCode, details: str | None = None
    ) -> None:
        self.latencies_ns.append(latency_ns)
        self.ok.append(code is grpc.StatusCode.OK)
        self.statuses[go_code_name(code)] += 1
        if code is not grpc.StatusCode.OK:
            self.errors[error_text(code, details)] += 1


def _nearest_rank(ordered: Sequence[int], percentage: int) -> int:
    rank = percentage / 100 * len(ordered)
    index = int(rank) - 1 if rank == int(rank) else int(rank)
    return ordered[max(index, 0)]


def build_report(
    log: CallLog,
    total_ns: int,
    *,
    name: str = "",
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ghz-shaped report of one run; ``total_ns`` is its wall time."""
    count = len(log.latencies_ns)
    report: dict[str, Any] = {
        "name": name,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "options": dict(options or {}),
        "count": count,
        "total": total_ns,
        "average": 0,
        "fastest": 0,
        "slowest": 0,
        "rps": count / (total_ns / 1e9) if total_ns else 0.0,
        "errorDistribution": dict(log.errors),
        "statusCodeDistribution": dict(log.statuses),
        "latencyDistribution": [],
    }
    if count:
        report["average"] = sum(log.latencies_ns) // count
    ok = sorted(lat for lat, good in zip(log.latencies_ns, log.ok) if good)
    if ok:
        report["fastest"], report["slowest"] = ok[0], ok[-1]
        report["latencyDistribution"] = [
            {"percentage": p, "latency": _nearest_rank(ok, p)} for p in PERCENTAGES
        ]
    return report
