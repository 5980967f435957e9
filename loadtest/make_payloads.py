"""Generate the request bodies the ghz configs in ``loadtest/ghz`` send.

    python loadtest/make_payloads.py            # rewrites loadtest/ghz/data/*.json

Every body is protobuf JSON (``json_format`` / ghz's protojson) and is built
here from our own sentences and from documented token formats with a seeded
generator, so the committed files hold no third-party text and no real
credential, and regenerating them gives the same bytes.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["BUILDERS", "DATA_DIR", "build_all", "main"]

DATA_DIR = Path(__file__).resolve().parent / "ghz" / "data"
SEED = 20261203

# Our own plain sentences: no digits, no '@', nothing any guardrail should match.
_SENTENCES = (
    "Please summarise the meeting notes below for the product team.",
    "Keep the tone friendly and the summary under one page.",
    "The team agreed to move the release review to the following week.",
    "Marketing asked for a short paragraph about the new onboarding flow.",
    "Support reported fewer tickets after the help pages were rewritten.",
    "Engineering wants more time to finish the migration of the billing jobs.",
    "Design shared three sketches for the settings screen and asked for comments.",
    "The finance group will send the quarterly figures once they are approved.",
    "List the open questions at the end, each with the person who owns it.",
    "Translate any German phrases into English and keep the original in brackets.",
    "Nobody objected to the plan, but two people asked for a written follow-up.",
    "Highlight decisions in bold and leave discussion points as plain text.",
)

_ALNUM = string.ascii_letters + string.digits
_BASE32 = string.ascii_uppercase + "234567"

Json = dict[str, Any]


def _prose(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        sentence = rng.choice(_SENTENCES)
        words.append(sentence)
        length += len(sentence) + 1
    return " ".join(words)[:size].rsplit(" ", 1)[0] + "."


# -- documented formats, filled with seeded random characters --------------------


def _luhn_digit(body: str) -> str:
    total = 0
    for i, char in enumerate(reversed(body)):
        digit = int(char)
        if i % 2 == 0:  # doubled positions, counted from the check digit's left
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return str((10 - total % 10) % 10)


def _card(rng: random.Random) -> str:
    body = "4" + "".join(rng.choice(string.digits) for _ in range(14))
    number = body + _luhn_digit(body)
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


def _iban_gb(rng: random.Random) -> str:
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + "".join(
        rng.choice(string.digits) for _ in range(14)
    )
    rearranged = bban + "GB00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(numeric) % 97
    return f"GB{check:02d}{bban}"


def _email(rng: random.Random) -> str:
    user = "".join(rng.choice(string.ascii_lowercase) for _ in range(7))
    return f"{user}.{rng.choice(('ops', 'dev', 'billing'))}@example-mail.org"


def _aws_key_id(rng: random.Random) -> str:
    return "AKIA" + "".join(rng.choice(_BASE32) for _ in range(16))


def _github_token(rng: random.Random) -> str:
    return "ghp_" + "".join(rng.choice(_ALNUM) for _ in range(36))


def _stripe_test_key(rng: random.Random) -> str:
    return "sk_test_" + "".join(rng.choice(_ALNUM) for _ in range(24))


def _phone(rng: random.Random) -> str:
    return f"+1 415-555-01{rng.randrange(100):02d}"  # 555-01xx: reserved fictional


_HIT_MAKERS: tuple[Callable[[random.Random], str], ...] = (
    _email,
    _card,
    _iban_gb,
    _aws_key_id,
    _github_token,
    _stripe_test_key,
    _phone,
)


# -- request bodies ----------------------------------------------------------------


def _check_1kb(rng: random.Random) -> Json:
    return {"payload": {"text": _prose(rng, 1024)}, "direction": "DIRECTION_INPUT"}


def _text_part(text: str) -> Json:
    return {"text": text}


def _check_chat_4kb(rng: random.Random) -> Json:
    arguments = {"query": _prose(rng, 200), "filters": {"team": "product", "limit": 20}}
    messages = [
        {"role": "system", "content": [_text_part(_prose(rng, 600))]},
        {
            "role": "user",
            "content": [
                _text_part(_prose(rng, 900)),
                {"image_url": "https://images.example.org/board/sketch.png"},
                _text_part(_prose(rng, 500)),
            ],
        },
        {
            "role": "assistant",
            "content": [_text_part("Let me look up the related tickets first.")],
            "tool_calls": [
                {
                    "id": "call_1",
                    "name": "search_tickets",
                    "arguments_json": json.dumps(arguments),
                },
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": [
                _text_part(
                    json.dumps({"results": [_prose(rng, 250) for _ in range(3)]})
                )
            ],
        },
        {"role": "user", "content": [_text_part(_prose(rng, 500))]},
    ]
    return {"payload": {"messages": messages}, "direction": "DIRECTION_INPUT"}


def _check_16kb_hits(rng: random.Random) -> Json:
    pieces: list[str] = []
    length = 0
    while length < 16 * 1024:
        hit = rng.choice(_HIT_MAKERS)(rng)
        piece = f"{_prose(rng, 180)} Contact or credential: {hit}."
        pieces.append(piece)
        length += len(piece) + 1
    text = " ".join(pieces)[: 16 * 1024].rsplit(".", 1)[0] + "."
    return {"payload": {"text": text}, "direction": "DIRECTION_INPUT"}


def _schema(properties: dict[str, str]) -> str:
    return json.dumps(
        {
            "type": "object",
            "properties": {
                k: {"type": "string", "description": v} for k, v in properties.items()
            },
            "required": list(properties)[:1],
        }
    )


def _check_tools(rng: random.Random) -> Json:
    tools = [
        (
            "search_tickets",
            "Search the ticket tracker by free text.",
            {"query": "Words to look for.", "status": "Open, closed or any."},
        ),
        (
            "read_file",
            "Read a text file from the project workspace.",
            {"path": "Path relative to the workspace root."},
        ),
        (
            "send_message",
            "Post a message to a team channel.",
            {"channel": "Channel name.", "text": "Message body in markdown."},
        ),
        (
            "create_calendar_event",
            "Create an event in the shared team calendar.",
            {
                "title": "Event title.",
                "start": "Start time, ISO 8601.",
                "end": "End time.",
            },
        ),
        ("get_weather", "Current weather for a city.", {"city": "City name."}),
        (
            "summarise_document",
            "Summarise a document. " + _prose(rng, 300),
            {"document_id": "Identifier of the document.", "length": "short or long."},
        ),
    ]
    return {
        "payload": {
            "tools": [
                {
                    "name": name,
                    "description": text,
                    "input_schema_json": _schema(props),
                    "server": "workspace-tools",
                }
                for name, text, props in tools
            ]
        },
        "direction": "DIRECTION_TOOL_DESCRIPTION",
    }


def _check_stream_50(rng: random.Random) -> list[Json]:
    answer = _prose(rng, 50 * 40)
    chunks = [answer[i : i + 40] for i in range(0, 50 * 40, 40)]
    opening = {
        "open": {
            "direction": "DIRECTION_OUTPUT",
            "client_request_id": "loadtest-stream",
        }
    }
    return [opening, *({"chunk": {"text": c}} for c in chunks)]


def _guardrail(name: str, words: list[str]) -> Json:
    return {
        "name": name,
        "description": "Load-test guardrail replaced on every call.",
        "action": "ACTION_FLAG",
        "rules": [
            {
                "id": "codenames",
                "category": "custom",
                "severity": "SEVERITY_LOW",
                "keywords": words,
                "must_match": [f"about {words[0]} today"],
                "must_not_match": ["nothing to see"],
            },
            {
                "id": "ticket-ref",
                "category": "custom",
                "severity": "SEVERITY_LOW",
                "pattern": "\\bLT-[0-9]{4,8}\\b",
                "must_match": ["see LT-12345"],
                "must_not_match": ["LT-1"],
            },
        ],
    }


def _register_churn(rng: random.Random) -> list[Json]:
    del rng
    bad = _guardrail("loadtest_churn_bad", ["bluebird"])
    bad["rules"][1]["pattern"] = "(unclosed"
    return [
        {"guardrail": _guardrail("loadtest_churn", ["bluebird", "starling"])},
        {
            "guardrail": _guardrail("loadtest_churn_dry", ["kestrel"]),
            "validate_only": True,
        },
        {"guardrail": bad},
    ]


BUILDERS: dict[str, Callable[[random.Random], Json | list[Json]]] = {
    "check_1kb": _check_1kb,
    "check_chat_4kb": _check_chat_4kb,
    "check_16kb_hits": _check_16kb_hits,
    "check_tools": _check_tools,
    "check_stream_50": _check_stream_50,
    "register_churn": _register_churn,
}


def build_all() -> dict[str, Json | list[Json]]:
    """Every body, each from its own seeded generator (order-independent)."""
    return {
        name: build(random.Random(f"{SEED}:{name}")) for name, build in BUILDERS.items()
    }


def main() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for name, body in build_all().items():
        path = DATA_DIR / f"{name}.json"
        path.write_text(
            json.dumps(body, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"{path.relative_to(DATA_DIR.parents[2])}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
