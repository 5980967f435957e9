"""Named checks that a pattern match really is what the rule claims.

A validator takes the matched text and returns True to keep the finding.
Patterns find candidates cheaply; validators remove the look-alikes that no
regular expression can tell apart (checksums, reserved ranges, placeholders).

Known shortcomings of the secret checks: a random value whose text before a
"(" is all letters and digits (``ab12(x``) reads as a function call, and one
that starts with "/" reads as a path, so both are dropped; a value holding
the word "password" counts as a placeholder even when someone really uses it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import math
import string
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from types import MappingProxyType

from service.engine.phones import is_phone_number

__all__ = [
    "SUPPORTED_VALIDATORS",
    "VALIDATORS",
    "Validator",
    "is_basic_auth_credential",
    "is_bearer_token",
    "is_crc32_base62_token",
    "is_generic_secret",
    "is_iban_valid",
    "is_ipv4_valid",
    "is_ipv6_valid",
    "is_jwt_like",
    "is_luhn_valid",
    "is_not_placeholder",
    "is_payment_card",
    "is_password_value",
    "is_prose_password",
    "is_phone_number",
    "is_phone_plausible",
    "is_secret_like",
    "is_smuggled_tag_run",
    "is_ssn_valid",
    "is_token_not_placeholder",
    "is_unverified_crc32_token",
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
    if text.isascii():  # the common case: one C-level pass over bytes
        return text.encode().translate(None, _NOT_ASCII_DIGITS).decode()
    return "".join(char for char in text if char.isdigit())


# Every byte that is not an ASCII digit (deleted by bytes.translate).
_NOT_ASCII_DIGITS = bytes(c for c in range(256) if not 48 <= c <= 57)
# Luhn's doubled digit, already reduced: 0 2 4 6 8 1 3 5 7 9.
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
# The same as a byte table: ASCII digit -> ASCII digit of its doubled value.
_DOUBLED_ASCII = bytes(
    48 + _DOUBLED[c - 48] if 48 <= c <= 57 else c for c in range(256)
)


def is_luhn_valid(text: str) -> bool:
    """Card numbers: 12-19 digits whose Luhn checksum is 0."""
    digits = _digits(text)
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    if digits.isascii():
        # Summing bytes is one C loop; each ASCII digit counts 48 too much.
        reverse = digits[::-1].encode()
        total = sum(reverse[0::2]) + sum(reverse[1::2].translate(_DOUBLED_ASCII))
        return (total - 48 * len(reverse)) % 10 == 0
    values = [int(char) for char in reversed(digits)]
    total = sum(values[0::2]) + sum(_DOUBLED[v] for v in values[1::2])

    return total % 10 == 0


# Issuer prefixes (IIN ranges, as published by the networks) and the card
# lengths each issues: (lowest prefix, highest prefix, lengths).
_CARD_ISSUERS: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset(range(16, 20))),  # Discover
    (644, 649, frozenset(range(16, 20))),
    (65, 65, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (1800, 1800, frozenset({15})),  # JCB, 15-digit legacy
    (2131, 2131, frozenset({15})),
    (300, 305, frozenset(range(14, 20))),  # Diners Club
    (36, 36, frozenset(range(14, 20))),
    (38, 39, frozenset(range(14, 20))),
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (81, 81, frozenset(range(16, 20))),
    (50, 50, frozenset(range(12, 20))),  # Maestro
    (56, 69, frozenset(range(12, 20))),
)


def _issued(digits: str) -> bool:
    for low, high, lengths in _CARD_ISSUERS:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False


def is_payment_card(text: str) -> bool:
    """A card number: Luhn-valid, with a known issuer prefix and that issuer's length."""
    digits = _digits(text)

    return is_luhn_valid(digits) and _issued(digits)


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
    terms = _entropy_terms(len(text))

    return -sum(terms[n] for n in Counter(text).values())


@functools.lru_cache(maxsize=256)
def _entropy_terms(size: int) -> tuple[float, ...]:
    """``n / size * log2(n / size)`` for n = 1..size (index n; 0 unused)."""
    return (0.0, *(n / size * math.log2(n / size) for n in range(1, size + 1)))


_ASCII_LOWER = frozenset(string.ascii_lowercase)
_ASCII_UPPER = frozenset(string.ascii_uppercase)
_ASCII_DIGITS = frozenset(string.digits)
_ASCII_ALNUM = _ASCII_LOWER | _ASCII_UPPER | _ASCII_DIGITS


