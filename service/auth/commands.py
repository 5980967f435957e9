"""``guardrail keys new|hash``: make an API key and its keys-file entry.

``new`` prints the key once (to stdout, for the operator to hand over) and
the entry to append to GUARDRAIL_API_KEYS_FILE, which holds only the hash.
``hash`` reads a key from stdin (not the command line, which shells keep in
their history) and prints its entry.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from service.auth.keys import SCOPES, hash_key, key_id, new_key

# A key is a password that never changes hands by hand: short ones are guessable.
MIN_KEY_CHARS = 20

__all__ = ["add_commands"]


def _scopes(value: str) -> list[str]:
    scopes = sorted({s for s in value.replace(",", " ").split() if s})
    unknown = set(scopes) - SCOPES
    if not scopes or unknown:
        raise argparse.ArgumentTypeError(f"scopes must be among {sorted(SCOPES)}")
    return scopes


def _entry(key: str, args: argparse.Namespace) -> dict[str, Any]:
    digest = hash_key(key)
    return {
        "name": args.name or key_id(digest),
        "hash": digest,
        "team": args.team,
        "tenant": args.tenant,
        "scopes": args.scopes,
    }


def _cmd_new(args: argparse.Namespace) -> int:
    key = new_key()
    print(f"key: {key}")
    print("entry for GUARDRAIL_API_KEYS_FILE (the key itself is not stored):")
    print(json.dumps(_entry(key, args)))
    return 0


def _cmd_hash(args: argparse.Namespace) -> int:
    key = sys.stdin.readline().strip()
    if not key:
        print("guardrail keys hash: give the key on stdin", file=sys.stderr)
        return 2
    if len(key) < MIN_KEY_CHARS:
        print(
            f"guardrail keys hash: a key needs at least {MIN_KEY_CHARS} characters "
            "to resist guessing ('guardrail keys new' makes one)",
            file=sys.stderr,
        )
        return 2
    print(json.dumps(_entry(key, args)))
    return 0


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="make API keys and keys-file entries")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    for name, handler, text in (
        ("new", _cmd_new, "print a new random key and its entry"),
        ("hash", _cmd_hash, "print the entry of a key read from stdin"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "--name", default="", help="label; default: the hash prefix"
        )
        action.add_argument("--team", default="")
        action.add_argument("--tenant", default="")
        action.add_argument(
            "--scopes", type=_scopes, default=["check"], help="check,admin"
        )
        action.set_defaults(handler=handler)
