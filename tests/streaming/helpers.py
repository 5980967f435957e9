"""Builders shared by the streaming tests: guardrails, requests, a stream runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from guardrail.v1 import guardrail_pb2 as pb

from service.engine import spec_from_mapping
from service.registry import Registry
from service.engine import builtin_specs

AKIA_PATTERN = r"\b(?:AKIA|ASIA)[A-Z2-7]{16}\b"
SAMPLE_KEY = "AKIA" + "ABCDEFGHIJKLMNOP"


def key_mask_mapping(name: str = "cloud-keys") -> dict[str, object]:
    """A guardrail that masks cloud access key ids (the built-in one blocks)."""
    return {
        "name": name,
        "action": "mask",
        "rules": [
            {
                "id": "access-key-id",
                "category": "cloud_key",
                "pattern": AKIA_PATTERN,
                "must_match": [f"key {SAMPLE_KEY} here"],
                "must_not_match": ["AKIA"],
            }
        ],
    }


def key_mask_pb(name: str = "cloud-keys") -> pb.Guardrail:
    return pb.Guardrail(
        name=name,
        action=pb.ACTION_MASK,
        rules=[
            pb.Rule(
                id="access-key-id",
                category="cloud_key",
                pattern=AKIA_PATTERN,
                must_match=[f"key {SAMPLE_KEY} here"],
                must_not_match=["AKIA"],
            )
        ],
    )


def registry_with(*mappings: dict[str, object]) -> Registry:
    """The built-ins plus the given guardrails, registered as an operator would."""
    registry = Registry(builtin_specs())
    for mapping in mappings:
        registry.register(spec_from_mapping(mapping))
    return registry


def opening(direction=pb.DIRECTION_OUTPUT, guardrails: Iterable[str] = ()) -> pb.CheckStreamRequest:
    return pb.CheckStreamRequest(
        open=pb.StreamOpen(direction=direction, guardrails=list(guardrails))
    )


def text_chunks(parts: Iterable[str], choice: int = 0) -> list[pb.CheckStreamRequest]:
    return [
        pb.CheckStreamRequest(chunk=pb.StreamChunk(text=p, choice_index=choice))
        for p in parts
    ]


def split_at(text: str, cuts: Iterable[int]) -> list[str]:
    points = [0, *sorted(set(c for c in cuts if 0 < c < len(text))), len(text)]
    return [text[a:b] for a, b in zip(points, points[1:])]


async def as_stream(requests: Iterable[pb.CheckStreamRequest]) -> AsyncIterator[pb.CheckStreamRequest]:
    for request in requests:
        yield request
        await asyncio.sleep(0)


def released_text(answers: Iterable[pb.CheckStreamResponse], choice: int = 0) -> str:
    return "".join(
        a.release.text
        for a in answers
        if a.HasField("release") and a.release.choice_index == choice
    )
