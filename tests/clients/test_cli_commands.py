"""The ``guardrail`` command line: argument parsing, check and health."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from service import cli


def test_check_arguments():
    """check takes a target, one text source, repeated guardrails and a direction."""
    args = cli.build_parser().parse_args(
        ["check", "--target", "h:1", "--text", "hi", "--guardrail", "pii", "--guardrail", "secrets",
         "--direction", "tool_result"]
    )
    assert (args.command, args.target, args.text, args.file) == ("check", "h:1", "hi", None)
    assert args.guardrails == ["pii", "secrets"]
    assert args.direction == "tool_result"


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--text", "hi"],
        ["check", "--target", "h:1"],
        ["check", "--target", "h:1", "--text", "a", "--file", "f.jsonl"],
        ["check", "--target", "h:1", "--text", "a", "--direction", "sideways"],
        ["eval"],
        ["health"],
        ["guardrails", "history", "pii", "--limit", "-1"],
        ["guardrails", "history", "pii", "--limit", "0"],
        ["guardrails", "history", "pii", "--limit", str(2**32)],
        [],
    ],
)
def test_bad_arguments_exit_2(argv, capsys):
    """Missing or conflicting arguments stop argparse with exit status 2."""
    with pytest.raises(SystemExit) as caught:
        cli.build_parser().parse_args(argv)
    assert caught.value.code == 2


def test_eval_arguments():
    """eval takes files, and optional target, --json and --concurrency."""
    args = cli.build_parser().parse_args(["eval", "a.jsonl", "b.jsonl", "--json", "--concurrency", "4"])
    assert [p.name for p in args.files] == ["a.jsonl", "b.jsonl"]
    assert args.json and args.concurrency == 4 and args.target is None


def test_cli_import_is_light():
    """Importing the CLI module pulls in neither grpc nor the service."""
    code = "import sys, service.cli; print(sorted(m for m in sys.modules if m.startswith(('grpc', 'service.app', 'service.engine'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_prints_one_json_line_per_text(fake_target, tmp_path, capsys):
    """check --file prints one JSON verdict per line, in the documented shape."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"text": "hello"}) + "\n" + json.dumps({"text": "key AKIAABCDEFGHIJKLMNOP"}) + "\n"
    )
    assert cli.main(["check", "--target", fake_target, "--file", str(source)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["decision"] for line in lines] == ["ALLOW", "BLOCK"]
    assert set(lines[1]) == {
        "decision", "request_id", "findings", "masked_text", "guardrail_results", "registry_generation",
    }
    assert lines[1]["findings"][0] == {
        "guardrail": "secrets", "rule_id": "aws-access-key", "category": "secret", "severity": "HIGH",
        "start": 4, "end": 24, "path": "text", "json_pointer": "", "redacted_preview": "AKIA…",
    }
    assert lines[1]["guardrail_results"][0]["status"] == "INTERVENED"


def test_check_error_prints_status_and_exits_2(fake_target, capsys):
    """An RPC error prints {"error": {code, message, details}} and exits 2."""
    code = cli.main(["check", "--target", fake_target, "--text", "x", "--guardrail", "nope"])
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 2
    assert error["code"] == "NOT_FOUND"
    assert {d["@type"].rsplit(".", 1)[1] for d in error["details"]} == {"ErrorInfo", "ResourceInfo"}


def test_check_stops_at_the_first_error(fake_target, tmp_path, capsys):
    """With --file, lines after a failing one are not sent."""
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(json.dumps({"text": t}) for t in ["a", "overload", "b"]) + "\n")
    assert cli.main(["check", "--target", fake_target, "--file", str(source)]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "error" in json.loads(lines[1])


@pytest.mark.parametrize(("service", "status", "code"), [("", "SERVING", 0), ("draining", "NOT_SERVING", 1)])
def test_health(fake_target, capsys, service, status, code):
    """health prints the serving status and exits 0 only when SERVING."""
    assert cli.main(["health", "--target", fake_target, "--service", service]) == code
    assert capsys.readouterr().out.strip() == status


def test_health_unreachable_exits_1(capsys):
    """An unreachable server is not healthy: exit 1 with the status on stderr."""
    assert cli.main(["health", "--target", "127.0.0.1:1", "--timeout", "0.3"]) == 1
    assert capsys.readouterr().err.strip()


def test_output_into_a_closed_pipe_ends_without_a_traceback():
    """`guardrail ... | head` closes the pipe early: no BrokenPipe traceback."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        done = subprocess.run(
            [sys.executable, "-m", "service", "keys", "new"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)

    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert done.returncode != 0
