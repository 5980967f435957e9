"""The ``guardrail`` command: serve, check, eval and health.

    guardrail serve
    guardrail check --target HOST:PORT (--text TEXT | --file F.jsonl)
                    [--guardrail NAME]... [--direction DIRECTION]
    guardrail eval FILES... [--target HOST:PORT] [--json] [--concurrency N]
    guardrail health --target HOST:PORT

Start-up stays fast: grpc, protobuf and the service are imported inside the
subcommand that needs them. The evaluation maths live in ``score_records``,
which takes any object with ``.check(request) -> response``.
"""

from __future__ import annotations

import argparse
import json
import sys
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
    "PII_ENTITY_TYPES",
    "CheckerLike",
    "build_parser",
    "build_request",
    "format_report",
    "load_records",
    "main",
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
DEFAULT_REMOTE_CONCURRENCY = 16
EXIT_RPC_ERROR = 2

Record = dict[str, Any]


class CheckerLike(Protocol):
    """Anything that answers a CheckRequest, in-process or over the wire."""

    def check(self, request: pb.CheckRequest) -> pb.CheckResponse: ...


# -- parser -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardrail", description="guardrail-service command line"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gRPC server")
    _add_check(commands)
    _add_eval(commands)
    health = commands.add_parser("health", help="grpc.health.v1 check")
    health.add_argument("--target", required=True, metavar="HOST:PORT")
    health.add_argument("--service", default="", help="service name; '' = server")
    health.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS")
    return parser


def _add_check(commands: Any) -> None:
    check = commands.add_parser("check", help="send texts through Check")
    check.add_argument("--target", required=True, metavar="HOST:PORT")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--text")
    source.add_argument("--file", type=Path, help="JSONL; each line's 'text'")
    check.add_argument(
        "--guardrail", action="append", default=[], dest="guardrails", metavar="NAME"
    )
    check.add_argument(
        "--direction",
        default="input",
        choices=["input", "output", "tool_description", "tool_result"],
    )
    check.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS")


def _add_eval(commands: Any) -> None:
    evaluate = commands.add_parser("eval", help="score labelled JSONL files")
    evaluate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    evaluate.add_argument("--target", metavar="HOST:PORT", help="default: in-process")
    evaluate.add_argument("--json", action="store_true", help="one JSON object")
    evaluate.add_argument(
        "--concurrency",
        type=int,
        default=None,
        metavar="N",
        help=f"calls in flight (default {DEFAULT_REMOTE_CONCURRENCY} remote, 1 local)",
    )
    evaluate.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "serve": _cmd_serve,
        "check": _cmd_check,
        "eval": _cmd_eval,
        "health": _cmd_health,
    }
    return handlers[args.command](args)


# -- serve, health ------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace) -> int:
    from service.app import run

    run()
    return 0


def _cmd_health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(args.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=args.service)
        try:
            response = stub.Check(request, timeout=args.timeout)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()  # type: ignore[attr-defined]
            print(f"{code.name}: {details}", file=sys.stderr)
            return 1

    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


# -- check --------------------------------------------------------------------


def _texts(args: argparse.Namespace) -> Iterable[str]:
    if args.text is not None:
        yield args.text
        return

    for number, record in enumerate(load_records(args.file), start=1):
        if not isinstance(record.get("text"), str):
            raise ValueError(f"{args.file}:{number}: no string 'text' field")
        yield record["text"]


def _finding_json(finding: Any) -> dict[str, Any]:
    keys = ("guardrail", "rule_id", "category", "severity", "start", "end")
    keys += ("path", "json_pointer", "redacted_preview")
    return {key: _plain(getattr(finding, key)) for key in keys}


def _plain(value: Any) -> Any:
    # StrEnum members print as their names; everything else is JSON already.
    return str(value) if isinstance(value, str) else value


