"""The eval scoring maths, fed small JSONL files and a scripted checker."""

from __future__ import annotations

import json

import pytest
from guardrail.v1 import guardrail_pb2 as pb

from service import cli
from service.errors import UnavailableError


class ScriptedChecker:
    """Answers from a table text -> findings; records every request it gets."""

    def __init__(self, answers, passed=()):
        self.answers = answers
        self.passed = set(passed)
        self.requests = []

    def check(self, request):
        self.requests.append(request)
        text = request.payload.text or request.payload.tools[0].description
        if text == "boom":
            raise UnavailableError("scanner down")
        path = "text" if request.payload.text else "tools[0].description"
        findings = [
            pb.Finding(guardrail=g, location=pb.Location(path=path, start=s, end=e))
            for g, s, e in self.answers.get(text, [])
        ]
        results = [
            pb.GuardrailResult(
                name=name,
                status=pb.GUARDRAIL_STATUS_PASSED if name in self.passed else pb.GUARDRAIL_STATUS_INTERVENED,
            )
            for name in {f.guardrail for f in findings}
        ]
        return pb.CheckResponse(findings=findings, guardrail_results=results)


def write(tmp_path, name, records):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def rec(text, label, **extra):
    return {"text": text, "label": label, **extra}


def test_recall_counts_only_matching_guardrails(tmp_path):
    """A label is flagged only by its detector's guardrails; flagged_by counts any."""
    path = write(tmp_path, "inj.jsonl", [
        rec("a", "injection"), rec("b", "injection"), rec("c", "injection"), rec("d", "injection"),
    ])
    checker = ScriptedChecker({
        "a": [("prompt_injection", 0, 1)],
        "b": [("jailbreak", 0, 1), ("prompt_injection", 0, 1)],
        "c": [("pii", 0, 1)],
    })
    report = cli.run_eval([path], checker)
    row = report["labels"]["injection"]
    assert (row["n"], row["flagged"], row["recall"]) == (4, 2, 0.5)
    assert row["flagged_by"] == {"prompt_injection": 2, "jailbreak": 1, "pii": 1}
    assert report["records"] == 4 and report["errors"] == 0
    assert report["target"] == "in-process" and report["seconds"] >= 0


def test_benign_fpr_per_detector_in_benign_for(tmp_path):
    """A benign record counts for each detector in benign_for, flagged by that detector only."""
    path = write(tmp_path, "benign.jsonl", [
        rec("x", "benign", meta={"benign_for": ["jailbreak", "injection"]}),
        rec("y", "benign", meta={"benign_for": ["jailbreak"]}),
        rec("z", "benign", meta={"benign_for": ["secret"]}),
        rec("w", "benign", meta={}),
    ])
    checker = ScriptedChecker({"x": [("jailbreak", 0, 1)], "z": [("pii", 0, 1)]})
    report = cli.run_eval([path], checker)
    assert report["benign"]["jailbreak"] == {"n": 2, "flagged": 1, "fpr": 0.5, "errors": 0}
    assert report["benign"]["injection"] == {"n": 1, "flagged": 1, "fpr": 1.0, "errors": 0}
    assert report["benign"]["secret"] == {"n": 1, "flagged": 0, "fpr": 0.0, "errors": 0}
    assert "benign" not in report["labels"]


def test_pii_entity_recall_needs_an_overlapping_pii_finding(tmp_path):
    """A span is found only when a pii finding at path "text" overlaps it."""
    text = "mail a@b.co or call 555-0100, name Bob"
    spans = [
        {"start": 5, "end": 11, "type": "EMAIL_ADDRESS"},
        {"start": 20, "end": 28, "type": "PHONE_NUMBER"},
        {"start": 35, "end": 38, "type": "PERSON"},
    ]
    path = write(tmp_path, "pii.jsonl", [rec(text, "pii", spans=spans)])
    # The phone finding ends where the span starts (end exclusive): no overlap.
    checker = ScriptedChecker({text: [("pii", 10, 12), ("pii", 15, 20), ("secrets", 20, 28)]})
    report = cli.run_eval([path], checker)
    assert report["pii_entities"] == {
        "EMAIL_ADDRESS": {"n": 1, "found": 1, "recall": 1.0, "errors": 0},
        "PHONE_NUMBER": {"n": 1, "found": 0, "recall": 0.0, "errors": 0},
    }


def test_findings_of_a_passed_guardrail_do_not_flag(tmp_path):
    """Findings of a guardrail that stayed under its threshold (PASSED) do not count as flagged."""
    path = write(tmp_path, "s.jsonl", [rec("k", "secret")])
    report = cli.run_eval([path], ScriptedChecker({"k": [("secrets", 0, 1)]}, passed={"secrets"}))
    row = report["labels"]["secret"]
    assert (row["flagged"], row["flagged_by"]) == (0, {"secrets": 1})