def _char_classes(text: str) -> int:
    if text.isascii():  # set operations instead of four per-character loops
        chars = set(text)
        return (
            (not chars.isdisjoint(_ASCII_LOWER))
            + (not chars.isdisjoint(_ASCII_UPPER))
            + (not chars.isdisjoint(_ASCII_DIGITS))
            + (not chars <= _ASCII_ALNUM)
        )
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


# -- secrets: checksums and placeholder checks for credential formats --------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CRC32_TOKEN_BODY = 30  # random part; then 6 base-62 digits of its CRC32
_TOKEN_MARKERS = (
    "example", "xxxx", "****", "....", "<", ">", "${", "{{", "your",
    "placeholder", "redacted", "dummy", "changeme",
)  # fmt: skip
_SEQUENCES = ("0123456789", "abcdefghijklmnopqrstuvwxyz")
_PASSWORD_WORDS = frozenset(
    {
        "password", "passwd", "pass", "pwd", "passphrase", "changeme",
        "changeit", "placeholder", "example", "sample", "dummy", "redacted",
        "hidden", "removed", "none", "null", "nil", "undefined", "empty",
        "true", "false", "yes", "no", "required", "optional", "string", "str",
        "text", "char", "varchar", "int", "integer", "bool", "boolean", "any",
        "object", "value", "input", "field", "type", "default", "mypassword",
        "yourpassword", "tbd", "todo", "fixme", "unknown", "n/a", "secret_here",
        "guest",
    }
)  # fmt: skip
_PASSWORD_MARKERS = (
    "${", "{{", "}}", "%(", "$(", "xxx", "***", "...", "your",
    "example", "placeholder", "changeme", "redacted", "process.env",
    "os.environ", "getenv", "password", "passwd",
)  # fmt: skip
# First characters of variable references and paths, not literal values:
# $VAR, %VAR%, #{interp}, #/json/ref, /path, &ref, .attr (string concatenation).
# A bare leading ``#`` is kept: ``Password=#gets0m3`` is a literal.
_REFERENCE_STARTS = ("$", "%", "#{", "#/", "/", "&", "\\", ".")
# ``<password>``, ``<your key>``: a bracketed name; a lone ``<`` or ``>`` is
# just a character of a random password.
_ANGLE_PLACEHOLDER = frozenset(string.ascii_lowercase + string.digits + " _-.")


def _has_run(text: str, length: int) -> bool:
    """Whether one character occurs ``length`` times in a row.

    Every run of ``length`` covers one position that is a multiple of
    ``length``, so only the characters there can form one.
    """
    return any(char * length in text for char in set(text[::length]))


# Every 8 characters in a row of a sequence: what ``_has_sequence`` looks for.
_SEQUENCE_PIECES = tuple(
    sequence[start : start + 8]
    for sequence in _SEQUENCES
    for start in range(len(sequence) - 8 + 1)
)


# Every 8 in a row of a sequence holds the pair starting at a multiple of 7:
# a text without any of those pairs holds no piece (most random tokens).
_SEQUENCE_PAIRS = tuple(
    sequence[start : start + 2]
    for sequence in _SEQUENCES
    for start in range(0, len(sequence) - 1, 7)
)


def _has_sequence(lowered: str) -> bool:
    if not any(pair in lowered for pair in _SEQUENCE_PAIRS):
        return False
    return any(piece in lowered for piece in _SEQUENCE_PIECES)


