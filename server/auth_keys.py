"""API keys: the TOML file the gateway reads (``--auth-file``), hashed, never in clear.

::

    [keys.alice]
    hash = "sha256$<salt hex>$<digest hex>"   # sha256(salt + key); the key itself is not stored
    models = ["shapes"]                       # absent or empty: every model
    rate = 20.0                               # requests per second (token bucket); 0: unlimited
    burst = 40                                # bucket size; 0: max(1, rate)
    max_inflight = 8                          # calls in flight on one gateway; 0: unlimited
    admin = false                             # may overwrite / delete others' directions

Keys are 256-bit random strings (``le_`` + 43 url-safe characters), so one salted SHA-256
is enough; a slow password hash (scrypt, argon2) protects low-entropy secrets, which
these are not, and would cost every request milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from latentedit.validate import NAME_RE

KEY_PREFIX = "le_"


def hash_key(key: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.sha256(salt + key.encode()).hexdigest()
    return f"sha256${salt.hex()}${digest}"


def _matches(key: str, stored: str) -> bool:
    scheme, _, rest = stored.partition("$")
    salt_hex, _, digest = rest.partition("$")
    if scheme != "sha256" or not digest:
        return False
    candidate = hash_key(key, bytes.fromhex(salt_hex)).rpartition("$")[2]
    return hmac.compare_digest(candidate, digest)


@dataclass(frozen=True)
class ApiKey:
    name: str
    hash: str
    models: frozenset[str] = frozenset()  # empty: every model
    rate: float = 0.0  # requests per second; 0: unlimited
    burst: float = 0.0  # token bucket size; 0: max(1, rate)
    max_inflight: int = 0  # 0: unlimited
    admin: bool = False

    def may_use(self, model: str) -> bool:
        return not self.models or model in self.models

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"hash": self.hash}
        if self.models:
            out["models"] = sorted(self.models)
        out.update(rate=self.rate, burst=self.burst, max_inflight=self.max_inflight)
        out["admin"] = self.admin
        return out


@dataclass
class KeyRing:
    keys: dict[str, ApiKey] = field(default_factory=dict)
    _seen: dict[bytes, ApiKey | None] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        """Read a key file; ValueError names what is wrong in it."""
        with open(path, "rb") as f:
            data = tomllib.load(f)
        ring = cls()
        for name, entry in (data.get("keys") or {}).items():
            if not NAME_RE.match(name) or not isinstance(entry, dict) or "hash" not in entry:
                raise ValueError(f"{path}: [keys.{name}] needs a valid name and a hash")
            ring.keys[name] = ApiKey(
                name=name,
                hash=str(entry["hash"]),
                models=frozenset(entry.get("models") or ()),
                rate=float(entry.get("rate", 0.0)),
                burst=float(entry.get("burst", 0.0)),
                max_inflight=int(entry.get("max_inflight", 0)),
                admin=bool(entry.get("admin", False)),
            )
        return ring

    def save(self, path: str | Path) -> None:
        """Write atomically, readable by the owner only."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        body = {"keys": {name: k.to_toml() for name, k in sorted(self.keys.items())}}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            tomli_w.dump(body, f)
        os.replace(tmp, path)

    def add(
        self,
        name: str,
        models: list[str] | None = None,
        rate: float = 0.0,
        burst: float = 0.0,
        max_inflight: int = 0,
        admin: bool = False,
    ) -> str:
        """Create (or replace) key ``name``; returns the new key (shown once, stored hashed)."""
        if not NAME_RE.match(name):
            raise ValueError("key names are 1-128 of letters, digits, '_', '.', '-'")
        if rate < 0 or burst < 0 or max_inflight < 0:
            raise ValueError("rate, burst and max_inflight must be >= 0")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.keys[name] = ApiKey(
            name, hash_key(key), frozenset(models or ()), rate, burst, max_inflight, admin
        )
        self._seen.clear()
        return key

    def authenticate(self, key: str) -> ApiKey | None:
        """The key's entry, or None. Remembers answers by the key's plain SHA-256."""
        fingerprint = hashlib.sha256(key.encode()).digest()
        if fingerprint in self._seen:
            return self._seen[fingerprint]
        found = next((k for k in self.keys.values() if _matches(key, k.hash)), None)
        if len(self._seen) >= 4096:  # bounded: garbage keys must not grow it forever
            self._seen.clear()
        self._seen[fingerprint] = found
        return found
