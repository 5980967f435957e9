"""Named checks that a pattern match really is what the rule claims.

A validator takes the matched text and returns True to keep the finding.
Patterns find candidates cheaply; validators remove the look-alikes that no
regular expression can tell apart (checksums, reserved ranges, placeholders).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
from collections import Counter
from collections.abc import Callable, Mapping
from types import MappingProxyType

__all__ = [
    "SUPPORTED_VALIDATORS",
    "VALIDATORS",
    "Validator",
    "is_iban_valid",
    "is_ipv4_valid",
    "is_ipv6_valid",
    "is_jwt_like",
    "is_luhn_valid",
    "is_not_placeholder",
    "is_phone_plausible",
    "is_secret_like",
    "is_smuggled_tag_run",
    "is_ssn_valid",
]

Validator = Callable[[str], bool]

# ISO 13616 registry: country code -> IBAN length.
_IBAN_LENGTHS: Mapping[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
    "BG": 22, "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22,
    "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22,
    "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30,
    "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29,
    "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

# Values people write instead of a real secret in docs, configs and prompts.
_PLACEHOLDER_MARKERS = (
    "example", "xxxx", "****", "....", "changeme", "change_me", "change-me",
    "placeholder", "your", "redacted", "dummy", "sample", "<", "${", "{{",
    "%(", "$(", "process.env", "os.environ", "getenv", "secret_key_here",
    "password123", "insert", "replace", "todo", "null", "none", "undefined",
    "1234567", "abcdefg", "qwerty", "foobar", "test",
)  # fmt: skip


# Whole values that stand for "a password goes here" in docs and samples.
_PLACEHOLDER_VALUES = frozenset(
    {
        "password", "pass", "passwd", "pwd", "pw", "secret", "changeme", "admin",
        "root", "user", "username", "test", "example", "null", "none", "foo",
        "bar", "mypassword", "yourpassword", "token", "apikey", "api_key",
    }
)  # fmt: skip
_PLACEHOLDER_FRAGMENTS = (
    "<", ">", "${", "{{", "%(", "$(", "example", "xxxx", "****", "your",
    "placeholder", "changeme", "redacted", "dummy",
)  # fmt: skip


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def is_luhn_valid(text: str) -> bool:
    """Card numbers: 12-19 digits whose Luhn checksum is 0."""
    digits = _digits(text)
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value

    return total % 10 == 0


def is_iban_valid(text: str) -> bool:
    """IBAN: known country, that country's length, ISO 7064 mod 97 == 1."""
    compact = "".join(text.split()).replace("-", "").upper()
    if not compact.isascii() or not compact.isalnum():
        return False
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)

    return int(number) % 97 == 1


def is_ssn_valid(text: str) -> bool:
    """US SSN: nine digits outside the ranges the SSA never issues."""
    digits = _digits(text)
    if len(digits) != 9:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area >= "900":
        return False
    if group == "00" or serial == "0000":
        return False

    # Numbers published in advertising and documentation, never valid.
    return digits not in ("078051120", "219099999", "123456789")


def is_ipv4_valid(text: str) -> bool:
    """Dotted quad, each octet 0-255 without ambiguous leading zeros."""
    octets = text.split(".")
    if len(octets) != 4:
        return False
    for octet in octets:
        if not octet.isdigit() or not octet.isascii() or len(octet) > 3:
            return False
        if int(octet) > 255 or (len(octet) > 1 and octet[0] == "0"):
            return False

    return True


def is_ipv6_valid(text: str) -> bool:
    """An address the standard library parses, with at least two groups."""
    if text.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False

    return True


def is_phone_plausible(text: str) -> bool:
    """7-15 digits (E.164 allows 15), not one repeated digit."""
    digits = _digits(text)

    return 7 <= len(digits) <= 15 and len(set(digits)) > 2


def is_not_placeholder(text: str) -> bool:
    """A concrete value, not ``password``, ``<pass>`` or ``${DB_PASSWORD}``."""
    value = text.strip().strip("'\"`")
    lowered = value.lower()
    if len(value) < 4 or lowered in _PLACEHOLDER_VALUES:
        return False

    return not any(fragment in lowered for fragment in _PLACEHOLDER_FRAGMENTS)


def _shannon_bits(text: str) -> float:
    counts = Counter(text)
    size = len(text)

    return -sum(n / size * math.log2(n / size) for n in counts.values())


def _char_classes(text: str) -> int:
    return sum(
        (
            any(c.islower() for c in text),
            any(c.isupper() for c in text),
            any(c.isdigit() for c in text),
            any(not c.isalnum() for c in text),
        )
    )


def is_secret_like(text: str) -> bool:
    """A value that looks random rather than like a word or a placeholder."""
    value = text.strip().strip("'\"`")
    if len(value) < 8:
        return False
    lowered = value.lower()
    if any(marker in lowered for marker in _PLACEHOLDER_MARKERS):
        return False
    if _char_classes(value) < 2:
        return False

    return _shannon_bits(value) >= 3.0


def is_jwt_like(text: str) -> bool:
    """Three base64url parts whose header decodes to JSON naming an ``alg``."""
    header = text.split(".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    except (ValueError, binascii.Error):
        return False

    return decoded.lstrip().startswith(b"{") and b'"alg"' in decoded


_BLACK_FLAG = "\U0001F3F4"
_CANCEL_TAG = "\U000E007F"
_FLAG_TAGS = frozenset(
    chr(cp) for cp in (*range(0xE0030, 0xE003A), *range(0xE0061, 0xE007B))
)


def is_smuggled_tag_run(text: str) -> bool:
    """Tag characters, unless they form one emoji subdivision flag.

    A flag such as England is U+1F3F4, two to seven tag letters or digits,
    then CANCEL TAG (U+E007F); any other tag run carries hidden text.
    """
    if not text.startswith(_BLACK_FLAG):
        return True
    tags = text[1:]
    if not tags.endswith(_CANCEL_TAG):
        return True
    letters = tags[:-1]

    return not (2 <= len(letters) <= 7 and all(c in _FLAG_TAGS for c in letters))


VALIDATORS: Mapping[str, Validator] = MappingProxyType(
    {
        "luhn": is_luhn_valid,
        "iban_mod97": is_iban_valid,
        "ssn": is_ssn_valid,
        "ipv4": is_ipv4_valid,
        "ipv6": is_ipv6_valid,
        "phone": is_phone_plausible,
        "entropy": is_secret_like,
        "not_placeholder": is_not_placeholder,
        "jwt": is_jwt_like,
        "smuggled_tags": is_smuggled_tag_run,
    }
)
SUPPORTED_VALIDATORS: frozenset[str] = frozenset(VALIDATORS)