def check_result_json(result: Any) -> dict[str, Any]:
    """The one-line JSON form of a ``guardrail_client.CheckResult``."""
    results = [
        {key: _plain(getattr(r, key)) for key in r.__dataclass_fields__}
        for r in result.guardrail_results
    ]
    return {
        "decision": str(result.decision),
        "request_id": result.request_id,
        "findings": [_finding_json(f) for f in result.findings],
        "masked_text": result.masked_text,
        "guardrail_results": results,
        "registry_generation": result.registry_generation,
    }


def _cmd_check(args: argparse.Namespace) -> int:
    from guardrail_client import GuardrailClient, GuardrailRpcError

    with GuardrailClient(args.target, timeout=args.timeout) as client:
        try:
            for text in _texts(args):
                result = client.check(
                    text, direction=args.direction, guardrails=args.guardrails
                )
                print(json.dumps(check_result_json(result), ensure_ascii=False))
        except GuardrailRpcError as exc:
            print(json.dumps({"error": exc.to_dict()}, ensure_ascii=False))
            return EXIT_RPC_ERROR
        except (OSError, ValueError) as exc:
            print(f"guardrail check: {exc}", file=sys.stderr)
            return EXIT_RPC_ERROR
    return 0


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
            row = self.pii.setdefault(span["type"], _Rate())
            if response is None:
                row.errors += 1
                continue
            row.n += 1
            row.flagged += any(_overlaps(f, span, path) for f in pii)

    def to_json(self) -> dict[str, Any]:
        labels = {}
        for name, row in sorted(self.labels.items()):
            labels[name] = {**row.to_json("recall"), "flagged_by": dict(row.flagged_by)}
        benign = {k: v.to_json("fpr") for k, v in sorted(self.benign.items())}
        pii = {k: v.to_json("recall", "found") for k, v in sorted(self.pii.items())}
        return {"labels": labels, "benign": benign, "pii_entities": pii}


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


# -- eval: command and tables -------------------------------------------------


class _RemoteChecker:
    """Check over the wire; errors become ``GuardrailRpcError`` like the client's."""

    def __init__(self, target: str, timeout: float) -> None:
        import grpc
        from guardrail.v1 import guardrail_pb2_grpc

        self._channel = grpc.insecure_channel(target)
        self._stub = guardrail_pb2_grpc.GuardrailServiceStub(self._channel)
        self._timeout = timeout

    def check(self, request: pb.CheckRequest) -> pb.CheckResponse:
        import grpc
        from guardrail_client import from_rpc_error

        try:
            response: pb.CheckResponse = self._stub.Check(
                request, timeout=self._timeout
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return response

    def close(self) -> None:
        self._channel.close()


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


def _eval_checker(args: argparse.Namespace) -> tuple[CheckerLike, int]:
    if args.target is None:
        from service.checking import build_default_checker

        return build_default_checker(), args.concurrency or 1
    checker = _RemoteChecker(args.target, args.timeout)
    return checker, args.concurrency or DEFAULT_REMOTE_CONCURRENCY


def _cmd_eval(args: argparse.Namespace) -> int:
    from service.errors import GuardrailError

    try:
        checker, concurrency = _eval_checker(args)
    except GuardrailError as exc:
        # The built-in packs failed to load: nothing can be measured.
        print(f"guardrail eval: cannot build the checker: {exc}", file=sys.stderr)
        return EXIT_RPC_ERROR

    target = args.target or "in-process"
    try:
        report = run_eval(args.files, checker, target=target, concurrency=concurrency)
    except (OSError, ValueError) as exc:
        print(f"guardrail eval: {exc}", file=sys.stderr)
        return EXIT_RPC_ERROR
    finally:
        if isinstance(checker, _RemoteChecker):
            checker.close()

    as_json = args.json
    print(json.dumps(report, ensure_ascii=False) if as_json else format_report(report))
    # Failed calls are in the report; the exit code says so for scripts too.
    return 0 if report["errors"] == 0 else 1
