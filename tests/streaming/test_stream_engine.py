"""The streaming engine in process: the RPC generator against Check's own logic."""

from __future__ import annotations

import asyncio
import base64
import functools
import string

import pytest
from guardrail.v1 import guardrail_pb2 as pb
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from service.api.stream_check import run_check_stream
from service.checking import Checker
from service.registry import Registry
from service.engine.width import encoded_width
from service.streaming import ScoreBook, TextStream, engine_for
from tests.tokens import aws_access_key_id
from tests.streaming.helpers import (
    as_stream,
    key_mask_mapping,
    opening,
    registry_with,
    released_text,
    split_at,
    text_chunks,
)

_BASE32 = string.ascii_uppercase + "234567"
WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "42", "x_y", "é", "mail", "AKIA", "@", "."]


@functools.cache
def registry() -> Registry:
    threshold = {
        "name": "two-step",
        "action": "block",
        "score_threshold": 1.0,
        "rules": [
            {"id": "first", "category": "inj", "keywords": ["pineapple"], "weight": 0.5,
             "must_match": ["pineapple"]},
            {"id": "second", "category": "inj", "keywords": ["zeppelin"], "weight": 0.5,
             "must_match": ["zeppelin"]},
        ],
    }
    flag = dict(key_mask_mapping("key-watch"), action="flag")
    third = {"id": "third", "category": "inj", "keywords": ["quokka"], "weight": 0.5,
             "must_match": ["quokka"]}
    scored = dict(threshold, name="scored-flag", action="flag", rules=[*threshold["rules"], third])
    return registry_with(key_mask_mapping(), threshold, flag, scored)


def stream(parts, guardrails, direction=pb.DIRECTION_OUTPUT, cap=256):
    requests = [opening(direction, guardrails), *text_chunks(parts)]

    async def collect():
        generator = run_check_stream(registry(), as_stream(requests), holdback=cap)
        return [answer async for answer in generator]

    return asyncio.run(collect())


def check(text, guardrails, direction=pb.DIRECTION_OUTPUT):
    request = pb.CheckRequest(
        payload=pb.Payload(text=text), guardrails=guardrails, direction=direction
    )
    return Checker(registry()).check(request)


def spans(findings):
    return sorted((f.guardrail, f.rule_id, f.location.start, f.location.end) for f in findings)


def access_key(draw):
    return "AKIA" + "".join(draw(st.lists(st.sampled_from(_BASE32), min_size=16, max_size=16)))


@st.composite
def planted_texts(draw):
    pieces = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["word", "word", "word", "email", "key"]))
        if kind == "email":
            local = draw(st.text("abcxyz.", min_size=1, max_size=9))
            pieces.append(f"{local}@ex-{draw(st.integers(0, 99))}.org")
        elif kind == "key":
            pieces.append(access_key(draw))
        else:
            pieces.append(draw(st.sampled_from(WORDS)))
        pieces.append(draw(st.sampled_from([" ", " ", "", "\n", ", "])))
    text = "".join(pieces)
    cuts = draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=12))
    return text, split_at(text, cuts)


def first_block_start(whole):
    starts = [f.location.start for f in whole.findings if f.action == pb.ACTION_BLOCK]
    return min(starts)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=planted_texts(),
    guardrails=st.sampled_from([["pii", "cloud-keys"], ["cloud-keys"], ["pii", "secrets"]]),
    cap=st.sampled_from([84, 100, 256]),
)
def test_split_stream_equals_check_on_the_whole_text(case, guardrails, cap):
    """However a text is split, the stream's verdict, findings and masked text equal Check's.

    A block ends the stream, so then only what came before the first blocking
    match can have been released, masked as Check masks that part.
    """
    text, parts = case
    answers = stream(parts, guardrails, cap=cap)
    whole = check(text, guardrails)
    # The contract holds for matches up to the cap (module docstring); words
    # glued to an e-mail can make a longer one.
    assume(all(f.location.end - f.location.start <= cap for f in whole.findings))
    verdict = answers[-1].verdict
    released = released_text(answers)

    assert verdict.decision == whole.decision
    if whole.decision == pb.DECISION_BLOCK:
        assert set(spans(verdict.findings)) <= set(spans(whole.findings))
        head = text[: first_block_start(whole)]
        masked_head = check(head, guardrails).masked_payload.text if head else ""
        assert (masked_head or head).startswith(released)
    else:
        assert spans(verdict.findings) == spans(whole.findings)
        expected = whole.masked_payload.text if whole.HasField("masked_payload") else text
        assert released == expected


