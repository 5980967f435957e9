"""Dev-set figures of the PII and Unicode-smuggling guardrails do not regress.

Secrets and injection figures are held by the tests of their packs; the
secret figures are checked here too as the evaluation report computes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.checking import build_default_checker
from service.evaluation import LUHN_VALID_CARDS, run_eval

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
FILES = ("pii_presidio_synth_dev.jsonl", "unicode_raxit_tests.jsonl",
         "unicode_emoji_benign_dev.jsonl")


@pytest.fixture(scope="module")
def report():
    if not DATASETS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"development datasets missing at {DATASETS}")
        pytest.skip("development datasets not present")
    return run_eval([DATASETS / name for name in FILES], build_default_checker())


@pytest.mark.parametrize(
    ("entity", "minimum"),
    [("EMAIL_ADDRESS", 0.95), (LUHN_VALID_CARDS, 0.95), ("CREDIT_CARD", 0.95),
     ("US_SSN", 0.95), ("IBAN_CODE", 0.95), ("IP_ADDRESS", 0.95), ("PHONE_NUMBER", 0.85)],
)
def test_pii_recall_per_entity_type(report, entity, minimum):
    """Each regex-detectable PII type keeps its dev-set recall."""
    row = report["pii_entities"][entity]

    assert row["errors"] == 0 and row["recall"] >= minimum, row


def test_unicode_smuggling_recall(report):
    """Unicode smuggling (homoglyphs included: mixed-script detection is claimed) stays caught."""
    row = report["labels"]["unicode_smuggling"]

    assert row["n"] == 131 and row["recall"] >= 0.95, row


def test_no_false_positives_on_legitimate_emoji(report):
    """No emoji ZWJ, variation-selector or flag sequence is flagged."""
    emoji = report["files"]["unicode_emoji_benign_dev.jsonl"]["benign"]["unicode_smuggling"]
    raxit = report["files"]["unicode_raxit_tests.jsonl"]["benign"]["unicode_smuggling"]

    assert (emoji["n"], emoji["flagged"]) == (252, 0)
    assert raxit["flagged"] == 0


SECRET_FILE = "secret_noseyparker_rules.jsonl"


@pytest.fixture(scope="module")
def secret_report():
    if not DATASETS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"development datasets missing at {DATASETS}")
        pytest.skip("development datasets not present")
    return run_eval([DATASETS / SECRET_FILE], build_default_checker())


def test_secret_figures_in_the_evaluation_report(secret_report):
    """The report's secret recall and hard-negative rate stay at today's level
    (358/424 and 27/127; the targets and why they are out of reach are in
    tests/engine/test_secrets_pack.py::test_dev_set_targets)."""
    recall = secret_report["labels"]["secret"]
    hard_negatives = secret_report["benign"]["secret"]

    assert (recall["n"], recall["errors"]) == (424, 0), recall
    assert recall["recall"] >= 0.844, recall
    assert (hard_negatives["n"], hard_negatives["errors"]) == (127, 0), hard_negatives
    assert hard_negatives["fpr"] <= 0.213, hard_negatives