def test_failed_calls_are_counted_not_skipped(tmp_path):
    """A failing call counts in errors (total and per row) and not in n."""
    path = write(tmp_path, "e.jsonl", [
        rec("boom", "secret"), rec("k", "secret"), rec("boom", "benign", meta={"benign_for": ["secret"]}),
    ])
    report = cli.run_eval([path], ScriptedChecker({"k": [("secrets", 0, 1)]}))
    assert report["errors"] == 2 and report["records"] == 3
    assert report["labels"]["secret"] == {
        "n": 1, "flagged": 1, "recall": 1.0, "errors": 1, "flagged_by": {"secrets": 1},
    }
    assert report["benign"]["secret"] == {"n": 0, "flagged": 0, "fpr": None, "errors": 1}
    assert "UnavailableError: scanner down" in report["error_examples"][0]


def test_requests_are_shaped_by_surface(tmp_path):
    """Tool descriptions go as tools with TOOL_DESCRIPTION, external content as TOOL_RESULT."""
    path = write(tmp_path, "mix.jsonl", [
        rec("desc", "tool_poisoning", meta={"surface": "tool_description", "tool": "joke_teller"}),
        rec("page", "injection", meta={"surface": "external_content"}),
        rec("plain", "jailbreak"),
        rec("anon", "benign", meta={"surface": "tool_description", "benign_for": ["tool_poisoning"]}),
    ])
    checker = ScriptedChecker({"desc": [("mcp_tool_poisoning", 0, 4)]})
    report = cli.run_eval([path], checker)
    tool_request, page, plain, anon = checker.requests
    assert tool_request.direction == pb.DIRECTION_TOOL_DESCRIPTION
    assert tool_request.payload.tools[0] == pb.ToolDefinition(name="joke_teller", description="desc")
    assert (page.direction, page.payload.text) == (pb.DIRECTION_TOOL_RESULT, "page")
    assert (plain.direction, plain.payload.text) == (pb.DIRECTION_INPUT, "plain")
    assert anon.payload.tools[0].name == "tool"
    assert report["labels"]["tool_poisoning"]["recall"] == 1.0


def test_per_file_breakdown_and_concurrency(tmp_path):
    """Each file gets its own tables; concurrency does not change the counts."""
    first = write(tmp_path, "one.jsonl", [rec(f"s{i}", "secret") for i in range(30)])
    second = write(tmp_path, "two.jsonl", [rec("p", "pii")])
    answers = {f"s{i}": [("secrets", 0, 1)] for i in range(0, 30, 3)}
    serial = cli.run_eval([first, second], ScriptedChecker(answers))
    parallel = cli.run_eval([first, second], ScriptedChecker(answers), concurrency=8)
    for report in (serial, parallel):
        assert report["files"]["one.jsonl"]["labels"]["secret"]["flagged"] == 10
        assert report["files"]["two.jsonl"]["labels"] == {
            "pii": {"n": 1, "flagged": 0, "recall": 0.0, "errors": 0, "flagged_by": {}}
        }
    assert {k: v for k, v in serial.items() if k != "seconds"} == {
        k: v for k, v in parallel.items() if k != "seconds"
    }


def test_bad_jsonl_names_file_and_line(tmp_path):
    """A broken line stops the run with file:line in the message."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "benign"}\n{oops\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        cli.load_records(path)


def test_table_form_shows_every_section(tmp_path):
    """The readable report has the label, benign and pii tables and the totals line."""
    path = write(tmp_path, "t.jsonl", [
        rec("a b@c.de", "pii", spans=[{"start": 2, "end": 8, "type": "EMAIL_ADDRESS"}]),
        rec("ok", "benign", meta={"benign_for": ["pii"]}),
    ])
    text = cli.format_report(cli.run_eval([path], ScriptedChecker({"a b@c.de": [("pii", 2, 8)]})))
    for heading in ("labels (recall)", "benign (false positives)", "pii entities (recall)", "== t.jsonl"):
        assert heading in text
    assert "records 2, errors 0" in text


def test_eval_command_json_uses_the_in_process_checker(tmp_path, monkeypatch, capsys):
    """Without --target, eval builds the service's default checker and prints one JSON object."""
    import service.checking

    path = write(tmp_path, "c.jsonl", [rec("k", "secret")])
    monkeypatch.setattr(service.checking, "build_default_checker", lambda: ScriptedChecker({"k": [("secrets", 0, 1)]}))
    assert cli.main(["eval", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"]["secret"]["recall"] == 1.0 and report["target"] == "in-process"


def test_eval_command_through_a_target(fake_target, tmp_path, capsys):
    """With --target, eval sends each record over gRPC with some concurrency."""
    path = write(tmp_path, "r.jsonl", [rec("key AKIAABCDEFGHIJKLMNOP", "secret"), rec("fine", "secret")])
    assert cli.main(["eval", str(path), "--target", fake_target, "--json", "--concurrency", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["labels"]["secret"]["recall"] == 0.5 and report["target"] == fake_target


def test_eval_command_exits_1_when_calls_failed(fake_target, tmp_path, capsys):
    """Failed calls make the exit status 1 and are listed in the report."""
    path = write(tmp_path, "f.jsonl", [rec("overload", "secret")])
    assert cli.main(["eval", str(path), "--target", fake_target]) == 1
    assert "UnavailableError" in capsys.readouterr().out