def is_token_not_placeholder(text: str) -> bool:
    """A provider token that is not ``xxxx``, ``EXAMPLE``, ``aaaa...`` or a run.

    Random tokens never hold six equal characters in a row, eight ascending
    ones, or only a handful of distinct characters; documentation values do.
    """
    value = text.strip().strip("'\"`")
    lowered = value.lower()
    if any(marker in lowered for marker in _TOKEN_MARKERS):
        return False
    if _has_run(value, 6) or _has_sequence(lowered):
        return False

    return len(set(value)) >= min(8, len(value) // 3)


def _crc32_base62(data: str) -> str:
    number = zlib.crc32(data.encode("ascii", "replace"))
    digits = ""
    while number:
        number, remainder = divmod(number, 62)
        digits = _BASE62[remainder] + digits
    return digits.rjust(6, "0")


def is_crc32_base62_token(text: str) -> bool:
    """GitHub-style token: 30 random base-62 characters, then 6 of their CRC32.

    GitHub's ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_`` tokens and npm's
    ``npm_`` tokens share this layout; the prefix is not part of the sum.
    """
    body = text.strip().rsplit("_", 1)[-1]
    if len(body) != _CRC32_TOKEN_BODY + 6 or not body.isascii() or not body.isalnum():
        return False

    return _crc32_base62(body[:_CRC32_TOKEN_BODY]) == body[_CRC32_TOKEN_BODY:]


def is_unverified_crc32_token(text: str) -> bool:
    """A token of the GitHub/npm shape whose checksum does not verify, yet looks
    random: reported by its own rule so a finding says whether it verified."""
    if is_crc32_base62_token(text):
        return False
    body = text.strip().rsplit("_", 1)[-1]

    return is_token_not_placeholder(body) and _char_classes(body) >= 2


def _is_call(value: str) -> bool:
    """``get_pw()``, ``os.getenv("X")``: a dotted name, then a parenthesis."""
    head, paren, _ = value.partition("(")
    name = head.replace("_", "").replace(".", "")
    return bool(paren) and name.isalnum()


def _is_reference(value: str) -> bool:
    """``env.DB_PASS``, ``DB_PASSWORD``, ``get_pw()``: code naming a value."""
    if value.startswith(_REFERENCE_STARTS) or "://" in value or _is_call(value):
        return True
    # ``config.db.pass`` is attribute access; a digit in a part means a token
    # such as a JWT (``eyJ0eXAi...``), whose parts are identifiers too.
    parts = value.split(".")
    if len(parts) > 1 and all(part.replace("_", "").isalpha() for part in parts):
        return True

    return "_" in value and value.isupper() and value.replace("_", "").isalnum()


def _has_angle_placeholder(lowered: str) -> bool:
    """``<password>`` or ``user:<pw>``: a word in angle brackets."""
    start = lowered.find("<")
    while start != -1:
        end = lowered.find(">", start + 1)
        if end == -1:
            return False
        if end > start + 1 and set(lowered[start + 1 : end]) <= _ANGLE_PLACEHOLDER:
            return True
        start = lowered.find("<", start + 1)
    return False


def is_password_value(text: str) -> bool:
    """A literal password: not a placeholder, a type name or a variable.

    Human-chosen passwords are short and low in entropy, so unlike ``entropy``
    this accepts ``Summer2024!``; it rejects what configs and docs put there
    instead (``changeme``, ``<password>``, ``${DB_PASS}``, ``env.PASSWORD``).
    """
    value = text.strip().strip("'\"`").strip()
    lowered = value.lower()
    if len(value) < 4 or lowered in _PASSWORD_WORDS or len(set(value)) == 1:
        return False
    if any(marker in lowered for marker in _PASSWORD_MARKERS):
        return False
    if _has_angle_placeholder(lowered):
        return False
    # A leading "+" is code between two string literals ("..." + expr + "...").
    return not value.startswith("+") and not _is_reference(value)



# Every byte that is not an ASCII lowercase letter (deleted by bytes.translate).
_NOT_ASCII_LOWER = bytes(c for c in range(256) if not 97 <= c <= 122)


def is_generic_secret(text: str) -> bool:
    """A value after ``api_key=``/``token:`` that looks random: ``entropy``,
    plus a digit and no code reference, which drops ``access_token_refresh``
    and ``#/definitions/token`` (random base62 of 16+ characters nearly always
    holds a digit)."""
    value = text.strip().strip("'\"`")
    if not is_secret_like(value) or _is_reference(value):
        return False
    # "a1b2c3d4-e5f6-g7h8" style fillers: the letters alone run a-b-c-d...
    if value.isascii():
        letters = value.lower().encode().translate(None, _NOT_ASCII_LOWER).decode()
        return not _has_sequence(letters) and not _ASCII_DIGITS.isdisjoint(value)
    letters = "".join(char for char in value.lower() if char.isalpha())
    if _has_sequence(letters):
        return False

    return any(char.isdigit() for char in value)

def is_prose_password(text: str) -> bool:
    """An unquoted password named in a sentence ("my password is X"): a literal
    password that also looks chosen, not a word: three character classes, or
    ten characters of two classes that look random ("incorrect", "required"
    and "version2" fail)."""
    value = text.strip().rstrip(".,;:!?)")
    if not is_password_value(value):
        return False
    classes = _char_classes(value)

    return classes >= 3 or (
        classes == 2 and len(value) >= 10 and _shannon_bits(value) >= 3.0
        and any(c.isdigit() for c in value) and any(c.isalpha() for c in value)
    )


def is_bearer_token(text: str) -> bool:
    """An ``Authorization: Bearer`` value: random-looking, not a reference.

    RFC 6750 sets no minimum length, so short opaque tokens
    (``mF_9.B5f-4.1JqM``) are allowed when they hold a digit; longer ones
    only need to look random.
    """
    value = text.strip().strip("'\"`")
    if not is_secret_like(value) or _is_reference(value):
        return False

    return len(value) >= 20 or any(char.isdigit() for char in value)


def is_basic_auth_credential(text: str) -> bool:
    """Base64 of ``user:password`` (HTTP Basic, Docker ``auths``), password real."""
    value = text.strip().strip("'\"")
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        plain = decoded.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    user, colon, password = plain.partition(":")
    if not colon or not user or not plain.isprintable():
        return False

    return is_password_value(password)


# Cisco IOS "type 7" reversible encoding: two decimal digits give the offset
# into this published constant key, then one hex byte per character XORed
# with the key (it is an obfuscation, so the password is as good as plain).
_CISCO_TYPE7_KEY = "dsfd;kfoA,.iyewrkldJKDHSUBsgvca69834ncxv9873254k;fg87"


def is_cisco_type7_password(text: str) -> bool:
    """A Cisco type 7 string that decodes to a printable password: seed
    00-52, an even number of hex digits after it, and not a placeholder."""
    value = text.strip()
    if len(value) < 6 or len(value) % 2 or not value[:2].isdigit():
        return False
    seed = int(value[:2])
    if seed >= len(_CISCO_TYPE7_KEY):
        return False
    try:
        encoded = bytes.fromhex(value[2:])
    except ValueError:
        return False
    key = _CISCO_TYPE7_KEY
    plain = "".join(
        chr(byte ^ ord(key[(seed + index) % len(key)]))
        for index, byte in enumerate(encoded)
    )
    if not all(" " < char < "\x7f" for char in plain):
        return False
    return is_password_value(plain)


def is_ldap_sha_hash(text: str) -> bool:
    """The base64 part of an LDAP/htpasswd ``{SHA}`` or ``{SSHA}`` hash: it
    decodes to a 20-byte SHA-1 digest, plus a salt for ``{SSHA}``."""
    value = text.strip()
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(digest) >= 20 and len(set(digest)) > 8


# Words that follow a flag's name when a sentence talks about the flag
# ("the -storepass option", "--passphrase flag is insecure").
_FLAG_PROSE_WORDS = frozenset(
    {
        "option", "options", "flag", "flags", "argument", "arguments", "args",
        "parameter", "parameters", "param", "params", "switch", "switches",
        "followed", "follows", "takes", "then", "instead", "works", "prompts",
        "prompt", "only", "must", "should", "could", "would", "might", "also",
        "here", "there", "this", "that", "these", "those", "which", "where",
        "when", "with", "from", "into", "setting", "sets", "values", "field",
        "variable", "file", "command", "first", "next", "above", "below",
        "later", "again", "interactively", "directly", "explicitly",
        "plaintext", "cleartext", "is", "and", "the", "for", "will", "does",
        "argument.", "option.", "flag.", "before", "after", "without",
    }
)  # fmt: skip


def is_cli_flag_password(text: str) -> bool:
    """A password given to a command-line flag: ``password_value``, and not
    the next word of a sentence about the flag (option, flag, followed...)."""
    value = text.strip().strip("'\"`").rstrip(".,;:")
    if value.lower() in _FLAG_PROSE_WORDS:
        return False
    return is_password_value(text)


VALIDATORS: Mapping[str, Validator] = MappingProxyType(
    {
        "luhn": is_luhn_valid,
        "iban_mod97": is_iban_valid,
        "ssn": is_ssn_valid,
        "ipv4": is_ipv4_valid,
        "ipv6": is_ipv6_valid,
        "phone": is_phone_number,
        "card": is_payment_card,
        "entropy": is_secret_like,
        "not_placeholder": is_not_placeholder,
        "jwt": is_jwt_like,
        "smuggled_tags": is_smuggled_tag_run,
        "token": is_token_not_placeholder,
        "github_checksum": is_crc32_base62_token,
        "github_unverified": is_unverified_crc32_token,
        "npm_checksum": is_crc32_base62_token,
        "npm_unverified": is_unverified_crc32_token,
        "password_value": is_password_value,
        "basic_auth": is_basic_auth_credential,
        "generic_secret": is_generic_secret,
        "bearer_token": is_bearer_token,
        "prose_password": is_prose_password,
        "cisco_type7": is_cisco_type7_password,
        "ldap_sha_hash": is_ldap_sha_hash,
        "cli_flag_password": is_cli_flag_password,
    }
)
SUPPORTED_VALIDATORS: frozenset[str] = frozenset(VALIDATORS)
