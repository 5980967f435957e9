"""Phone number checks backed by the ``phonenumbers`` library (libphonenumber data).

RE2 finds candidates; these decide whether a candidate can be a phone number
at all: the right number of digits for its country, a country code that
exists. A number that starts with ``+`` or ``00`` is read in the country its
calling code names; any other number must fit one of ``DEFAULT_REGIONS``.

"Possible" (length and country code) is the bar, not "valid" (an allocated
range): test and fiction numbers such as 555-0100 or UK 07700 900xxx are not
allocated, yet they are exactly what people paste as phone numbers.
"""

from __future__ import annotations

import phonenumbers

__all__ = ["DEFAULT_REGIONS", "is_phone_number"]

# Regions tried for numbers without a country code: the largest
# English-speaking markets, then the EU's largest, then India, Brazil, Japan.
DEFAULT_REGIONS = (
    "US", "GB", "CA", "AU", "DE", "FR", "ES", "IT", "NL", "IN", "BR", "JP",
)  # fmt: skip
_MIN_DIGITS = 7
_MAX_DIGITS = 15  # E.164


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _possible_in(text: str, region: str | None) -> bool:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_possible_number(number))


def is_phone_number(text: str) -> bool:
    """A possible phone number: international by its +CC, else in a default region."""
    digits = _digits(text)
    if not _MIN_DIGITS <= len(digits) <= _MAX_DIGITS or len(set(digits)) <= 2:
        return False
    stripped = text.strip()
    if stripped.startswith("00"):
        stripped = "+" + stripped[2:]
    if stripped.startswith("+"):
        return _possible_in(stripped, None)

    return any(_possible_in(stripped, region) for region in DEFAULT_REGIONS)
