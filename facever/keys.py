"""API keys of the HTTP service: created once, stored hashed, scoped, revocable.

A key reads ``fv_<prefix>_<secret>``: ``prefix`` is 12 lowercase hex characters, the public part
used to find the key's row with one indexed lookup; ``secret`` is :func:`secrets.token_urlsafe`
of 32 random bytes (256 bits, 43 characters). The database keeps only the prefix and the hex
SHA-256 of the whole key string; the plaintext is returned once by :meth:`KeyStore.create`.

>>> from facever.store import Database
>>> keys = KeyStore(Database("sqlite:///gallery.db"))            # doctest: +SKIP
>>> key, token = keys.create("kiosk", ["identify"], rate_per_min=60)   # doctest: +SKIP
>>> keys.authenticate(token).allows("identify")                  # doctest: +SKIP
True

Scopes: ``verify``, ``identify``, ``enroll`` and ``admin`` (which allows everything). Creating and
revoking a key writes an audit row (``key_create`` / ``key_revoke``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from facever.errors import KeyExistsError, KeyNotFoundError
from facever.store import audit_repo
from facever.store.schema import ApiKeyRow, utcnow
from facever.store.session import Database, WriteConflict

#: Every scope a key can hold; ``admin`` allows everything.
SCOPES = ("verify", "identify", "enroll", "admin")

#: Key names: 1-64 ASCII letters, digits, ``.``, ``_`` or ``-``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)

#: Highest accepted rate limit, requests per minute.
MAX_RATE_PER_MIN = 1_000_000

_PREFIX_HEX_BYTES = 6          # 12 hex characters
_SECRET_BYTES = 32             # 256 bits
_TOKEN_PATTERN = re.compile(r"fv_([0-9a-f]{12})_([A-Za-z0-9_-]{16,128})", re.ASCII)
_MAX_TOKEN_CHARS = 3 + 12 + 1 + 128
_DUMMY_HASH = hashlib.sha256(b"facever: no such key").hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A stored API key, without its secret.

    ``scopes`` is a subset of :data:`SCOPES`; ``rate_per_min`` is requests per minute (None:
    unlimited); ``created`` and ``revoked`` are UTC (``revoked`` None while the key is valid).
    """

    name: str
    prefix: str
    scopes: frozenset[str]
    rate_per_min: int | None
    created: datetime
    revoked: datetime | None

    @property
    def active(self) -> bool:
        """True while the key is not revoked."""
        return self.revoked is None

    def allows(self, scope: str) -> bool:
        """Whether this key may use ``scope`` (``admin`` allows every scope). Revocation is not
        checked here: :meth:`KeyStore.authenticate` never returns a revoked key."""
        return "admin" in self.scopes or scope in self.scopes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (never the secret nor its hash): name, prefix, sorted scopes, rate, ISO times."""
        return {"name": self.name, "prefix": self.prefix, "scopes": sorted(self.scopes),
                "rate_per_min": self.rate_per_min, "created": self.created.isoformat(),
                "revoked": self.revoked.isoformat() if self.revoked is not None else None}

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> "ApiKey":
        """The key of a database row."""
        return cls(name=row.name, prefix=row.prefix, scopes=frozenset(s for s in row.scopes.split(",") if s),
                   rate_per_min=row.rate_per_min, created=audit_repo.as_utc(row.created),
                   revoked=audit_repo.as_utc(row.revoked) if row.revoked is not None else None)


# -- validation ---------------------------------------------------------------------------------
def check_key_name(name: str) -> str:
    """Validate a key name (1-64 letters, digits, ``.``, ``_``, ``-``); return it. Raises ValueError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"invalid key name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return name


def check_scopes(scopes: str | Iterable[str]) -> frozenset[str]:
    """Scopes from an iterable or a comma-separated string (spaces ignored); at least one, all known.

    Raises ValueError.
    """
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    if not all(isinstance(s, str) for s in items):
        raise ValueError("scopes must be strings")
    wanted = frozenset(s.strip() for s in items if s.strip())
    if not wanted:
        raise ValueError(f"give at least one scope ({', '.join(SCOPES)})")
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}: choose from {', '.join(SCOPES)}")
    return wanted


