"""The audit log: one event per write to a gallery database, newest first.

Events are written by :class:`facever.gallery.Gallery` (``enroll``, ``remove``, ``rename``,
``remove_face``, ``reindex``) and :class:`facever.keys.KeyStore` (``key_create``, ``key_revoke``)
in the same transaction as the write they record, so a failed write leaves no event.

>>> from facever.store import Database
>>> [e.action for e in audit_events(Database("sqlite:///gallery.db"), limit=3)]   # doctest: +SKIP
['enroll', 'key_create', 'rename']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from facever.store import audit_repo
from facever.store.schema import AuditRow
from facever.store.session import Database


@dataclass(frozen=True)
class AuditEvent:
    """One audited write.

    ``time`` is UTC; ``actor`` who wrote (an API key name, ``"cli"`` or ``"library"``); ``action``
    what (``enroll``, ``remove``, ``rename``, ``remove_face``, ``reindex``, ``key_create``,
    ``key_revoke``); ``person`` the person concerned (None for key events); ``face_ids`` the faces
    written or removed; ``detail`` extra facts (e.g. ``{"from": old name}`` for a rename).
    """

    time: datetime
    actor: str
    action: str
    person: str | None = None
    face_ids: tuple[int, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: ``{time (ISO 8601, UTC), actor, action, person, face_ids, detail}``."""
        return {"time": self.time.isoformat(), "actor": self.actor, "action": self.action, "person": self.person,
                "face_ids": list(self.face_ids), "detail": dict(self.detail)}

    @classmethod
    def from_row(cls, row: AuditRow) -> "AuditEvent":
        """The event of a database row."""
        return cls(time=audit_repo.as_utc(row.time), actor=row.actor, action=row.action, person=row.person,
                   face_ids=tuple(int(i) for i in row.face_ids or ()), detail=dict(row.detail or {}))


def audit_events(db: Database, since: datetime | None = None, limit: int | None = None) -> list[AuditEvent]:
    """Audit events of a gallery database, newest first.

    Args:
        db: the gallery database.
        since: only events at or after this time (a naive datetime is taken as UTC).
        limit: at most this many events (None: all).
    """
    with db.read() as session:
        return [AuditEvent.from_row(r) for r in audit_repo.audit_events(session, since=since, limit=limit)]
