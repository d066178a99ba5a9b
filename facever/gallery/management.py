"""Gallery management: list and page people, show one, rename, remove a person or one face
(:class:`Management`, one part of :class:`facever.gallery.Gallery`).

Every write is audited (``rename``, ``remove``, ``remove_face``) and bumps the database's change
counter in the same transaction as the write itself; the search backend is told what changed
through its protocol (``removed``, ``changed``).
"""

from __future__ import annotations

import numpy as np

from typing import Callable

from facever.errors import FaceNotFoundError, PersonExistsError
from facever.gallery.index import SearchBackend
from facever.gallery.records import _utc, check_name, decode_png
from facever.gallery.results import FaceSummary, PersonDetail, PersonSummary
from facever.store import repository as repo
from facever.store.session import Database, WriteConflict


class Management:
    """People listing and edits: the management part of :class:`~facever.gallery.Gallery`.

    Args:
        db: the gallery database.
        search: returns the current search backend, or None while none is open (nothing to tell).
        on_write: called with the change counter after each committed write.
    """

    def __init__(self, db: Database, search: Callable[[], SearchBackend | None],
                 on_write: Callable[[int], None]) -> None:
        self.db = db
        self._search = search
        self._on_write = on_write

    def _tell(self, person_id: int | None = None, face_ids: list[int] | None = None, removed: bool = False) -> None:
        backend = self._search()
        if backend is None:
            return
        if removed and person_id is not None:
            backend.removed(person_id, face_ids)
        else:
            backend.changed()

    def people(self) -> list[PersonSummary]:
        """Every enrolled person with their number of faces, by name."""
        with self.db.read() as session:
            return [PersonSummary(p.name, n, _utc(p.created)) for p, n in repo.list_people(session)]

    def people_page(self, offset: int = 0, limit: int = 50,
                    query: str | None = None) -> tuple[list[PersonSummary], int]:
        """One page of people by name, and how many people match in all.

        Args:
            offset: people skipped (>= 0).
            limit: people returned at most (>= 0).
            query: case-insensitive substring of the name (``%`` and ``_`` match themselves; case
                folding is ASCII-only on SQLite). None or "" matches everyone.
        Returns:
            ``([PersonSummary, ...], total matching)``.
        """
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, got {offset} and {limit}")
        with self.db.read() as session:
            rows, total = repo.list_people_page(session, offset, limit, query)
            return [PersonSummary(p.name, n, _utc(p.created)) for p, n in rows], total

    def person(self, name: str) -> PersonDetail:
        """One person and their faces. Raises :class:`PersonNotFoundError`."""
        with self.db.read() as session:
            person = repo.require_person(session, name)
            faces = [FaceSummary(f.id, f.source, f.sha256, list(f.box), [list(p) for p in f.landmarks],
                                 f.detector_score, {"face_size": f.face_size, "sharpness": f.sharpness,
                                                    "frontality": f.frontality}, _utc(f.created), versions)
                     for f, versions in repo.person_faces(session, person.id)]
            return PersonDetail(person.name, _utc(person.created), faces)

    def face_crops(self, name: str) -> list[tuple[int, np.ndarray]]:
        """The stored aligned crops of a person: ``(face id, (S, S, 3) uint8 RGB)`` in enrolment order, ``S``
        each face's ``crop_size`` (150 for the default model's dlib crops).

        Raises :class:`PersonNotFoundError`, :class:`DatabaseError` (a damaged crop).
        """
        with self.db.read() as session:
            person = repo.require_person(session, name)
            ids = [f.id for f, _versions in repo.person_faces(session, person.id)]
            rows = {face_id: crop for face_id, crop, _template in repo.crops(session, ids)}
        return [(i, decode_png(rows[i])) for i in ids if i in rows]

    def rename(self, old: str, new: str, actor: str = "library") -> None:
        """Rename a person. Raises :class:`PersonNotFoundError`, :class:`PersonExistsError`."""
        new = check_name(new)
        try:
            with self.db.write() as session:
                person = repo.require_person(session, old)
                if old == new:
                    return
                if repo.get_person(session, new) is not None:
                    raise PersonExistsError(f"a person named {new!r} is already enrolled")
                repo.rename_person(session, person.id, new)
                generation = repo.record_write(session, actor, "rename", new, (),
                                               {"from": old, "person_id": person.id})
        except WriteConflict as exc:
            raise PersonExistsError(f"a person named {new!r} is already enrolled") from exc
        self._tell()
        self._on_write(generation)

    def remove(self, name: str, vacuum: bool = False, actor: str = "library") -> int:
        """Delete a person with every crop and vector of theirs; return the number of faces removed.

        On SQLite, deleted content is overwritten with zeros (``secure_delete``) and the WAL is
        checkpointed, so no copy stays in the database files; ``vacuum`` also compacts the file.
        The name leaves the audit log too: the person's events (and this ``remove`` event) name them
        ``removed person #<id>`` and keep their face ids (see :func:`~facever.store.audit_repo.forget_person`).
        Raises :class:`PersonNotFoundError`.
        """
        with self.db.write() as session:
            person_id = repo.require_person(session, name).id
            face_ids = repo.person_face_ids(session, person_id)
            n = repo.delete_person(session, person_id)
            repo.forget_person(session, person_id)  # erasure: the name leaves the audit log too
            generation = repo.record_write(session, actor, "remove", repo.removed_person_label(person_id),
                                           face_ids, {"faces_removed": n, "person_id": person_id})
        self._tell(person_id, None, removed=True)
        self._on_write(generation)
        self.db.checkpoint()
        if vacuum:
            self.db.vacuum()
        return n

    def remove_face(self, name: str, face_id: int, actor: str = "library") -> int:
        """Delete one face of a person (crop and vectors); return how many faces the person has left.

        A person left with no face stays enrolled (with 0 faces) until removed. Deleted content is
        overwritten as with :meth:`remove`.
        Raises :class:`PersonNotFoundError`, :class:`FaceNotFoundError` (not a face of that person).
        """
        face_id = int(face_id)
        with self.db.write() as session:
            person_id = repo.require_person(session, name).id
            if not 0 < face_id < 2 ** 63 or not repo.delete_face(session, person_id, face_id):
                raise FaceNotFoundError(f"{name!r} has no face #{face_id}")
            left = repo.count_person_faces(session, person_id)
            generation = repo.record_write(session, actor, "remove_face", name, [face_id],
                                           {"faces_left": left, "person_id": person_id})
        self._tell(person_id, [face_id], removed=True)
        self._on_write(generation)
        self.db.checkpoint()
        return left
