"""An engine error inside one guardrail's scan, in-process.

An engine error cannot be provoked from outside (every pattern is compiled
and sample-tested before it is in force), so this one test puts a scanner in
front of the real one that raises whenever a chosen guardrail is scanned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

import pytest
from guardrail.v1 import guardrail_pb2 as pb

from service.checking import Checker
from service.engine import Scanner, ScanResult, builtin_specs
from service.errors import UnavailableError
from service.policy import parse_policy
from service.registry import Registry
from service.types import Segment

AWS_KEY = "AKIA" + "QWERTYUIOPASDFGH"  # the documented-example shape, split for scanners


class ExplodingScanner(Scanner):
    __slots__ = ("bad",)

    def scan(self, segments: Sequence[Segment], names: Collection[str]) -> ScanResult:
        if self.bad in names:
            raise RuntimeError("simulated RE2 failure")
        return super().scan(segments, names)


def _checker(fail_modes: dict[str, str]) -> Checker:
    registry = Registry(builtin_specs())
    snapshot = registry.snapshot
    scanner = ExplodingScanner(list(snapshot.guardrails.values()))
    scanner.bad = "pii"
    registry._snapshot = dataclasses.replace(snapshot, scanner=scanner)  # noqa: SLF001
    policy = parse_policy({"default": {"fail_modes": fail_modes}})
    return Checker(registry, policy=policy)


def _request() -> pb.CheckRequest:
    return pb.CheckRequest(
        payload=pb.Payload(text=f"key {AWS_KEY} for ann@example.org"),
        guardrails=["pii", "secrets"],
    )


def test_only_the_failing_fail_open_guardrail_is_marked() -> None:
    response = _checker({"pii": "open", "secrets": "open"}).check(_request())
    results = {r.name: r for r in response.guardrail_results}
    assert results["pii"].status == pb.GUARDRAIL_STATUS_FAILED_OPEN
    assert results["pii"].reason == "engine error: RuntimeError"
    assert results["secrets"].status == pb.GUARDRAIL_STATUS_INTERVENED
    assert response.decision == pb.DECISION_BLOCK


def test_a_fail_closed_engine_error_is_unavailable() -> None:
    with pytest.raises(UnavailableError, match="pii"):
        _checker({"secrets": "open"}).check(_request())