def test_a_match_longer_than_the_cap_is_masked_from_where_it_is_seen():
    """An e-mail longer than the cap leaks only the head released before it was seen."""
    address = "a" * 60 + "@example.org"
    text = "mail " + address + " please" + " end" * 20

    answers = stream(split_at(text, range(0, len(text), 9)), ["pii"], cap=32)
    released = released_text(answers)

    assert "@example.org" not in released
    assert released.startswith("mail aaaa") and "[EMAIL]" in released
    assert answers[-1].verdict.decision == pb.DECISION_MASK


def test_a_rule_wider_than_the_cap_is_reported_capped():
    """With the cap below a rule's width the verdict names the rule as capped."""
    verdict = stream(["x"], ["cloud-keys"], cap=16)[-1].verdict

    assert verdict.holdback_chars == 16
    assert list(verdict.capped_rules) == ["cloud-keys/access-key-id"]


def test_every_release_is_a_prefix_of_the_masked_text():
    """A key split over three chunks never shows a prefix of itself in any release."""
    key = "AKIA" + "QRSTUVWXYZ234567"
    text = "first " * 10 + "the key " + key + " and more text " * 6
    start = text.index(key)
    parts = [text[: start + 3], text[start + 3 : start + 11], text[start + 11 :]]
    answers = stream(parts, ["cloud-keys"])

    expected = text.replace(key, "[CLOUD_KEY]")
    so_far = ""
    for answer in answers[:-1]:
        so_far += answer.release.text
        assert expected.startswith(so_far)
        assert key[:4] not in answer.release.text
    assert so_far == expected


def test_threshold_scores_accumulate_across_windows():
    """Two half-weight rules far apart in a streamed prompt block like the whole prompt."""
    text = "pineapple " + "filler words " * 60 + "zeppelin at the end"
    parts = split_at(text, range(0, len(text), 11))

    answers = stream(parts, ["two-step"], direction=pb.DIRECTION_INPUT, cap=100)
    whole = check(text, ["two-step"], direction=pb.DIRECTION_INPUT)

    assert whole.decision == pb.DECISION_BLOCK
    assert answers[-1].verdict.decision == pb.DECISION_BLOCK
    result = answers[-1].verdict.guardrail_results[0]
    assert result.score == whole.guardrail_results[0].score == 1.0


def test_streamed_score_equals_the_whole_text_score():
    """Distinct rules far apart add up over the stream exactly as over the whole text."""
    text = "quokka " + "pineapple " * 3 + "filler words " * 80 + "zeppelin, quokka."
    parts = split_at(text, range(0, len(text), 7))

    answers = stream(parts, ["scored-flag"], direction=pb.DIRECTION_INPUT, cap=100)
    whole = check(text, ["scored-flag"], direction=pb.DIRECTION_INPUT)

    streamed = answers[-1].verdict.guardrail_results[0]
    checked = whole.guardrail_results[0]
    assert streamed.score == checked.score == 1.5
    assert streamed.finding_count == checked.finding_count == 6
    assert spans(answers[-1].verdict.findings) == spans(whole.findings)


def test_one_rule_below_threshold_passes():
    """A single half-weight rule stays below the threshold: allowed, no findings."""
    answers = stream(["just a pineapple ", "and nothing else"], ["two-step"])

    assert answers[-1].verdict.decision == pb.DECISION_ALLOW
    assert list(answers[-1].verdict.findings) == []
    assert released_text(answers) == "just a pineapple and nothing else"


def test_block_releases_nothing_more():
    """Once a block is decided no text is released, not even what was held."""
    key = aws_access_key_id()
    parts = ["safe words " * 40, "now " + key, " trailing text " * 20]

    answers = stream(parts, ["secrets"])

    assert answers[-1].verdict.decision == pb.DECISION_BLOCK
    released = released_text(answers)
    assert key[:4] not in released
    assert "trailing" not in released


