"""Named validators: each keeps real matches and drops look-alikes."""

from __future__ import annotations

import base64

import pytest

from service.engine import SUPPORTED_VALIDATORS
from service.engine.validators import VALIDATORS
from tests.engine.test_secrets_pack import cisco_type7, crc32_token

CASES = [
    ("luhn", "4111 1111 1111 1111", True),
    ("luhn", "378282246310005", True),
    ("luhn", "4111 1111 1111 1112", False),
    ("luhn", "0000000000000000", False),
    ("luhn", "12345", False),
    ("iban_mod97", "GB82 WEST 1234 5698 7654 32", True),
    ("iban_mod97", "de89370400440532013000", True),
    ("iban_mod97", "GB82 WEST 1234 5698 7654 33", False),
    ("iban_mod97", "DE8937040044053201300", False),
    ("iban_mod97", "XX89370400440532013000", False),
    ("ssn", "536-22-8145", True),
    ("ssn", "000-22-8145", False),
    ("ssn", "666-22-8145", False),
    ("ssn", "900-22-8145", False),
    ("ssn", "536-00-8145", False),
    ("ssn", "536-22-0000", False),
    ("ssn", "078-05-1120", False),
    ("ipv4", "192.168.0.1", True),
    ("ipv4", "256.1.1.1", False),
    ("ipv4", "01.2.3.4", False),
    ("ipv4", "1.2.3", False),
    ("ipv6", "2001:db8::1", True),
    ("ipv6", "12:30:45", False),
    ("phone", "+44 20 7946 0958", True),
    ("phone", "555-555-5555", False),
    ("phone", "12345", False),
    ("entropy", "kJ8#p2Lq9zX!", True),
    ("entropy", "changeme", False),
    ("entropy", "<your-api-key>", False),
    ("entropy", "${SECRET}", False),
    ("entropy", "aaaaaaaaaaaa", False),
    ("not_placeholder", "S3cr3tValue", True),
    ("not_placeholder", "password", False),
    ("not_placeholder", "${DB_PASS}", False),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", True),
    ("jwt", "eyJub3RoaW5nIjoxfQ.eyJ4IjoxfQ.c2ln", False),
    ("card", "4111 1111 1111 1111", True),
    ("card", "7111111111111119", False),
    ("smuggled_tags", "\U000E0041\U000E0042", True),
    ("smuggled_tags", "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", False),
    ("smuggled_tags", "\U0001F3F4\U000E0067\U000E0062\U000E007F\U000E0041", True),
    # secrets (tokens are built at run time: see tests/engine/test_secrets_pack.py)
    ("token", "Qm4tZ8rLw2Xp9KcV7bNd", True),
    ("token", "xxxxxxxxxxxxxxxxxxxx", False),
    ("github_checksum", crc32_token("ghp_"), True),
    ("github_checksum", crc32_token("ghp_")[:-1] + "0", False),
    ("github_unverified", crc32_token("ghp_")[:-1] + "0", True),
    ("github_unverified", crc32_token("ghp_"), False),
    ("npm_checksum", crc32_token("npm_"), True),
    ("npm_checksum", "npm_" + "Ab1" * 12, False),
    ("npm_unverified", "npm_" + "Qm4tZ8rLw2Xp9KcV7bNdQm4tZ8rLw2Xp9KcV", True),
    ("npm_unverified", crc32_token("npm_"), False),
    ("password_value", "Summer2024!", True),
    ("password_value", "${DB_PASS}", False),
    ("generic_secret", "Qm4tZ8rLw2Xp9KcV7bNd", True),
    ("generic_secret", "access_token_refresh", False),
    ("bearer_token", "mF9.B5f-4.1JqZ", True),
    ("bearer_token", "access_token", False),
    ("prose_password", "Wv9!kLp2#x", True),
    ("prose_password", "incorrect", False),
    ("basic_auth", "ZGVwbG95OlN1bW1lcjIwMjQh", True),
    ("basic_auth", "bm8tY29sb24taGVyZQ==", False),
    ("cisco_type7", cisco_type7("Wv9kLp2x4Q", seed=9), True),
    ("cisco_type7", cisco_type7("changeme", seed=3), False),
    ("cisco_type7", "09FFFFFFFFFF", False),
    ("cisco_type7", "53" + cisco_type7("Wv9kLp2x4Q", seed=9)[2:], False),
    ("ldap_sha_hash", base64.b64encode(bytes(range(7, 27))).decode(), True),
    ("ldap_sha_hash", base64.b64encode(bytes(19)).decode(), False),
    ("cli_flag_password", "Wv9!kLp2#x", True),
    ("cli_flag_password", "option", False),
]


@pytest.mark.parametrize(("name", "text", "expected"), CASES)
def test_validator(name, text, expected):
    """Each validator accepts the real value and rejects the look-alike."""
    assert VALIDATORS[name](text) is expected


def test_every_validator_has_cases():
    """No validator ships without a test case."""
    assert {name for name, _, _ in CASES} == set(SUPPORTED_VALIDATORS)
