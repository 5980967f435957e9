"""`guardrail db upgrade` and `guardrail logs`, with settings from the environment."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from service.cli import main
from service.store.backends import open_backend
from service.store.rows import to_row
from service.types import Decision
from tests.store.records import make_record


def _cli(monkeypatch, url, *argv):
    # main() runs its own event loop, as the console script does.
    monkeypatch.setenv("GUARDRAIL_DATABASE_URL", url)
    return main(list(argv))


async def _seed(url):
    backend = open_backend(url)
    await backend.open()
    now = time.time()
    records = [
        make_record("an-hour-ago", start_time=now - 3600, decision=Decision.ALLOW),
        make_record("blocked", start_time=now - 30, decision=Decision.BLOCK),
        make_record("failed", start_time=now - 20, grpc_code="NOT_FOUND", decision=None),
    ]
    await backend.insert_many([to_row(r) for r in records])
    await backend.close()


async def test_db_upgrade_applies_then_reports_up_to_date(database_url, monkeypatch, capsys):
    """The first upgrade applies both migrations; the second has nothing to do."""
    first = await asyncio.to_thread(_cli, monkeypatch, database_url, "db", "upgrade")
    out_first = capsys.readouterr().out
    second = await asyncio.to_thread(_cli, monkeypatch, database_url, "db", "upgrade")
    out_second = capsys.readouterr().out

    assert (first, second) == (0, 0)
    assert "applied spend_logs v1" in out_first and "applied spend_logs v2" in out_first
    assert out_second.strip() == "schema up to date"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--since", "10m"), ["failed", "blocked"]),
        (("--status", "failure"), ["failed"]),
        (("--decision", "block"), ["blocked"]),
        (("--limit", "1"), ["failed"]),
        ((), ["failed", "blocked", "an-hour-ago"]),
    ],
)
async def test_logs_filters_recent_rows(database_url, monkeypatch, capsys, argv, expected):
    """`guardrail logs --json` prints the matching rows, newest first, one per line."""
    await _seed(database_url)
    code = await asyncio.to_thread(_cli, monkeypatch, database_url, "logs", "--json", *argv)
    lines = capsys.readouterr().out.splitlines()

    assert code == 0
    assert [json.loads(line)["request_id"] for line in lines] == expected


async def test_logs_prints_a_readable_line(sqlite_url, monkeypatch, capsys):
    """Without --json each row is one line with its id, code, decision and rules."""
    await _seed(sqlite_url)
    await asyncio.to_thread(_cli, monkeypatch, sqlite_url, "logs", "--decision", "BLOCK")
    (line,) = capsys.readouterr().out.splitlines()

    assert "blocked" in line and "OK" in line and "BLOCK" in line and "openai-key" in line


async def test_logs_on_a_missing_table_fails_cleanly(tmp_path, monkeypatch, capsys):
    """Reading a database with no SpendLogs yet exits 1 with a one-line reason."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    code = await asyncio.to_thread(_cli, monkeypatch, url, "logs")

    assert code == 1
    assert capsys.readouterr().err.startswith("guardrail logs: ")


@pytest.mark.parametrize("limit", ["0", "-5", "many"])
def test_logs_refuses_a_limit_that_is_not_a_positive_number(sqlite_url, monkeypatch, capsys, limit):
    """--limit 0 or below is a usage error (exit 2), not one row printed anyway."""
    with pytest.raises(SystemExit) as exited:
        _cli(monkeypatch, sqlite_url, "logs", "--limit", limit)

    assert exited.value.code == 2
    assert "--limit" in capsys.readouterr().err
