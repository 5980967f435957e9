"""Scoring guardrails against labelled JSONL files (the ``../shared/datasets`` format).

    report = run_eval(paths, checker)        # checker: .check(CheckRequest)
    print(format_report(report))             # plain tables
    Path("docs/evaluation.md").write_text(format_markdown(report, command=...))

What is counted, so the figures can be trusted:

* **labels**: recall per label; a record counts as caught only when a
  finding comes from a guardrail that detects that label
  (``DETECTOR_GUARDRAILS``), and only from guardrails that did not pass
  (a finding under a guardrail's score threshold changed nothing).
* **benign**: false-positive rate per detector named in the record's
  ``meta.benign_for`` only (a benign prompt was not checked for the others).
* **pii_entities**: recall per entity type over the record's ``spans``; a span
  is found when a PII finding on the same payload path overlaps it.
  ``CREDIT_CARD_LUHN_VALID`` is the subset of card spans whose digits pass
  the Luhn check (synthetic data holds numbers that cannot be cards).
* Failed calls are ``errors``: never counted as caught or as clean.

The maths never imports the service: it takes any object with
``check(request) -> response``, in-process or a remote stub.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from guardrail.v1 import guardrail_pb2 as pb

__all__ = [
    "DETECTOR_GUARDRAILS",
    "LUHN_VALID_CARDS",
    "PII_ENTITY_TYPES",
    "CheckerLike",
    "Record",
    "build_request",
    "format_report",
    "load_records",
    "run_eval",
    "score_records",
]

# Which guardrails' findings count as "matching" a label or a benign_for entry.
DETECTOR_GUARDRAILS: dict[str, frozenset[str]] = {
    "secret": frozenset({"secrets"}),
    "pii": frozenset({"pii"}),
    "injection": frozenset({"prompt_injection", "jailbreak"}),
    "jailbreak": frozenset({"jailbreak", "prompt_injection"}),
    "unicode_smuggling": frozenset({"unicode_smuggling"}),
    "tool_poisoning": frozenset({"mcp_tool_poisoning", "prompt_injection"}),
}
# The span types a regex scanner can be expected to find; names, addresses...
# are left out on purpose (see /work/shared/datasets/README.md).
PII_ENTITY_TYPES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
)
LUHN_VALID_CARDS = "CREDIT_CARD_LUHN_VALID"

Record = dict[str, Any]


class CheckerLike(Protocol):
    """Anything that answers a CheckRequest, in-process or over the wire."""

    def check(self, request: pb.CheckRequest) -> pb.CheckResponse: ...


# -- eval: records and requests -----------------------------------------------


def load_records(path: Path) -> list[Record]:
    """Every JSON object of a JSONL file; blank lines are skipped."""
    records: list[Record] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    return records


def build_request(record: Record) -> pb.CheckRequest:
    """The request for a record, shaped by the surface it was taken from."""
    from guardrail.v1 import guardrail_pb2 as pb

    meta = record.get("meta") or {}
    surface = meta.get("surface")
    text = record["text"]
    if surface == "tool_description":
        tool = pb.ToolDefinition(name=meta.get("tool") or "tool", description=text)
        return pb.CheckRequest(
            payload=pb.Payload(tools=[tool]), direction=pb.DIRECTION_TOOL_DESCRIPTION
        )
    if surface == "external_content":
        return pb.CheckRequest(
            payload=pb.Payload(text=text), direction=pb.DIRECTION_TOOL_RESULT
        )
    return pb.CheckRequest(payload=pb.Payload(text=text), direction=pb.DIRECTION_INPUT)


def _text_path(request: pb.CheckRequest) -> str:
    # Where the record's text sits in the payload build_request made.
    return "tools[0].description" if request.payload.tools else "text"


# -- eval: scoring ------------------------------------------------------------


def _counted_findings(response: pb.CheckResponse) -> list[pb.Finding]:
    """Findings of guardrails that did not pass (a PASSED guardrail's findings
    stayed under its score threshold, so they changed nothing)."""
    from guardrail.v1 import guardrail_pb2 as pb

    passed = {
        r.name
        for r in response.guardrail_results
        if r.status == pb.GUARDRAIL_STATUS_PASSED
    }
    return [f for f in response.findings if f.guardrail not in passed]


def _overlaps(finding: pb.Finding, span: dict[str, Any], path: str) -> bool:
    location = finding.location
    if location.path != path or location.json_pointer:
        return False
    return location.start < span["end"] and span["start"] < location.end


@dataclass
class _Rate:
    n: int = 0
    flagged: int = 0
    errors: int = 0
    flagged_by: Counter[str] = field(default_factory=Counter)

    def to_json(self, rate: str, hits: str = "flagged") -> dict[str, Any]:
        return {
            "n": self.n,
            hits: self.flagged,
            rate: self.flagged / self.n if self.n else None,
            "errors": self.errors,
        }


@dataclass
class _Tally:
    """Counts for one scope (all files, or one file)."""

    labels: dict[str, _Rate] = field(default_factory=dict)
    benign: dict[str, _Rate] = field(default_factory=dict)
    pii: dict[str, _Rate] = field(default_factory=dict)
    records: int = 0
    errors: int = 0

    def add(
        self,
        record: Record,
        request: pb.CheckRequest,
        response: pb.CheckResponse | None,
    ) -> None:
        self.records += 1
        self.errors += response is None
        counted = _counted_findings(response) if response is not None else []
        flagging = {f.guardrail for f in counted}
        label = record.get("label", "")
        if label == "benign":
            self._add_benign(record, response, flagging)
        else:
            self._add_label(label, response, flagging)
        self._add_spans(record, _text_path(request), response, counted)

    def _add_label(
        self, label: str, response: pb.CheckResponse | None, flagging: set[str]
    ) -> None:
        row = self.labels.setdefault(label, _Rate())
        if response is None:
            row.errors += 1
            return

        row.n += 1
        row.flagged += bool(flagging & DETECTOR_GUARDRAILS.get(label, {label}))
        row.flagged_by.update({f.guardrail for f in response.findings})

    def _add_benign(
        self, record: Record, response: pb.CheckResponse | None, flagging: set[str]
    ) -> None:
        for detector in (record.get("meta") or {}).get("benign_for", []):
            row = self.benign.setdefault(detector, _Rate())
            if response is None:
                row.errors += 1
                continue
            row.n += 1
            matching = DETECTOR_GUARDRAILS.get(detector, {detector})
            row.flagged += bool(flagging & matching)

    def _add_spans(
        self,
        record: Record,
        path: str,
        response: pb.CheckResponse | None,
        counted: list[pb.Finding],
    ) -> None:
        pii = [f for f in counted if f.guardrail in DETECTOR_GUARDRAILS["pii"]]
        for span in record.get("spans") or []:
            if span.get("type") not in PII_ENTITY_TYPES:
                continue
            found = response is not None and any(_overlaps(f, span, path) for f in pii)
            for entity in _entity_types(record, span):
                row = self.pii.setdefault(entity, _Rate())
                if response is None:
                    row.errors += 1
                    continue
                row.n += 1
                row.flagged += found

    def to_json(self) -> dict[str, Any]:
        labels = {}
        for name, row in sorted(self.labels.items()):
            labels[name] = {**row.to_json("recall"), "flagged_by": dict(row.flagged_by)}
        benign = {k: v.to_json("fpr") for k, v in sorted(self.benign.items())}
        pii = {k: v.to_json("recall", "found") for k, v in sorted(self.pii.items())}
        return {"labels": labels, "benign": benign, "pii_entities": pii}


def _entity_types(record: Record, span: dict[str, Any]) -> list[str]:
    """The span's type, plus the Luhn-valid subset for card numbers."""
    entity = str(span["type"])
    if entity != "CREDIT_CARD":
        return [entity]
    value = record["text"][span["start"] : span["end"]]
    digits = [int(char) for char in value if char.isdigit()]
    return [entity, LUHN_VALID_CARDS] if _luhn_sum(digits) % 10 == 0 else [entity]


