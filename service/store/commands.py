"""``guardrail db upgrade`` and ``guardrail logs``: the store from the command line.

Settings come from the environment, exactly as the server reads them, so the
same ``GUARDRAIL_DATABASE_URL`` points both at the same table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

__all__ = ["add_commands", "parse_since"]

EXIT_FAILED = 1
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
T = TypeVar("T")


def parse_since(text: str) -> timedelta:
    """``90s``, ``10m``, ``2h``, ``7d`` as a timedelta."""
    number, unit = text[:-1], text[-1:].lower()
    if unit not in _UNITS or not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number and s, m, h or d")
    return timedelta(seconds=int(number) * _UNITS[unit])


def add_commands(subparsers: Any) -> None:
    """Add ``db`` and ``logs`` to the ``guardrail`` parser; each sets ``handler``."""
    db = subparsers.add_parser("db", help="SpendLogs database schema")
    actions = db.add_subparsers(dest="db_command", required=True)
    upgrade = actions.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.set_defaults(handler=_cmd_upgrade)
    retention = actions.add_parser(
        "retention", help="drop rows past GUARDRAIL_SPEND_LOG_RETENTION_DAYS now"
    )
    retention.set_defaults(handler=_cmd_retention)

    logs = subparsers.add_parser("logs", help="recent SpendLogs rows")
    logs.add_argument("--since", type=parse_since, default=None, metavar="10m")
    logs.add_argument("--status", choices=["success", "failure"], default="")
    logs.add_argument(
        "--decision", choices=["ALLOW", "MASK", "BLOCK", "FLAG"], default="",
        type=str.upper,
    )  # fmt: skip
    logs.add_argument("--limit", type=_positive, default=50, metavar="N")
    logs.add_argument("--json", action="store_true", help="one JSON object a line")
    logs.set_defaults(handler=_cmd_logs)


def _with_backend(work: Callable[[Any], Awaitable[T]]) -> T:
    from service.settings import load_settings
    from service.store.backends import open_backend

    async def run() -> T:
        backend = open_backend(load_settings().database_url.get_secret_value())
        try:
            return await work(backend)
        finally:
            await backend.close()

    return asyncio.run(run())


def _fail(command: str, exc: Exception) -> int:
    from service.store.errors import StoreError

    reason = exc.reason if isinstance(exc, StoreError) else str(exc)
    print(f"guardrail {command}: {reason}", file=sys.stderr)
    return EXIT_FAILED


def _cmd_upgrade(args: argparse.Namespace) -> int:
    async def work(backend: Any) -> list[str]:
        done: list[str] = await backend.upgrade()
        return done

    try:
        done = _with_backend(work)
    except Exception as exc:  # noqa: BLE001 - reported, exit status says so
        return _fail("db upgrade", exc)
    for line in done:
        print(f"applied {line}")
    print("schema up to date" if not done else f"{len(done)} migration(s) applied")
    return 0


def _cmd_retention(args: argparse.Namespace) -> int:
    from service.settings import load_settings

    days = load_settings().spend_log_retention_days

    async def work(backend: Any) -> int:
        await backend.open()
        removed: int = await backend.apply_retention(days, datetime.now(UTC))
        return removed

    try:
        removed = _with_backend(work)
    except Exception as exc:  # noqa: BLE001 - reported, exit status says so
        return _fail("db retention", exc)
    print(f"retention {days} days: removed {removed}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    from service.store.query import LogQuery

    since = datetime.now(UTC) - args.since if args.since is not None else None
    query = LogQuery(since=since, status=args.status, decision=args.decision,
                     limit=max(1, args.limit))  # fmt: skip

    async def work(backend: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await backend.recent(query)
        return rows

    try:
        rows = _with_backend(work)
    except Exception as exc:  # noqa: BLE001 - reported, exit status says so
        return _fail("logs", exc)
    for row in rows:
        print(json.dumps(row, ensure_ascii=False, default=str) if args.json else _line(row))
    return 0


def _line(row: dict[str, Any]) -> str:
    metadata = row.get("metadata") or {}
    rules = sorted({f["rule_id"] for f in metadata.get("findings", [])})
    error = (metadata.get("error") or {}).get("reason", "")
    return "  ".join([
        str(row["startTime"])[:23], row["request_id"], f"{row['call_type']:<12}",
        f"{row['status']:<7}", f"{row['grpc_code']:<17}", f"{row['decision'] or '-':<5}",
        f"{row['request_duration_ms']:8.2f}ms", ",".join(rules) or error or "-",
    ])  # fmt: skip


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value
