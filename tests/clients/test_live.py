"""The client and the CLI against the real server (``service.app.start_server``)."""

from __future__ import annotations

import asyncio
import json

import pytest

from guardrail_client import (
    AsyncGuardrailClient,
    Decision,
    InvalidArgumentError,
    NotFoundError,
    StreamVerdict,
)
from service import cli

EMAIL_TEXT = "write to jane.doe@example.com today"


@pytest.fixture
async def client(server):
    async with AsyncGuardrailClient(f"127.0.0.1:{server.port}") as client:
        yield client


async def test_live_check_finds_an_email(client):
    """A pii check finds the address at code-point offsets into the text."""
    result = await client.check(EMAIL_TEXT, guardrails=["pii"])
    start = EMAIL_TEXT.index("jane")
    assert result.decision in (Decision.MASK, Decision.BLOCK, Decision.FLAG)
    assert any(
        f.guardrail == "pii" and f.path == "text" and f.start < start + 20 and start < f.end
        for f in result.findings
    )
    assert "pii" in result.applied_guardrails and result.request_id


async def test_live_unknown_guardrail_is_not_found(client):
    """An unknown guardrail name raises NotFoundError naming it."""
    with pytest.raises(NotFoundError) as caught:
        await client.check("hello", guardrails=["no_such_guardrail"])
    assert "no_such_guardrail" in caught.value.resource_names


async def test_live_register_reports_a_bad_pattern_in_band(client):
    """A dry-run Register of a broken pattern answers with that item's INVALID_ARGUMENT."""
    results = await client.register(
        [{"name": "broken", "action": "ACTION_BLOCK", "rules": [{"id": "r", "pattern": "(unclosed"}]}],
        validate_only=True,
    )
    assert not results[0].accepted
    assert isinstance(results[0].error, InvalidArgumentError)
    assert any("pattern" in field for field, _ in results[0].error.field_violations)


async def test_live_stream_ends_with_a_verdict(client):
    """check_stream over the real server ends with one StreamVerdict."""
    events = [e async for e in client.check_stream(["hello ", "world"])]
    assert isinstance(events[-1], StreamVerdict)
    assert events[-1].chunk_count == 2


async def test_live_cli_health_and_eval(server, tmp_path, capsys):
    """The CLI sees the server healthy and scores a file through it without errors."""
    target = f"127.0.0.1:{server.port}"
    path = tmp_path / "live.jsonl"
    path.write_text(json.dumps({"text": EMAIL_TEXT, "label": "pii", "spans": [
        {"start": 9, "end": 29, "type": "EMAIL_ADDRESS"}]}) + "\n")
    # The CLI blocks; run it in a thread so the server's loop keeps answering.
    assert await asyncio.to_thread(cli.main, ["health", "--target", target]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"
    assert await asyncio.to_thread(cli.main, ["eval", str(path), "--target", target, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 0
    assert report["pii_entities"]["EMAIL_ADDRESS"] == {"n": 1, "found": 1, "recall": 1.0, "errors": 0}
