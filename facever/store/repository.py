"""Queries on the gallery tables. Every function takes an open :class:`~sqlalchemy.orm.Session`
(the caller owns the transaction) and uses only portable SQL.

Vectors are stored as little-endian float32 bytes; :func:`encode_vector` / :func:`decode_vectors`
convert them. On a database with the pgvector column (``session.info["vector_column"]``, see
:mod:`facever.store.vectors`) every embedding written here also fills that column, in the same
statement. The change counter, audit log and API key queries live in
:mod:`facever.store.audit_repo` and are re-exported here (``generation``, ``bump_generation``,
``add_audit``, ``audit_events``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from facever.errors import PersonNotFoundError
from facever.store.audit_repo import (add_audit, audit_events, bump_generation, forget_person,  # noqa: F401
                                      generation, record_write, removed_person_label)
from facever.store.codec import decode_vectors, encode_vector  # noqa: F401 - part of the repository API
from facever.store.schema import EmbeddingRow, FaceRow, ModelRow, PersonRow, utcnow

if TYPE_CHECKING:
    from facever.store.session import Database


# -- vectors ------------------------------------------------------------------------------------
# -- people -------------------------------------------------------------------------------------
def get_person(session: Session, name: str) -> PersonRow | None:
    """The person called exactly ``name``, or None."""
    return session.scalars(select(PersonRow).where(PersonRow.name == name)).one_or_none()


def require_person(session: Session, name: str) -> PersonRow:
    """The person called ``name``; raises :class:`PersonNotFoundError`."""
    person = get_person(session, name)
    if person is None:
        raise PersonNotFoundError(f"no person named {name!r} is enrolled")
    return person


def get_or_create_person(session: Session, name: str) -> PersonRow:
    """The person called ``name``, created (and flushed, so it has an id) if missing."""
    person = get_person(session, name)
    if person is None:
        person = PersonRow(name=name, created=utcnow())
        session.add(person)
        session.flush()
    return person


def list_people(session: Session) -> list[tuple[PersonRow, int]]:
    """Every person with their number of faces, by name."""
    n_faces = (select(FaceRow.person_id, func.count(FaceRow.id).label("n"))
               .group_by(FaceRow.person_id).subquery())
    rows = session.execute(select(PersonRow, func.coalesce(n_faces.c.n, 0))
                           .outerjoin(n_faces, n_faces.c.person_id == PersonRow.id)
                           .order_by(PersonRow.name)).all()
    return [(p, int(n)) for p, n in rows]


def list_people_page(session: Session, offset: int, limit: int,
                     query: str | None = None) -> tuple[list[tuple[PersonRow, int]], int]:
    """One page of people by name, with their number of faces, and how many people match in all.

    Args:
        offset: people skipped (>= 0); limit: people returned at most (>= 0).
        query: case-insensitive substring of the name (None or "" = everyone). ``%`` and ``_`` match
            themselves (LIKE wildcards are escaped). Case folding is the database's ``lower()``:
            ASCII only on SQLite, full Unicode on PostgreSQL.
    Returns:
        ``([(person, n_faces), ...], total)``.
    """
    where = [PersonRow.name.icontains(query, autoescape=True)] if query else []
    total = int(session.scalar(select(func.count(PersonRow.id)).where(*where)) or 0)
    n_faces = select(func.count(FaceRow.id)).where(FaceRow.person_id == PersonRow.id).scalar_subquery()
    rows = session.execute(select(PersonRow, n_faces).where(*where).order_by(PersonRow.name)
                           .offset(max(0, int(offset))).limit(max(0, int(limit)))).all()
    return [(p, int(n or 0)) for p, n in rows], total


def person_names(session: Session) -> dict[int, str]:
    """Person id → name."""
    return dict(session.execute(select(PersonRow.id, PersonRow.name)).all())


def rename_person(session: Session, person_id: int, new_name: str) -> None:
    """Give person ``person_id`` the name ``new_name`` (uniqueness enforced by the database)."""
    session.execute(update(PersonRow).where(PersonRow.id == person_id).values(name=new_name))


def delete_person(session: Session, person_id: int) -> int:
    """Delete a person with their faces and embeddings (database cascade); return the faces removed."""
    n = session.scalar(select(func.count(FaceRow.id)).where(FaceRow.person_id == person_id)) or 0
    # explicit child deletes keep this correct even where the backend lacks ON DELETE CASCADE
    face_ids = select(FaceRow.id).where(FaceRow.person_id == person_id).scalar_subquery()
    session.execute(delete(EmbeddingRow).where(EmbeddingRow.face_id.in_(face_ids)))
    session.execute(delete(FaceRow).where(FaceRow.person_id == person_id))
    session.execute(delete(PersonRow).where(PersonRow.id == person_id))
    return int(n)


# -- faces --------------------------------------------------------------------------------------
def person_hashes(session: Session, person_id: int) -> set[str]:
    """SHA-256 digests of the source images already enrolled for a person."""
    return set(session.scalars(select(FaceRow.sha256).where(FaceRow.person_id == person_id)).all())


@dataclass
class NewFace:
    """A face to store: the PNG crop, its geometry (``crop_template``, a key of
    :data:`facever.alignment.TEMPLATES`, and ``crop_size``, its side in pixels; None: unknown) and
    what was measured on the source image."""

    crop_png: bytes
    source: str
    sha256: str
    box: list[float]
    landmarks: list[list[float]]
    detector_score: float
    quality: dict[str, float] = field(default_factory=dict)
    crop_template: str | None = None
    crop_size: int | None = None


def add_face(session: Session, person_id: int, face: NewFace, model_version: str, vector: np.ndarray) -> int:
    """Insert a face and its embedding by ``model_version``; return the new face id."""
    size = None if face.crop_size is None else int(face.crop_size)
    row = FaceRow(person_id=person_id, crop=face.crop_png, crop_template=face.crop_template, crop_size=size,
                  source=face.source, sha256=face.sha256,
                  box=face.box, landmarks=face.landmarks, detector_score=float(face.detector_score),
                  face_size=float(face.quality.get("face_size", 0.0)),
                  sharpness=float(face.quality.get("sharpness", 0.0)),
                  frontality=float(face.quality.get("frontality", 0.0)), created=utcnow())
    session.add(row)
    session.flush()
    _add_embeddings(session, [(row.id, model_version, np.asarray(vector, np.float32))])
    return row.id


def _add_embeddings(session: Session, rows: list[tuple[int, str, np.ndarray]]) -> None:
    """Insert ``(face id, model version, vector)`` embeddings (and their pgvector copy where there is one)."""
    if session.info.get("vector_column"):
        from facever.store.vectors import insert_embeddings

        insert_embeddings(session, rows)
        return
    session.add_all([EmbeddingRow(face_id=f, model_version=v, dim=int(np.size(x)), vector=encode_vector(x))
                     for f, v, x in rows])
    session.flush()


def delete_face(session: Session, person_id: int, face_id: int) -> bool:
    """Delete one face of a person with its embeddings; False (nothing deleted) when ``face_id`` is
    not a face of ``person_id``."""
    owned = session.scalar(select(FaceRow.id).where(FaceRow.id == int(face_id), FaceRow.person_id == int(person_id)))
    if owned is None:
        return False
    session.execute(delete(EmbeddingRow).where(EmbeddingRow.face_id == owned))
    session.execute(delete(FaceRow).where(FaceRow.id == owned))
    return True


def person_face_ids(session: Session, person_id: int) -> list[int]:
    """Ids of a person's faces, ascending."""
    return list(session.scalars(select(FaceRow.id).where(FaceRow.person_id == person_id).order_by(FaceRow.id)).all())