def _luhn_sum(digits: list[int]) -> int:
    # Kept here rather than imported so the maths never loads the engine.
    total = 0
    for position, value in enumerate(reversed(digits)):
        doubled = value * 2 if position % 2 else value
        total += doubled - 9 if doubled > 9 else doubled
    return total if digits else 1


def _attempt(
    checker: CheckerLike, record: Record
) -> tuple[pb.CheckRequest | None, pb.CheckResponse | None, str | None]:
    try:
        request = build_request(record)
    except (KeyError, TypeError) as exc:
        return None, None, f"bad record: {exc!r}"
    try:
        return request, checker.check(request), None
    except Exception as exc:  # noqa: BLE001 - every failure is counted, not raised
        return request, None, f"{type(exc).__name__}: {exc}"


def score_records(
    records: Iterable[tuple[str, Record]],
    checker: CheckerLike,
    *,
    concurrency: int = 1,
) -> dict[str, Any]:
    """Score ``(file name, record)`` pairs; failed calls count as ``errors``."""
    from concurrent.futures import ThreadPoolExecutor

    from guardrail.v1 import guardrail_pb2 as pb

    pairs = list(records)
    total, per_file = _Tally(), dict[str, _Tally]()
    examples: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        answers = pool.map(lambda pair: _attempt(checker, pair[1]), pairs)
        for (name, record), (request, response, error) in zip(pairs, answers):
            if error is not None and len(examples) < 5:
                examples.append(f"{name}: {error}")
            request = request if request is not None else pb.CheckRequest()
            for tally in (total, per_file.setdefault(name, _Tally())):
                tally.add(record, request, response)

    return {
        **total.to_json(),
        "files": {name: tally.to_json() for name, tally in per_file.items()},
        "records": total.records,
        "errors": total.errors,
        "error_examples": examples,
    }


