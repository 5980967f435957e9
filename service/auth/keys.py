"""API keys: how they are made, hashed, stored and looked up.

A key is ``gr_`` plus 32 random bytes in URL-safe base64. Only its SHA-256
is ever stored (the keys file holds ``sha256:<hex>``). A plain hash suffices
because keys are random with 256 bits of entropy: there is nothing to
guess, so a slow password hash would only cost time on every call.

Lookup is a dict lookup by the digest, then a constant-time comparison of
the stored and the computed digest. The dict lookup's timing depends on the
digest, never on the key; learning digest bits does not help to forge a key.

The keys file is read once at start-up; changing it needs a restart (or a
rolling restart of the pods).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from service.errors import SettingsError
from service.types import Principal

__all__ = [
    "KEY_ID_CHARS",
    "KEY_PREFIX",
    "SCOPES",
    "ApiKey",
    "KeyStore",
    "bearer_token",
    "hash_key",
    "key_id",
    "load_keys",
    "new_key",
]

KEY_PREFIX = "gr_"
KEY_ID_CHARS = 12  # hex characters of the digest recorded as key_id
SCOPES = frozenset({"check", "admin"})
_HASH_PREFIX = "sha256:"


def hash_key(key: str) -> str:
    """The stored form of a key: ``sha256:<64 hex>``."""
    return _HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def key_id(digest: str) -> str:
    """The short, recordable name of a key: a prefix of its hash."""
    return digest.removeprefix(_HASH_PREFIX)[:KEY_ID_CHARS]


def new_key() -> str:
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return KEY_PREFIX + raw


def bearer_token(authorization: str) -> str:
    """The token of an ``authorization`` value; "" when it is not a Bearer one."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One entry of the keys file (no key, only its hash)."""

    hash: str
    name: str
    team: str
    tenant: str
    scopes: frozenset[str]
    rate_per_s: float | None = None  # None: GUARDRAIL_RATE_LIMIT_PER_S

    @property
    def principal(self) -> Principal:
        return Principal(
            key_id=key_id(self.hash),
            team=self.team,
            tenant=self.tenant,
            scopes=self.scopes,
        )


def _entry(index: int, raw: object) -> ApiKey:
    where = f"keys[{index}]"
    if not isinstance(raw, Mapping):
        raise SettingsError(f"API keys file: {where} is not a mapping")
    digest = str(raw.get("hash", "")).strip().lower()
    if not digest.startswith(_HASH_PREFIX):
        digest = _HASH_PREFIX + digest
    hex_part = digest.removeprefix(_HASH_PREFIX)
    if len(hex_part) != 64 or any(c not in "0123456789abcdef" for c in hex_part):
        raise SettingsError(f"API keys file: {where}.hash is not a SHA-256 hex digest")
    scopes = raw.get("scopes", [])
    if isinstance(scopes, str):
        scopes = [s for s in scopes.replace(",", " ").split() if s]
    unknown = set(scopes) - SCOPES
    if not scopes or unknown:
        raise SettingsError(
            f"API keys file: {where}.scopes must be a non-empty subset of "
            f"{sorted(SCOPES)}; got {sorted(map(str, scopes))}"
        )
    rate = raw.get("rate_per_s")
    return ApiKey(
        hash=digest,
        name=str(raw.get("name") or raw.get("key_id") or key_id(digest)),
        team=str(raw.get("team", "")),
        tenant=str(raw.get("tenant", "")),
        scopes=frozenset(map(str, scopes)),
        rate_per_s=float(rate) if rate is not None else None,
    )


class KeyStore:
    """The configured keys, by digest."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._by_digest: dict[str, ApiKey] = {}
        for key in keys:
            if key.hash in self._by_digest:
                raise SettingsError(f"API keys file: key {key.name!r} is listed twice")
            self._by_digest[key.hash] = key

    def __len__(self) -> int:
        return len(self._by_digest)

    def find(self, token: str) -> ApiKey | None:
        """The entry of a presented key, or None."""
        if not token:
            return None
        digest = hash_key(token)
        entry = self._by_digest.get(digest)
        if entry is None or not hmac.compare_digest(entry.hash, digest):
            return None
        return entry


def load_keys(path: Path) -> KeyStore:
    """Read a YAML or JSON keys file: a list of entries, or ``{keys: [...]}``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"GUARDRAIL_API_KEYS_FILE={str(path)!r}: {exc.strerror}"
        ) from None
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SettingsError(f"GUARDRAIL_API_KEYS_FILE={str(path)!r}: {exc}") from None
    if isinstance(document, Mapping):
        document = document.get("keys")
    if not isinstance(document, list):
        raise SettingsError(
            f"GUARDRAIL_API_KEYS_FILE={str(path)!r}: expected a list of keys or {{keys: [...]}}"
        )
    return KeyStore(_entry(i, raw) for i, raw in enumerate(document))