def count_person_faces(session: Session, person_id: int) -> int:
    """Number of faces of one person."""
    return int(session.scalar(select(func.count(FaceRow.id)).where(FaceRow.person_id == person_id)) or 0)


def person_faces(session: Session, person_id: int) -> list[tuple[FaceRow, list[str]]]:
    """A person's faces (oldest first) with the model versions that embedded each."""
    faces = session.scalars(select(FaceRow).where(FaceRow.person_id == person_id).order_by(FaceRow.id)).all()
    versions: dict[int, list[str]] = {}
    rows = session.execute(select(EmbeddingRow.face_id, EmbeddingRow.model_version)
                           .join(FaceRow, FaceRow.id == EmbeddingRow.face_id)
                           .where(FaceRow.person_id == person_id).order_by(EmbeddingRow.model_version))
    for face_id, version in rows:
        versions.setdefault(face_id, []).append(version)
    return [(f, versions.get(f.id, [])) for f in faces]


def count_faces(session: Session) -> int:
    """Number of enrolled faces."""
    return int(session.scalar(select(func.count(FaceRow.id))) or 0)


def face_ids_without_embedding(session: Session, model_version: str) -> list[int]:
    """Ids of faces that have no embedding by ``model_version``, ascending."""
    has = select(EmbeddingRow.face_id).where(EmbeddingRow.model_version == model_version)
    return list(session.scalars(select(FaceRow.id).where(FaceRow.id.not_in(has)).order_by(FaceRow.id)).all())


