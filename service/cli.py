"""The ``guardrail`` command: serve, check, eval and health.

    guardrail serve
    guardrail check --target HOST:PORT (--text TEXT | --file F.jsonl)
                    [--guardrail NAME]... [--direction DIRECTION]
    guardrail eval FILES... [--target HOST:PORT] [--json] [--concurrency N]
                  [--markdown PATH]
    guardrail health --target HOST:PORT
    guardrail guardrails list|get NAME|delete NAME|history NAME [--json] [--target HOST:PORT]
    guardrail validate FILE   (a GUARDRAIL_CONFIG file, offline)

Start-up stays fast: grpc, protobuf and the service are imported inside the
subcommand that needs them. The evaluation maths live in ``service.evaluation``
(re-exported here); ``--markdown PATH`` also writes the report as the
Markdown page ``docs/evaluation.md`` is made of.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.evaluation import (
    DETECTOR_GUARDRAILS,
    PII_ENTITY_TYPES,
    CheckerLike,
    build_request,
    format_report,
    load_records,
    run_eval,
    score_records,
)

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

DEFAULT_REMOTE_CONCURRENCY = 16
EXIT_RPC_ERROR = 2


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
    from service.store.commands import add_commands  # db, logs

    add_commands(commands)
    from service.auth.commands import add_commands as add_key_commands  # keys

    add_key_commands(commands)
    from service.registry_commands import add_commands as add_registry_commands

    add_registry_commands(commands)  # guardrails list|get|delete|history, validate
    return parser


def _add_api_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-key",
        default=os.environ.get("GUARDRAIL_API_KEY", ""),
        help="sent as 'authorization: Bearer KEY' (default: $GUARDRAIL_API_KEY)",
    )


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
    _add_api_key(check)


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
    evaluate.add_argument(
        "--markdown", type=Path, metavar="PATH", help="also write a Markdown report"
    )
    _add_api_key(evaluate)  # with --target


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (`guardrail logs | head`): stop quietly, as
        # Unix tools do, and keep the interpreter's final flush from failing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "serve": _cmd_serve,
        "check": _cmd_check,
        "eval": _cmd_eval,
        "health": _cmd_health,
    }
    if args.command not in handlers:  # db, logs, keys: service/{store,auth}/commands.py
        return int(args.handler(args))
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

    api_key = args.api_key or None
    with GuardrailClient(args.target, timeout=args.timeout, api_key=api_key) as client:
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


# -- eval: command and tables -------------------------------------------------


class _RemoteChecker:
    """Check over the wire; errors become ``GuardrailRpcError`` like the client's."""

    def __init__(self, target: str, timeout: float, api_key: str = "") -> None:
        import grpc
        from guardrail.v1 import guardrail_pb2_grpc

        self._channel = grpc.insecure_channel(target)
        self._stub = guardrail_pb2_grpc.GuardrailServiceStub(self._channel)
        self._timeout = timeout
        self._metadata = [("authorization", f"Bearer {api_key}")] if api_key else None

    def check(self, request: pb.CheckRequest) -> pb.CheckResponse:
        import grpc
        from guardrail_client import from_rpc_error

        try:
            response: pb.CheckResponse = self._stub.Check(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        return response

    def close(self) -> None:
        self._channel.close()


def _eval_checker(args: argparse.Namespace) -> tuple[CheckerLike, int]:
    if args.target is None:
        from service.checking import build_default_checker

        return build_default_checker(), args.concurrency or 1
    checker = _RemoteChecker(args.target, args.timeout, args.api_key)
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

    if args.markdown is not None:
        from service.evaluation_report import format_markdown

        command = "guardrail eval " + " ".join(sys.argv[2:])
        args.markdown.write_text(format_markdown(report, command=command), "utf-8")
    as_json = args.json
    print(json.dumps(report, ensure_ascii=False) if as_json else format_report(report))
    # Failed calls are in the report; the exit code says so for scripts too.
    return 0 if report["errors"] == 0 else 1