def test_flag_guardrails_only_flag():
    """A monitor-only guardrail reports its finding and changes no text."""
    key = "AKIA" + "QRSTUVWXYZ234567"
    text = "a key " + key + " here " * 10

    answers = stream(split_at(text, [8, 15]), ["key-watch"])

    assert answers[-1].verdict.decision == pb.DECISION_FLAG
    assert released_text(answers) == text
    assert [f.rule_id for f in answers[-1].verdict.findings] == ["access-key-id"]


def test_holdback_is_reported_in_the_verdict():
    """The verdict names the derived hold-back and the rules capped by the setting."""
    bounded = stream(["x"], ["cloud-keys"])[-1].verdict
    capped = stream(["x"], ["pii"], cap=100)[-1].verdict

    assert bounded.holdback_chars == encoded_width(20) and list(bounded.capped_rules) == []
    assert capped.holdback_chars == 100 and "pii/email" in capped.capped_rules


def test_window_scanned_per_chunk_stays_bounded():
    """Held text never grows past about twice the hold-back plus a chunk."""
    snapshot = registry().snapshot
    engine = engine_for(snapshot)
    holdback = engine.holdback(["pii"], 64)
    text_stream = TextStream(0, engine.scanner, ["pii"], holdback.chars, ScoreBook([snapshot.guardrails["pii"]]))
    largest = 0
    for index in range(3000):
        text_stream.feed(f"word{index} a@b.org ")
        largest = max(largest, text_stream.held_chars)

    assert largest <= 2 * holdback.chars + 2 + len("word2999 a@b.org ")


@pytest.mark.parametrize("invisible", ["\u200b", "\u2060"])
def test_invisible_characters_do_not_shorten_the_holdback(invisible):
    """A key padded with zero-width characters is still masked whole."""
    key = "AKIA" + "QRSTUVWXYZ234567"
    padded = invisible.join(key)
    text = "key " + padded + " end " * 30

    answers = stream(split_at(text, range(0, len(text), 5)), ["cloud-keys"])
    whole = check(text, ["cloud-keys"])

    assert released_text(answers) == whole.masked_payload.text
    assert "QRST" not in released_text(answers).replace(invisible, "")


@functools.cache
def narrow_registry() -> Registry:
    """A masking guardrail whose matches are short, so its hold-back is small."""
    narrow = {
        "name": "narrow-mask",
        "action": "mask",
        "rules": [{"id": "code", "category": "custom", "pattern": r"\bZORKMID-[0-9]{4}\b",
                   "must_match": ["ZORKMID-1234"], "must_not_match": ["ZORKMID-12"]}],
    }
    return registry_with(narrow)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.sampled_from(WORDS), min_size=0, max_size=6),
    digits=st.text("0123456789", min_size=4, max_size=4),
    padding=st.text("abc xyz", max_size=40),
    chunk=st.integers(1, 40),
)
def test_an_encoded_match_of_a_narrow_guardrail_is_masked_whole(words, digits, padding, chunk):
    """A base64 run whose decoded text holds a match is masked whole, as Check masks it.

    The run is held while it may still grow and until it is decided whole.
    Before, the guardrail's small hold-back let the head or the tail of the
    run go out unmasked (and the tail still decoded to the match).
    """
    inner = f"{padding} the code is ZORKMID-{digits}, keep it safe".encode()
    text = " ".join(words) + " data " + base64.b64encode(inner).decode() + " end"
    parts = [text[i : i + chunk] for i in range(0, len(text), chunk)]
    requests = [opening(pb.DIRECTION_OUTPUT, ["narrow-mask"]), *text_chunks(parts)]

    async def collect():
        generator = run_check_stream(narrow_registry(), as_stream(requests), holdback=256)
        return [answer async for answer in generator]

    answers = asyncio.run(collect())
    request = pb.CheckRequest(
        payload=pb.Payload(text=text), guardrails=["narrow-mask"], direction=pb.DIRECTION_OUTPUT
    )
    whole = Checker(narrow_registry()).check(request)
    assert whole.decision == pb.DECISION_MASK
    assert released_text(answers) == whole.masked_payload.text
