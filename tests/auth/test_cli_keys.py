"""`guardrail check` and `guardrail eval --target` against a server with API keys."""

from __future__ import annotations

import asyncio
import json

import pytest

from service import cli


@pytest.fixture
def target(auth_server) -> str:
    return f"127.0.0.1:{auth_server.port}"


async def test_check_sends_the_api_key(target, keys, capsys):
    argv = ["check", "--target", target, "--text", "hello", "--api-key", keys.check]

    code = await asyncio.to_thread(cli.main, argv)

    assert code == 0, capsys.readouterr().out
    assert json.loads(capsys.readouterr().out)["decision"] == "ALLOW"


async def test_check_reads_the_key_from_the_environment(target, keys, capsys, monkeypatch):
    monkeypatch.setenv("GUARDRAIL_API_KEY", keys.check)

    code = await asyncio.to_thread(cli.main, ["check", "--target", target, "--text", "hi"])

    assert code == 0, capsys.readouterr().out


async def test_check_without_a_key_is_unauthenticated(target, capsys, monkeypatch):
    monkeypatch.delenv("GUARDRAIL_API_KEY", raising=False)

    code = await asyncio.to_thread(cli.main, ["check", "--target", target, "--text", "hi"])

    assert code == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "UNAUTHENTICATED"


async def test_remote_eval_sends_the_api_key(target, keys, tmp_path, capsys):
    records = tmp_path / "cases.jsonl"
    records.write_text(json.dumps({"text": "hello there", "label": "benign"}) + "\n")
    argv = ["eval", str(records), "--target", target, "--json", "--api-key", keys.check]

    code = await asyncio.to_thread(cli.main, argv)

    assert code == 0, capsys.readouterr().out
    assert json.loads(capsys.readouterr().out)["errors"] == 0
