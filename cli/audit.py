"""``facever audit``: the audit log of the gallery database (every write: who, what, when)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Optional

import typer

from .common import DB_OPTION, JSON_OPTION, handle_errors, out, print_json

_AGE = re.compile(r"(\d+)\s*(s|m|min|h|d|w)", re.ASCII | re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO date or time (naive = UTC), or an age before ``now`` such as ``90m``,
    ``2h``, ``3d``, ``1w``. Returns an aware UTC datetime. Raises ValueError."""
    text = text.strip()
    age = _AGE.fullmatch(text)
    if age is not None:
        delta = timedelta(**{_UNITS[age.group(2).lower()]: int(age.group(1))})
        return (now or datetime.now(timezone.utc)) - delta
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since must be an ISO date or time (2026-12-01, 2026-12-01T09:30) or an age "
                         f"(90m, 2h, 3d, 1w), not {text!r}") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def audit(since: Optional[str] = typer.Option(None, "--since",
                                             help="Only events since an ISO date/time (UTC unless it says) "
                                                  "or an age: 90m, 2h, 3d, 1w."),
          limit: int = typer.Option(100, "--limit", min=0, help="Show at most this many events, newest first "
                                                                "(0: all)."),
          db: Optional[str] = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """Show the audit log, newest first: enrolments, removals, renames, reindexing, API keys.

    Each event names its actor: an API key (through `facever serve`), "cli" or "library" (Python).

    Examples:

        facever audit --since 2h

        facever audit --since 2026-12-01 --limit 0 --json
    """
    with handle_errors(as_json):
        start = parse_since(since) if since is not None else None
        from facever.audit import audit_events
        from facever.store import Database

        database = Database(db, create=False)
        try:
            events = audit_events(database, since=start, limit=limit or None)
        finally:
            database.close()
    if as_json:
        print_json({"events": [e.to_dict() for e in events]})
        return
    if not events:
        out.print("no audited writes" + (" in that time" if start is not None else " yet"))
        return
    for e in events:
        faces = f"  faces {','.join(map(str, e.face_ids))}" if e.face_ids else ""
        person = f"  {e.person}" if e.person is not None else ""
        detail = f"  {json.dumps(e.detail, ensure_ascii=False, sort_keys=True)}" if e.detail else ""
        out.print(f"{e.time:%Y-%m-%d %H:%M:%S} UTC  {e.actor}  {e.action}{person}{faces}{detail}", markup=False)