def crops(session: Session, face_ids: Sequence[int]) -> list[tuple[int, bytes, str | None]]:
    """``(face id, PNG crop, crop template or None)`` of the given faces that still exist, by id."""
    return list(session.execute(select(FaceRow.id, FaceRow.crop, FaceRow.crop_template)
                                .where(FaceRow.id.in_(list(face_ids))).order_by(FaceRow.id)).all())


def templates_without_embedding(session: Session, model_version: str) -> dict[str | None, tuple[int, int]]:
    """Crop template (None: unknown) → ``(faces, lowest face id)`` among faces without an embedding by
    ``model_version``: what a reindex would have to embed."""
    has = select(EmbeddingRow.face_id).where(EmbeddingRow.model_version == model_version)
    rows = session.execute(select(FaceRow.crop_template, func.count(FaceRow.id), func.min(FaceRow.id))
                           .where(FaceRow.id.not_in(has)).group_by(FaceRow.crop_template)).all()
    return {template: (int(n), int(first)) for template, n, first in rows}


# -- embeddings and models ----------------------------------------------------------------------
def load_embeddings(session: Session, model_version: str, dim: int,
                    chunk: int = 65536) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All embeddings by ``model_version``, grouped by person.

    Two plain scans (face → person from the covering index on ``faces.person_id``, and the vectors
    streamed in chunks of ``chunk`` rows) joined in NumPy: no per-row lookup of the wide face rows.

    Returns:
        ``person_ids`` (N,) int64, ``face_ids`` (N,) int64 and ``vectors`` (N, dim) float32, rows
        sorted by person id then face id.
    """
    conn = session.connection()  # Core rows: no ORM processing per row
    pairs = conn.execute(select(FaceRow.id, FaceRow.person_id)).all()
    face_ids = np.fromiter((f for f, _ in pairs), np.int64, len(pairs))
    face_person = np.fromiter((p for _, p in pairs), np.int64, len(pairs))
    del pairs
    by_face = np.argsort(face_ids)
    face_ids, face_person = face_ids[by_face], face_person[by_face]

    n = int(session.scalar(select(func.count(EmbeddingRow.id)).where(EmbeddingRow.model_version == model_version)) or 0)
    ids = np.empty(n, np.int64)
    vectors = np.empty((n, dim), np.float32)
    filled = 0
    result = conn.execute(select(EmbeddingRow.face_id, EmbeddingRow.vector)
                          .where(EmbeddingRow.model_version == model_version)
                          .execution_options(yield_per=chunk))
    for part in result.partitions():
        part_ids, blobs = zip(*part)
        k = min(len(part_ids), n - filled)  # rows committed after the count are left for next time
        ids[filled:filled + k] = part_ids[:k]
        vectors[filled:filled + k] = decode_vectors(blobs[:k], dim)
        filled += k
    ids, vectors = ids[:filled], vectors[:filled]

    pos = np.clip(np.searchsorted(face_ids, ids), 0, max(len(face_ids) - 1, 0))
    alive = (face_ids[pos] == ids) if len(face_ids) else np.zeros(len(ids), bool)
    person = face_person[pos] if len(face_ids) else np.zeros(len(ids), np.int64)
    order = np.lexsort((ids, person))
    order = order[alive[order]]
    return person[order], ids[order], vectors[order]


def put_embeddings(session: Session, model_version: str, face_ids: Iterable[int], vectors: np.ndarray) -> int:
    """Store embeddings by ``model_version`` for faces that still exist and lack one; return how many."""
    face_ids = [int(i) for i in face_ids]
    alive = set(session.scalars(select(FaceRow.id).where(FaceRow.id.in_(face_ids))).all())
    done = set(session.scalars(select(EmbeddingRow.face_id).where(EmbeddingRow.face_id.in_(face_ids),
                                                                  EmbeddingRow.model_version == model_version)).all())
    rows = [(i, model_version, np.asarray(v, np.float32)) for i, v in zip(face_ids, vectors)
            if i in alive and i not in done]
    _add_embeddings(session, rows)
    return len(rows)


def delete_other_embeddings(session: Session, model_version: str) -> int:
    """Delete every embedding not made by ``model_version``; return how many."""
    result = session.execute(delete(EmbeddingRow).where(EmbeddingRow.model_version != model_version))
    return int(result.rowcount or 0)


def ensure_model(session: Session, version: str,
                 metadata: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
    """Record a model version (first use time and bundle metadata) if it is new. ``metadata`` may be
    a function that makes it: it is then only called for a new version (serialising a bundle's
    metadata takes ~9 ms, on every enrolment otherwise)."""
    if session.get(ModelRow, version) is None:
        session.add(ModelRow(version=version, meta=metadata() if callable(metadata) else metadata,
                             first_used=utcnow()))
        session.flush()


def model_versions(session: Session) -> dict[str, int]:
    """Model version → number of embeddings it made."""
    rows = session.execute(select(EmbeddingRow.model_version, func.count(EmbeddingRow.id))
                           .group_by(EmbeddingRow.model_version).order_by(EmbeddingRow.model_version))
    return {v: int(n) for v, n in rows}


# -- health -------------------------------------------------------------------------------------
def counts(session: Session) -> dict[str, int]:
    """Rows per table."""
    return {"people": int(session.scalar(select(func.count(PersonRow.id))) or 0),
            "faces": count_faces(session),
            "embeddings": int(session.scalar(select(func.count(EmbeddingRow.id))) or 0),
            "models": int(session.scalar(select(func.count(ModelRow.version))) or 0)}


def orphans(session: Session) -> dict[str, int]:
    """Rows whose parent is missing (none while foreign keys are enforced) and unrecorded models."""
    faces = select(func.count(FaceRow.id)).where(FaceRow.person_id.not_in(select(PersonRow.id)))
    embeddings = select(func.count(EmbeddingRow.id)).where(EmbeddingRow.face_id.not_in(select(FaceRow.id)))
    models = select(func.count(func.distinct(EmbeddingRow.model_version))).where(
        EmbeddingRow.model_version.not_in(select(ModelRow.version)))
    return {"faces_without_person": int(session.scalar(faces) or 0),
            "embeddings_without_face": int(session.scalar(embeddings) or 0),
            "unrecorded_model_versions": int(session.scalar(models) or 0)}


def people_without_faces(session: Session) -> int:
    """People with no face at all (harmless, but useless)."""
    return int(session.scalar(select(func.count(PersonRow.id))
                              .where(PersonRow.id.not_in(select(FaceRow.person_id)))) or 0)


def faces_missing_embeddings(session: Session) -> dict[str, int]:
    """Per model version present in the gallery, how many faces it has not embedded."""
    total = count_faces(session)
    return {v: total - n for v, n in model_versions(session).items() if total - n > 0}


@dataclass
class CheckReport:
    """Health of a gallery database (see :func:`check_database`).

    ``integrity`` holds SQLite's ``PRAGMA integrity_check`` lines (``["ok"]`` when sound; None on
    other backends); ``crop_templates`` counts faces per stored crop template (``"unknown"``: none
    recorded, which ``facever reindex`` refuses to re-embed); ``vector_search`` says whether search runs in the database (pgvector) or in
    memory, and why (:meth:`facever.store.vectors.VectorSupport.to_dict`); ``problems`` lists
    everything that needs fixing (empty when healthy).
    """

    database: str
    backend: str
    revision: str | None
    head: str
    integrity: list[str] | None = None
    foreign_key_violations: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    orphans: dict[str, int] = field(default_factory=dict)
    model_versions: dict[str, int] = field(default_factory=dict)
    faces_missing_embeddings: dict[str, int] = field(default_factory=dict)
    people_without_faces: int = 0
    crop_templates: dict[str, int] = field(default_factory=dict)
    vector_search: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing needs fixing."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"ok": self.ok, "database": self.database, "backend": self.backend, "revision": self.revision,
                "head": self.head, "integrity": self.integrity, "foreign_key_violations": self.foreign_key_violations,
                "counts": self.counts, "orphans": self.orphans, "model_versions": self.model_versions,
                "faces_missing_embeddings": self.faces_missing_embeddings,
                "people_without_faces": self.people_without_faces, "crop_templates": self.crop_templates,
                "vector_search": self.vector_search,
                "problems": self.problems}


def crop_templates(session: Session) -> dict[str, int]:
    """Faces per stored crop template (``"unknown"``: none recorded, e.g. a crop size no template has)."""
    rows = session.execute(select(FaceRow.crop_template, func.count(FaceRow.id)).group_by(FaceRow.crop_template)).all()
    return {template or "unknown": int(n) for template, n in rows}


def check_database(db: "Database") -> CheckReport:
    """Check schema revision, file integrity (SQLite), orphan rows, counts and model versions.

    Raises :class:`~facever.errors.DatabaseError` when the database cannot be read at all (corrupt
    header, unreachable server, schema from a newer facever).
    """
    from facever.store.session import head_revision

    revision = db.revision()
    db._check_known(revision)
    report = CheckReport(database=db.label, backend=db.backend, revision=revision, head=head_revision(),
                         vector_search=db.vector_support.to_dict())
    if db.is_sqlite:
        with db.connection() as conn:
            report.integrity = [str(r) for r in conn.exec_driver_sql("PRAGMA integrity_check").scalars().all()]
            report.foreign_key_violations = len(conn.exec_driver_sql("PRAGMA foreign_key_check").all())
        if report.integrity != ["ok"]:
            report.problems.append("integrity check failed: " + "; ".join(report.integrity[:5]))
        if report.foreign_key_violations:
            report.problems.append(f"{report.foreign_key_violations} foreign key violation(s)")
    if revision is None:
        report.problems.append("no gallery schema yet: run `facever db upgrade` (or enroll someone)")
        return report
    if revision != report.head:
        report.problems.append(f"schema revision {revision} is older than {report.head}: run `facever db upgrade`")
        return report
    with db.read() as session:
        report.counts = counts(session)
        report.orphans = orphans(session)
        report.model_versions = model_versions(session)
        report.faces_missing_embeddings = faces_missing_embeddings(session)
        report.people_without_faces = people_without_faces(session)
        report.crop_templates = crop_templates(session)
    for key, n in report.orphans.items():
        if n:
            report.problems.append(f"{n} {key.replace('_', ' ')}")
    return report
