"""Queries on the service tables: the gallery change counter, the audit log and API keys.

Like :mod:`facever.store.repository`, every function takes an open
:class:`~sqlalchemy.orm.Session` and the caller owns the transaction, so an audit row and the
counter bump commit (or roll back) together with the write they describe.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from facever.store.schema import ApiKeyRow, AuditRow, GalleryStateRow, utcnow

#: Primary key of the single ``gallery_state`` row.
STATE_ID = 1


# -- change counter -----------------------------------------------------------------------------
def generation(session: Session) -> int:
    """The gallery's change counter (0 for a gallery never written since it got the counter)."""
    value = session.scalar(select(GalleryStateRow.generation).where(GalleryStateRow.id == STATE_ID))
    return int(value or 0)


def bump_generation(session: Session) -> int:
    """Add one to the change counter and return the new value, in the caller's (write) transaction.

    ``UPDATE gallery_state SET generation = generation + 1 WHERE id = 1`` is atomic on every backend
    (it takes the row lock on PostgreSQL; on SQLite the write transaction holds the database lock),
    so concurrent writers each get a distinct value. A missing row is recreated at 1.
    """
    table = GalleryStateRow.__table__
    result = session.execute(update(table).where(table.c.id == STATE_ID)
                             .values(generation=table.c.generation + 1))
    if not result.rowcount:
        session.execute(insert(table).values(id=STATE_ID, generation=1))
    return generation(session)


# -- audit log ----------------------------------------------------------------------------------
def add_audit(session: Session, actor: str, action: str, person: str | None = None, face_ids: Iterable[int] = (),
              detail: dict[str, Any] | None = None) -> AuditRow:
    """Append one audit row (time: now, UTC) to the caller's transaction and return it.

    Args:
        actor: who wrote: an API key name, ``"cli"`` or ``"library"`` (at most 64 characters).
        action: what: ``enroll``, ``remove``, ``rename``, ``remove_face``, ``reindex``, ``key_create``...
        person: the person concerned, if any.
        face_ids: ids of the faces written or removed.
        detail: any JSON-ready extra facts.
    """
    row = AuditRow(time=utcnow(), actor=str(actor)[:64], action=str(action)[:32], person=person,
                   face_ids=[int(i) for i in face_ids], detail=dict(detail or {}))
    session.add(row)
    session.flush()
    return row


def record_write(session: Session, actor: str, action: str, person: str | None = None, face_ids: Iterable[int] = (),
                 detail: dict[str, Any] | None = None) -> int:
    """Audit a gallery write and bump the change counter (same transaction); return the new generation."""
    add_audit(session, actor, action, person, face_ids, detail)
    return bump_generation(session)


def removed_person_label(person_id: int) -> str:
    """What the audit log shows instead of the name of a removed person."""
    return f"removed person #{int(person_id)}"


def forget_person(session: Session, person_id: int) -> int:
    """Erase a removed person's name from the audit log; return the rows changed.

    Rows about the person (``detail["person_id"] == person_id``) keep their time, actor, action,
    face ids and ids, but ``person`` becomes :func:`removed_person_label` and the old name of a
    rename (``detail["from"]``) is dropped. Scans the log once (removals are rare).
    """
    label = removed_person_label(person_id)
    rows = session.scalars(select(AuditRow).where(AuditRow.detail["person_id"].as_integer() == int(person_id))).all()
    for row in rows:
        row.person = label
        row.detail = {k: v for k, v in (row.detail or {}).items() if k != "from"}
    session.flush()
    return len(rows)


def as_utc(value: datetime) -> datetime:
    """A datetime in UTC; naive values are taken as UTC already (SQLite returns them naive)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def audit_events(session: Session, since: datetime | None = None, limit: int | None = None) -> list[AuditRow]:
    """Audit rows, newest first: those at or after ``since`` (naive = UTC), at most ``limit`` of them."""
    query = select(AuditRow).order_by(AuditRow.time.desc(), AuditRow.id.desc())
    if since is not None:
        # SQLite stores the UTC wall time as text (the offset dropped): compare in UTC on every backend
        query = query.where(AuditRow.time >= as_utc(since))
    if limit is not None:
        query = query.limit(max(0, int(limit)))
    return list(session.scalars(query).all())


# -- API keys -----------------------------------------------------------------------------------
def key_by_prefix(session: Session, prefix: str) -> ApiKeyRow | None:
    """The key with this public prefix (one indexed lookup), or None."""
    return session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix)).one_or_none()


def key_by_name(session: Session, name: str) -> ApiKeyRow | None:
    """The key called ``name`` (revoked or not), or None."""
    return session.scalars(select(ApiKeyRow).where(ApiKeyRow.name == name)).one_or_none()


def list_keys(session: Session) -> list[ApiKeyRow]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created, ApiKeyRow.id)).all())


def add_key(session: Session, name: str, prefix: str, key_hash: str, scopes: str,
            rate_per_min: int | None) -> ApiKeyRow:
    """Insert a key row (flushed: a taken name or prefix raises here, inside the transaction)."""
    row = ApiKeyRow(name=name, prefix=prefix, key_hash=key_hash, scopes=scopes, rate_per_min=rate_per_min,
                    created=utcnow(), revoked=None)
    session.add(row)
    session.flush()
    return row
