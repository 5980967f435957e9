"""``guardrail guardrails list|get|delete|history`` and ``guardrail validate FILE``.

The ``guardrails`` commands go through the API of a running service (so they
see what the service enforces and leave an audit entry naming the caller);
``validate`` checks a ``GUARDRAIL_CONFIG`` file offline with the same checks
Register makes, printing one line per problem and exiting 1 on any.

    guardrail guardrails list [--json] [--target HOST:PORT]
    guardrail guardrails get NAME [--json] [--target HOST:PORT]
    guardrail guardrails delete NAME [--json] [--target HOST:PORT]
    guardrail guardrails history NAME [--limit N] [--json] [--target HOST:PORT]
    guardrail validate FILE
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]

DEFAULT_TARGET = "127.0.0.1:50051"
EXIT_RPC_ERROR = 2


def _history_limit(text: str) -> int:
    # GetGuardrailHistoryRequest.limit is a uint32 where 0 means 100: refuse
    # what it cannot hold here rather than in a traceback.
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be between 1 and {2**32 - 1}")
    return value


def add_commands(commands: Any) -> None:
    guardrails = commands.add_parser("guardrails", help="list, get, delete, history")
    actions = guardrails.add_subparsers(dest="guardrails_command", required=True)
    for name, text in (
        ("list", "every guardrail known to the service"),
        ("get", "one guardrail's definition"),
        ("delete", "delete a registered guardrail (an overridden built-in comes back)"),
        ("history", "a guardrail's stored changes, newest first"),
    ):
        action = actions.add_parser(name, help=text)
        if name != "list":
            action.add_argument("name", metavar="NAME")
        if name == "history":
            action.add_argument("--limit", type=_history_limit, default=100, metavar="N")
        action.add_argument("--target", default=DEFAULT_TARGET, metavar="HOST:PORT")
        action.add_argument("--json", action="store_true", help="JSON output")
        action.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
        action.add_argument(
            "--api-key",
            default=os.environ.get("GUARDRAIL_API_KEY", ""),
            help="sent as 'authorization: Bearer KEY' (default: $GUARDRAIL_API_KEY)",
        )
    guardrails.set_defaults(handler=_cmd_guardrails)

    validate = commands.add_parser("validate", help="check a GUARDRAIL_CONFIG file offline")
    validate.add_argument("file", type=Path, metavar="FILE")
    validate.set_defaults(handler=_cmd_validate)


# -- validate -------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace) -> int:
    from service.config_file import check_config

    puts, problems = check_config(args.file)
    for problem in problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: {len(puts)} guardrail(s) valid")
    return 0


# -- guardrails -----------------------------------------------------------------


def _time(stamp: Any) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return datetime.fromtimestamp(stamp.ToNanoseconds() / 1e9, tz=UTC).isoformat(
        timespec="seconds"
    )


def _json(message: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=True)


def _cmd_guardrails(args: argparse.Namespace) -> int:
    import grpc
    from guardrail.v1 import guardrail_pb2 as pb
    from guardrail.v1 import guardrail_pb2_grpc as pb_grpc

    metadata = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []
    with grpc.insecure_channel(args.target) as channel:
        stub = pb_grpc.GuardrailServiceStub(channel)
        call = {"timeout": args.timeout, "metadata": metadata}
        try:
            if args.guardrails_command == "list":
                answer = stub.ListGuardrails(pb.ListGuardrailsRequest(include_rules=True), **call)
            elif args.guardrails_command == "get":
                answer = stub.GetGuardrail(pb.GetGuardrailRequest(name=args.name), **call)
            elif args.guardrails_command == "delete":
                answer = stub.DeleteGuardrail(pb.DeleteGuardrailRequest(name=args.name), **call)
            else:
                request = pb.GetGuardrailHistoryRequest(name=args.name, limit=args.limit)
                answer = stub.GetGuardrailHistory(request, **call)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()  # type: ignore[attr-defined]
            print(f"{code.name}: {details}", file=sys.stderr)
            return EXIT_RPC_ERROR
    if args.json:
        print(json.dumps(_json(answer), indent=2, sort_keys=True))
        return 0
    for line in _text(args.guardrails_command, answer, pb):
        print(line)
    return 0


def _text(command: str, answer: Any, pb: Any) -> list[str]:
    if command == "list":
        lines = [f"{'NAME':<28} {'VERSION':>7}  {'SOURCE':<8} {'STATE':<9} UPDATED"]
        for g in answer.guardrails:
            state = "disabled" if g.disabled else "enforced"
            lines.append(
                f"{g.name:<28} {g.version:>7}  {g.source:<8} {state:<9} {_time(g.updated_at)}"
            )
        lines.append(f"registry generation {answer.registry_generation}")
        return lines
    if command == "get":
        return [json.dumps(_json(answer.guardrail), indent=2, sort_keys=True)]
    if command == "delete":
        return [f"deleted; registry generation {answer.registry_generation}"]
    lines = []
    for change in answer.changes:
        action = pb.GuardrailChangeAction.Name(change.action).removeprefix(
            "GUARDRAIL_CHANGE_ACTION_"
        ).lower()
        lines.append(
            f"{_time(change.changed_at)}  generation {change.registry_generation}"
            f"  v{change.version}  {action:<8} by {change.actor or '?'} ({change.source})"
        )
    return lines or ["no stored changes (a built-in never overridden)"]
