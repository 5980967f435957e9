"""Evaluation maths in service.evaluation and the Markdown report."""

from __future__ import annotations

import json

from guardrail.v1 import guardrail_pb2 as pb

from service import cli, evaluation
from service.evaluation_report import format_markdown, unicode_scope_notes


class _Checker:
    """Finds a PII span at a fixed place for every record."""

    def check(self, request):
        finding = pb.Finding(guardrail="pii", location=pb.Location(path="text", start=0, end=4))
        result = pb.GuardrailResult(name="pii", status=pb.GUARDRAIL_STATUS_INTERVENED)
        return pb.CheckResponse(findings=[finding], guardrail_results=[result])


def _write(tmp_path, records):
    path = tmp_path / "pii.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_cli_reexports_the_evaluation_names():
    """service.cli keeps the names the client tests and scripts import."""
    for name in ("score_records", "run_eval", "build_request", "load_records",
                 "format_report", "DETECTOR_GUARDRAILS", "PII_ENTITY_TYPES"):
        assert getattr(cli, name) is getattr(evaluation, name)


def test_cards_are_scored_all_and_luhn_valid(tmp_path):
    """Card spans count under CREDIT_CARD, and the Luhn-valid ones also separately."""
    path = _write(tmp_path, [
        {"text": "4111111111111111", "label": "pii",
         "spans": [{"start": 0, "end": 16, "type": "CREDIT_CARD"}]},
        {"text": "card 4111111111111112", "label": "pii",
         "spans": [{"start": 5, "end": 21, "type": "CREDIT_CARD"}]},
    ])

    report = evaluation.run_eval([path], _Checker())
    cards = report["pii_entities"]

    # The checker's one finding, [0, 4), overlaps the first span only.
    assert (cards["CREDIT_CARD"]["n"], cards["CREDIT_CARD"]["found"]) == (2, 1)
    assert (cards["CREDIT_CARD_LUHN_VALID"]["n"], cards["CREDIT_CARD_LUHN_VALID"]["found"]) == (1, 1)
    assert set(report) >= {"labels", "benign", "pii_entities", "files"}


def test_markdown_holds_tables_scope_command_and_facts(tmp_path):
    """The page has per-file and per-entity tables, the scope notes, the command, facts."""
    path = _write(tmp_path, [{"text": "mail a@b.io", "label": "pii",
                              "spans": [{"start": 5, "end": 11, "type": "EMAIL_ADDRESS"}]}])
    report = evaluation.run_eval([path], _Checker())

    page = format_markdown(report, command="guardrail eval pii.jsonl")

    assert "| EMAIL_ADDRESS | 1 | 0 | 0.0% | 0 |" in page
    assert "## pii.jsonl" in page and "guardrail eval pii.jsonl" in page
    assert "- python:" in page and "- commit:" in page
    assert unicode_scope_notes()[0] in page


def test_cli_writes_the_markdown_report(tmp_path, monkeypatch):
    """guardrail eval --markdown writes the page next to the printed tables."""
    path = _write(tmp_path, [{"text": "mail a@b.io", "label": "pii",
                              "spans": [{"start": 5, "end": 11, "type": "EMAIL_ADDRESS"}]}])
    out = tmp_path / "evaluation.md"

    assert cli.main(["eval", str(path), "--markdown", str(out)]) == 0
    assert "| EMAIL_ADDRESS | 1 | 1 | 100.0% | 0 |" in out.read_text(encoding="utf-8")