def run_eval(
    paths: Sequence[Path],
    checker: CheckerLike,
    *,
    target: str = "in-process",
    concurrency: int = 1,
) -> dict[str, Any]:
    """Load the files, score them and time the whole run."""
    records = [(path.name, record) for path in paths for record in load_records(path)]

    started = time.perf_counter()
    report = score_records(records, checker, concurrency=concurrency)
    report["seconds"] = round(time.perf_counter() - started, 3)
    report["target"] = target
    return report


# -- plain-text tables -----------------------------------------------------


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:6.1%}"


def _table(title: str, rows: dict[str, Any], rate: str, hits: str) -> list[str]:
    if not rows:
        return []
    lines = [title, f"  {'':24} {'n':>6} {hits:>8} {rate:>7} {'errors':>6}"]
    for name, row in rows.items():
        line = f"  {name:24} {row['n']:6d} {row[hits]:8d} {_percent(row[rate]):>7}"
        line += f" {row['errors']:6d}"
        if row.get("flagged_by"):
            by = sorted(row["flagged_by"].items(), key=lambda item: -item[1])
            line += "   by " + ", ".join(f"{g}={n}" for g, n in by)
        lines.append(line)
    return lines


def _scope_tables(scope: dict[str, Any]) -> list[str]:
    return [
        *_table("labels (recall)", scope["labels"], "recall", "flagged"),
        *_table("benign (false positives)", scope["benign"], "fpr", "flagged"),
        *_table("pii entities (recall)", scope["pii_entities"], "recall", "found"),
    ]


def format_report(report: dict[str, Any]) -> str:
    """The readable form of a ``run_eval`` report."""
    lines = _scope_tables(report)
    for name, scope in report["files"].items():
        lines += ["", f"== {name}", *_scope_tables(scope)]
    lines += [
        "",
        f"records {report['records']}, errors {report['errors']}, "
        f"{report['seconds']} s, target {report['target']}",
        *(f"  error: {example}" for example in report.get("error_examples", [])),
    ]
    return "\n".join(lines)