def check_rate(rate_per_min: int | None) -> int | None:
    """Validate a rate limit: None (unlimited) or a whole number of requests per minute in
    [1, :data:`MAX_RATE_PER_MIN`]. Raises ValueError."""
    if rate_per_min is None:
        return None
    if isinstance(rate_per_min, bool) or not isinstance(rate_per_min, int) \
            or not 1 <= rate_per_min <= MAX_RATE_PER_MIN:
        raise ValueError(f"rate must be a whole number of requests per minute from 1 to {MAX_RATE_PER_MIN:,}, "
                         f"got {rate_per_min!r}")
    return int(rate_per_min)


def hash_key(token: str) -> str:
    """Hex SHA-256 of a whole key string (UTF-8)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- the store ----------------------------------------------------------------------------------
class KeyStore:
    """API keys kept in a gallery database.

    Args:
        db: the gallery :class:`~facever.store.session.Database` (schema revision 0002 or newer).
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, scopes: str | Iterable[str], rate_per_min: int | None = None,
               actor: str = "cli") -> tuple[ApiKey, str]:
        """Create a key; return it and its plaintext ``fv_<prefix>_<secret>`` (shown this once only).

        Args:
            name: unique key name (1-64 letters, digits, ``.``, ``_``, ``-``); names of revoked keys
                are not reused.
            scopes: a subset of :data:`SCOPES` (iterable, or comma-separated string), non-empty.
            rate_per_min: requests per minute allowed (None: unlimited).
            actor: who creates it, for the audit log.
        Raises:
            ValueError: invalid name, scopes or rate.
            KeyExistsError: the name is taken.
        """
        name = check_key_name(name)
        wanted = check_scopes(scopes)
        rate = check_rate(rate_per_min)
        scope_text = ",".join(sorted(wanted))
        for attempt in range(3):
            prefix = secrets.token_hex(_PREFIX_HEX_BYTES)
            token = f"fv_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
            try:
                with self.db.write() as session:
                    if audit_repo.key_by_name(session, name) is not None:
                        raise _exists(name)
                    row = audit_repo.add_key(session, name, prefix, hash_key(token), scope_text, rate)
                    audit_repo.add_audit(session, actor, "key_create", None, (),
                                         {"name": name, "scopes": sorted(wanted)})
                    return ApiKey.from_row(row), token
            except WriteConflict:  # a race on the name, or (2^-48) on the prefix
                with self.db.read() as session:
                    if audit_repo.key_by_name(session, name) is not None:
                        raise _exists(name) from None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self.db.read() as session:
            return [ApiKey.from_row(r) for r in audit_repo.list_keys(session)]

    def get(self, name: str) -> ApiKey:
        """The key called ``name`` (revoked or not). Raises :class:`KeyNotFoundError`."""
        with self.db.read() as session:
            row = audit_repo.key_by_name(session, name) if isinstance(name, str) else None
            if row is None:
                raise KeyNotFoundError(f"no API key named {name!r}")
            return ApiKey.from_row(row)

    def revoke(self, name: str, actor: str = "cli") -> ApiKey:
        """Revoke a key: it stops working on the next request, in every process. Revoking a revoked
        key changes nothing. Returns the key. Raises :class:`KeyNotFoundError` for an unknown name."""
        with self.db.write() as session:
            row = audit_repo.key_by_name(session, name) if isinstance(name, str) else None
            if row is None:
                raise KeyNotFoundError(f"no API key named {name!r}")
            if row.revoked is None:
                row.revoked = utcnow()
                session.flush()
                audit_repo.add_audit(session, actor, "key_revoke", None, (),
                                     {"name": row.name, "scopes": sorted(s for s in row.scopes.split(",") if s)})
            return ApiKey.from_row(row)

    def authenticate(self, token: str) -> ApiKey | None:
        """The valid key a client presented, or None (malformed, unknown or revoked).

        One indexed SELECT by prefix, then the SHA-256 digests compared in constant time. Never
        raises for any input (non-strings, huge or non-ASCII strings give None); database failures
        still raise :class:`~facever.errors.DatabaseError`.
        """
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS or not token.isascii():
            return None
        match = _TOKEN_PATTERN.fullmatch(token)
        if match is None:
            return None
        with self.db.read() as session:
            row = audit_repo.key_by_prefix(session, match.group(1))
            stored = row.key_hash if row is not None else _DUMMY_HASH
            ok = hmac.compare_digest(hash_key(token).encode("ascii"), stored.encode("ascii"))
            if row is None or not ok or row.revoked is not None:
                return None
            return ApiKey.from_row(row)


def _exists(name: str) -> KeyExistsError:
    return KeyExistsError(f"an API key named {name!r} already exists (names of revoked keys are not reused)")
