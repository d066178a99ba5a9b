"""``facever keys``: create, list and revoke the API keys of `facever serve` (stored hashed)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

import typer
from rich.markup import escape

from .common import DB_OPTION, JSON_OPTION, err, handle_errors, out, print_json

if TYPE_CHECKING:
    from facever.keys import KeyStore

app = typer.Typer(help="API keys of the HTTP service (facever serve): create, list, revoke.", no_args_is_help=True)


@contextmanager
def _key_store(db: Optional[str], create: bool) -> Iterator["KeyStore"]:
    """A :class:`facever.keys.KeyStore` on the gallery database, closed afterwards."""
    from facever.keys import KeyStore
    from facever.store import Database

    database = Database(db, create=create)
    try:
        yield KeyStore(database)
    finally:
        database.close()


def _rate_text(rate: Optional[int]) -> str:
    return "unlimited" if rate is None else f"{rate}/min"


@app.command("create")
def create(name: str = typer.Argument(..., help="Key name: 1-64 letters, digits, '.', '_' or '-' (never reused)."),
           scope: str = typer.Option(..., "--scope", "-s",
                                     help="Comma-separated scopes: verify, identify, enroll, admin (allows all)."),
           rate: Optional[int] = typer.Option(None, "--rate", help="Requests per minute allowed (default: unlimited)."),
           db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Create an API key and print it once: only its hash is stored, so it cannot be shown again.

    Creates the gallery database if there is none.

    Examples:

        facever keys create kiosk --scope identify --rate 60

        facever keys create admin-laptop --scope admin --json
    """
    with handle_errors(as_json):
        with _key_store(db, create=True) as keys:
            key, token = keys.create(name, scope, rate_per_min=rate, actor="cli")
    if as_json:
        print_json({"name": key.name, "key": token, "scopes": sorted(key.scopes), "rate_per_min": key.rate_per_min})
        return
    out.print(token, markup=False)
    err.print(f"created key {escape(key.name)} (scopes: {', '.join(sorted(key.scopes))}; "
              f"rate: {_rate_text(key.rate_per_min)})")
    err.print("store it now: it will not be shown again (only its hash is kept)", style="yellow")


@app.command("list")
def list_keys(db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List API keys (never their secrets): name, scopes, rate, created, revoked.

    Example:

        facever keys list --json
    """
    with handle_errors(as_json):
        with _key_store(db, create=False) as keys:
            listed = keys.list()
    if as_json:
        print_json({"keys": [k.to_dict() for k in listed]})
        return
    if not listed:
        out.print("no API keys yet (see `facever keys create --help`)")
        return
    width = max(len(k.name) for k in listed)
    for k in listed:
        state = f"revoked {k.revoked:%Y-%m-%d %H:%M} UTC" if k.revoked is not None else "active"
        out.print(f"{k.name:<{width}}  {','.join(sorted(k.scopes)):<28}  {_rate_text(k.rate_per_min):>10}  "
                  f"created {k.created:%Y-%m-%d %H:%M} UTC  {state}", markup=False)


@app.command("revoke")
def revoke(name: str = typer.Argument(..., help="The key's name."),
           db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Revoke an API key: requests with it fail from the next one on, in every server process.

    Revoking a revoked key changes nothing; its name stays taken.

    Example:

        facever keys revoke kiosk
    """
    with handle_errors(as_json):
        with _key_store(db, create=False) as keys:
            key = keys.revoke(name, actor="cli")
    if as_json:
        print_json(key.to_dict())
    else:
        out.print(f"revoked key {escape(key.name)} (since {key.revoked:%Y-%m-%d %H:%M:%S} UTC)")
