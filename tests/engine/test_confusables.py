"""Look-alike letters fold to Latin inside mixed-script words only."""

from __future__ import annotations

import pytest

from service.engine import Scanner, compile_guardrail, spec_from_mapping
from service.engine.confusables import fold_confusables, fold_mixed_script_words
from service.engine.normalize import normalized_view
from service.types import Segment


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("please \u0456gn\u043er\u0435 this", "please ignore this"),  # Cyrillic і о е
        ("\u0410mazon and Link\u0435dIn", "Amazon and LinkedIn"),
        ("\u039detflix", "Netflix"),  # Greek capital Nu
        ("p\u0430yp\u0430l", "paypal"),
    ],
)
def test_mixed_script_words_fold_to_latin(text, folded):
    """A word mixing ASCII letters and look-alikes reads as its Latin spelling."""
    assert fold_mixed_script_words(text) == folded


@pytest.mark.parametrize(
    "text",
    [
        "\u0417\u0430\u0431\u0443\u0434\u044c\u0442\u0435 \u0432\u0441\u0435",  # Russian
        "\u039a\u0391\u0399 \u03bf \u03b1\u03b2",  # Greek
        "plain ascii text",
    ],
)
def test_single_script_text_is_left_alone(text):
    """Russian or Greek prose keeps its letters, so rules written for it still match."""
    assert fold_mixed_script_words(text) == text


def test_fold_confusables_maps_each_letter():
    """The table maps single letters, one character to one."""
    assert fold_confusables("\u0430\u0435\u043e\u0440\u0441") == "aeopc"


def test_keyword_rule_finds_a_homoglyph_spelling_and_maps_back():
    """A keyword rule matches a mixed-script spelling; the span is the original word."""
    rules = [{"id": "ign", "category": "inj", "keywords": ["ignore"], "must_match": ["ignore"]}]
    scanner = Scanner([compile_guardrail(spec_from_mapping(
        {"name": "demo", "action": "block", "rules": rules}))])
    text = "😀 ｐｌｅａｓｅ \u0456gn\u043er\u0435 it"

    findings = scanner.scan([Segment("p", text)], ["demo"]).findings

    assert [text[f.start:f.end] for f in findings] == ["\u0456gn\u043er\u0435"]


def test_folding_keeps_the_length_of_the_view():
    """Folding maps one character to one, so the offset map is unaffected."""
    text = "x \u0456gn\u043er\u0435 \u200b y"

    assert len(normalized_view(text).text) == len(text) - 1
