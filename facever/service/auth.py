"""API keys on every request: who is calling, and may they do this?

Keys come in ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (a key in the query string is
ignored). Each request looks its key up in the database (one indexed SELECT and a constant-time
digest comparison in :class:`facever.keys.KeyStore`), so a revocation takes effect on the very next
request in every worker. Scopes: ``verify``, ``identify``, ``enroll``, ``admin`` (admin allows all).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fastapi import Request

from facever.service.problems import Problem

#: The identity of every request when the service runs with ``--no-auth`` (loopback only).
LOCAL_KEY_NAME = "local"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request: key name and scopes (``rate_per_min`` per minute, None = no limit)."""

    name: str
    scopes: frozenset[str]
    rate_per_min: int | None = None

    def allows(self, scope: str) -> bool:
        """True when the key holds ``scope`` or ``admin``."""
        return scope in self.scopes or "admin" in self.scopes


def presented_key(request: Request) -> str | None:
    """The key a request carries in its headers (never the query string), or None."""
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def authenticate(request: Request) -> Caller:
    """The caller of ``request``; 401 ``unauthorized`` for a missing, unknown or revoked key."""
    state = request.app.state.service
    if state.settings.no_auth:
        caller = Caller(LOCAL_KEY_NAME, frozenset({"verify", "identify", "enroll", "admin"}))
    else:
        token = presented_key(request)
        if token is None:
            raise Problem(401, "unauthorized", "this route needs an API key: send 'Authorization: Bearer KEY' "
                          "(create one with `facever keys create NAME --scope ...`)",
                          headers={"WWW-Authenticate": "Bearer"})
        key = state.keys.authenticate(token)
        if key is None:
            raise Problem(401, "unauthorized", "the API key is not valid (unknown or revoked)",
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        caller = Caller(key.name, frozenset(key.scopes), key.rate_per_min)
    request.scope.setdefault("state", {})["key_name"] = caller.name
    state.rate.check(caller.name, caller.rate_per_min)
    return caller


def require(scope: str | None) -> Callable[[Request], Caller]:
    """A FastAPI dependency: the caller, who must hold ``scope`` (None: any valid key)."""

    def dependency(request: Request) -> Caller:
        caller = authenticate(request)
        if scope is not None and not caller.allows(scope):
            raise Problem(403, "forbidden", f"key {caller.name!r} lacks the {scope!r} scope this route needs "
                          f"(it has: {', '.join(sorted(caller.scopes)) or 'none'})", required_scope=scope)
        return caller

    dependency.__name__ = f"require_{scope or 'key'}"
    return dependency
