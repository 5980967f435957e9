"""Words near a match that raise or lower confidence in a PII finding.

Numbers are ambiguous: "build 10.4.2.1" is not an IP address to report,
"order # 4111 1111 1111 1111" may be a test card in an order form, "ISBN
978-0-306-40615-7" is not a phone number. After a rule's validator accepts a
match, the check looks at the ``WINDOW`` bytes before it (lower-cased):

* a *lowering* word there and no *raising* word: the finding is dropped;
* a raising word there: the finding stays, whatever else is near.

The words belong to the validator the rule names (``luhn``, ``card``,
``phone``, ``ssn``, ``ipv4``, ``ipv6``, ``iban_mod97``), so every rule that
uses the validator, built-in or registered, gets the same check. Raising
words also appear in the patterns of the context rules of ``packs/pii.yaml``
(``phone-in-context``, the SSN "ssn 123456789" branch): a weak candidate
such as "467 3395" is reported only when such a word precedes it.

Known shortcoming: the word lists are code, not pack data (RuleSpec has no
field for them), and only the text before a match is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["WINDOW", "ContextCheck", "context_check"]

WINDOW = 32

_CARD_RAISE = (
    "card", "visa", "mastercard", "amex", "credit", "debit", "cc ", "payment",
    "pay ",
)  # fmt: skip
_CARD_LOWER = (
    "isbn", "order", "invoice", "tracking", "serial", "imei", "sku", "barcode",
)  # fmt: skip
_PHONE_RAISE = (
    "phone", "tel", "call", "mobile", "cell", "fax", "contact", "sms", "whatsapp",
)  # fmt: skip
_SSN_RAISE = ("ssn", "social security")
_SSN_LOWER = ("order", "invoice", "tracking", "isbn", "phone", "tel")
_PHONE_LOWER = (
    "version", "build", "isbn", "order", "invoice", "serial", "ticket", "ref",
    "tracking", "iban", "routing", "account", "card", "ssn", "zip", "postcode",
)  # fmt: skip
_IP_RAISE = ("ip", "addr", "host", "server", "client", "gateway", "dns", "subnet")
_IP_LOWER = ("version", "build", "release", "ver.", " v", "oid", "section", "chapter")


@dataclass(frozen=True, slots=True)
class ContextCheck:
    """Raising and lowering words for one validator."""

    raising: tuple[bytes, ...]
    lowering: tuple[bytes, ...]

    def keeps(self, data: bytes, start: int) -> bool:
        """Whether a match at ``start`` of ``data`` survives its context."""
        before = data[max(0, start - WINDOW) : start].lower()
        if any(word in before for word in self.raising):
            return True

        return not any(word in before for word in self.lowering)


def _check(raising: tuple[str, ...], lowering: tuple[str, ...]) -> ContextCheck:
    encoded = (tuple(word.encode() for word in words) for words in (raising, lowering))
    return ContextCheck(*encoded)


_CHECKS: Mapping[str, ContextCheck] = MappingProxyType(
    {
        "luhn": _check(_CARD_RAISE, _CARD_LOWER),
        "card": _check(_CARD_RAISE, _CARD_LOWER),
        "phone": _check(_PHONE_RAISE, _PHONE_LOWER),
        "ssn": _check(_SSN_RAISE, _SSN_LOWER),
        "ipv4": _check(_IP_RAISE, _IP_LOWER),
        "ipv6": _check(_IP_RAISE, _IP_LOWER),
        "iban_mod97": _check(("iban", "account", "bank"), ()),
    }
)


def context_check(validator: str) -> ContextCheck | None:
    """The context check that goes with a validator name, if it has one."""
    return _CHECKS.get(validator)
