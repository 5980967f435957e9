"""PII validators and context words: phones, cards, SSNs, IBANs, IP addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.engine import Scanner, compile_guardrail, load_pack_file
from service.engine.context import context_check
from service.engine.phones import is_phone_number
from service.engine.validators import (
    VALIDATORS,
    is_iban_valid,
    is_ipv4_valid,
    is_ipv6_valid,
    is_payment_card,
    is_ssn_valid,
)
from service.types import Segment

PII = Path(__file__).resolve().parents[2] / "service" / "engine" / "packs" / "pii.yaml"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+44 20 7946 0958", True),  # region from +44
        ("0044 20 7946 0958", True),  # 00 reads as +
        ("+1-984-182-0190", True),
        ("(555) 123-4567", True),  # fiction range: possible, not allocated
        ("699 956 915", True),  # Spain, national
        ("0393 1144137", True),  # Italy, national
        ("+999 123 456 789", False),  # no such calling code
        ("123", False),
        ("1111111", False),  # one repeated digit
        ("1234567890123456", False),  # longer than E.164
    ],
)
def test_phone_validator(number, expected):
    """Phones must be possible numbers for their +CC, or for a default region."""
    assert is_phone_number(number) is expected
    assert VALIDATORS["phone"] is is_phone_number


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("4111 1111 1111 1111", True),  # Visa 16
        ("4222222222222", True),  # Visa 13
        ("4131034282458809939", True),  # Visa 19
        ("5500-0000-0000-0004", True),  # Mastercard 51-55
        ("2221000000000009", True),  # Mastercard 2-series
        ("2720990000000007", True),
        ("378282246310005", True),  # Amex 37
        ("6011111111111117", True),  # Discover
        ("3530111333300000", True),  # JCB
        ("30569309025904", True),  # Diners 14
        ("6200000000000005", True),  # UnionPay
        ("501864667909", True),  # Maestro 12
        ("4111 1111 1111 1112", False),  # Luhn fails
        ("7111111111111119", False),  # no issuer starts with 7
        ("378282246310", False),  # Amex prefix, wrong length
        ("2721000000000007", False),  # above the 2-series range
    ],
)
def test_payment_card_needs_luhn_issuer_and_length(number, expected):
    """A card number passes Luhn and fits a known issuer's prefix and length."""
    assert is_payment_card(number) is expected


@pytest.mark.parametrize(
    ("ssn", "expected"),
    [
        ("536-22-8145", True),
        ("000-12-3456", False),  # area 000
        ("666-12-3456", False),  # area 666
        ("900-12-3456", False),  # area 9xx
        ("999-12-3456", False),
        ("536-00-8145", False),  # group 00
        ("536-22-0000", False),  # serial 0000
        ("078-05-1120", False),  # the advertised wallet number
        ("53622814", False),  # eight digits
    ],
)
def test_ssn_validator_excludes_ranges_never_issued(ssn, expected):
    """SSNs in the ranges the SSA never issues are rejected."""
    assert is_ssn_valid(ssn) is expected


@pytest.mark.parametrize(
    ("iban", "expected"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("DE89370400440532013000", True),
        ("FR1420041010050500013M02606", True),
        ("NO9386011117947", True),  # shortest country length (15)
        ("GB82 WEST 1234 5698 7654 33", False),  # checksum
        ("DE8937040044053201300", False),  # one character short for DE
        ("XX89370400440532013000", False),  # unknown country
        ("GB82-WEST-1234-5698-7654-3!", False),
    ],
)
def test_iban_validator_checks_country_length_and_mod97(iban, expected):
    """IBANs need a known country, that country's length and mod 97 == 1."""
    assert is_iban_valid(iban) is expected


@pytest.mark.parametrize(
    ("address", "v4", "v6"),
    [
        ("203.0.113.42", True, False),
        ("256.1.1.1", False, False),
        ("01.2.3.4", False, False),
        ("2001:db8::8a2e:370:7334", False, True),
        ("fe80::1", False, True),
        ("12:30", False, False),
        ("1::2::3", False, False),
    ],
)
def test_ip_validators_accept_valid_forms_only(address, v4, v6):
    """Only well-formed IPv4 and IPv6 addresses pass."""
    assert (is_ipv4_valid(address), is_ipv6_valid(address)) == (v4, v6)


@pytest.mark.parametrize(
    ("validator", "text", "kept"),
    [
        ("ipv4", b"version 1.2.3.4", False),
        ("ipv4", b"server ip at version 1.2.3.4", True),  # a raising word wins
        ("phone", b"ISBN 978-0-306-40615-7", False),
        ("luhn", b"order # 4111 1111 1111 1111", False),
        ("luhn", b"card for order 4111 1111 1111 1111", True),
        ("ssn", b"my number 536-22-8145", True),
    ],
)
def test_context_words_raise_or_lower(validator, text, kept):
    """A lowering word before a match drops it unless a raising word is there too."""
    start = len(text) - len(text.split(b" ")[-1])

    assert context_check(validator).keeps(text, start) is kept


def _pii():
    return Scanner([compile_guardrail(load_pack_file(PII))])


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("mail ann@example.org", "[EMAIL]"),
        ("call +44 20 7946 0958", "[PHONE]"),
        ("Phone:\n467 3395", "[PHONE]"),
        ("card 4111 1111 1111 1111", "[CREDIT_CARD]"),
        ("SSN 536-22-8145", "[US_SSN]"),
        ("IBAN DE89 3704 0044 0532 0130 00", "[IBAN]"),
        ("from 203.0.113.42", "[IP_ADDRESS]"),
        ("host fe80::1", "[IP_ADDRESS]"),
    ],
)
def test_pii_pack_masks_each_entity_with_its_label(text, label):
    """Each entity type is found and carries its own mask label."""
    findings = _pii().scan([Segment("p", text)], ["pii"]).findings

    assert findings and {f.mask_label for f in findings} == {label}


@pytest.mark.parametrize(
    "text",
    ["version 10.0.19041.1", "ISBN 978-0-306-40615-7", "order # 4111 1111 1111 1111",
     "build 2.4.1 on 2024-05-01", "room 101, call 911", "in 2019-2020 we grew"],
)
def test_pii_pack_ignores_numbers_in_lowering_context(text):
    """Versions, ISBNs, order numbers and dates produce no PII finding."""
    assert _pii().scan([Segment("p", text)], ["pii"]).findings == []
