"""The gallery's tables (SQLAlchemy 2 ORM).

* ``people``: one row per enrolled person (unique ``name``, stored exactly as given).
* ``faces``: one enrolled face: its aligned crop as PNG bytes in the enrolling model's geometry,
  with that geometry's template name and side in pixels (``crop_template``, ``crop_size``: ``"dlib"``
  and 150 for the default model), so a later model of the same template can re-embed it; the source
  label (path or name), the SHA-256 of the source image bytes (enrolment is idempotent per person and
  image content), box and landmarks in source-image pixels, quality figures.
* ``embeddings``: one vector per face *and model version* (float32 little-endian bytes, ``dim``
  values); vectors of different model versions are never compared.
* ``models``: every model version that wrote embeddings, with its bundle metadata.
* ``api_keys``: the service's API keys, hashed (SHA-256 of the whole key), with scopes and rate.
* ``audit_log``: one row per write (enrol, remove, rename, key created...): who, what, when.
* ``gallery_state``: one row (id 1) whose ``generation`` grows by one with every gallery write, so
  a process can tell with one cheap query whether its in-memory search index is stale.

Deleting a person cascades to its faces and their embeddings (``ON DELETE CASCADE`` in the database,
mirrored by ORM cascades). Only portable types are used (``LargeBinary``, ``JSON``, ``DateTime``) so
the same schema works on SQLite and PostgreSQL. Changes to this module need an Alembic revision in
``migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (Boolean, JSON, BigInteger, DateTime, Float, ForeignKey, Integer, LargeBinary, MetaData, String,
                        Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Longest accepted person name, in characters.
NAME_MAX_LENGTH = 255

#: Constraint names are explicit so that migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the gallery schema."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PersonRow(Base):
    """An enrolled person."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    faces: Mapped[list["FaceRow"]] = relationship(back_populates="person", cascade="all, delete-orphan",
                                                  passive_deletes=True)


class FaceRow(Base):
    """One enrolled face image of a person.

    ``crop`` is a ``crop_size``×``crop_size`` PNG aligned to template ``crop_template`` (a key of
    :data:`facever.alignment.TEMPLATES`); both are None for faces stored before migration 0005 whose
    geometry could not be told from the crop. ``box`` is ``[x1, y1, x2, y2]`` and ``landmarks``
    ``[[x, y] × 5]`` in source-image pixels (left eye, right eye, nose, left and right mouth corners);
    ``face_size`` is in pixels, ``sharpness`` the Laplacian variance of the grey crop, ``frontality``
    in [0, 1].
    """

    __tablename__ = "faces"
    __table_args__ = (UniqueConstraint("person_id", "sha256", name="uq_faces_person_id_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    crop: Mapped[bytes] = mapped_column(LargeBinary)
    crop_template: Mapped[str | None] = mapped_column(String(32), nullable=True)
    crop_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(Text, default="")
    sha256: Mapped[str] = mapped_column(String(64))
    box: Mapped[list[float]] = mapped_column(JSON)
    landmarks: Mapped[list[list[float]]] = mapped_column(JSON)
    detector_score: Mapped[float] = mapped_column(Float, default=0.0)
    face_size: Mapped[float] = mapped_column(Float)
    sharpness: Mapped[float] = mapped_column(Float)
    frontality: Mapped[float] = mapped_column(Float)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    person: Mapped[PersonRow] = relationship(back_populates="faces")
    embeddings: Mapped[list["EmbeddingRow"]] = relationship(back_populates="face", cascade="all, delete-orphan",
                                                            passive_deletes=True)


class EmbeddingRow(Base):
    """The embedding of one face by one model version: ``dim`` float32 values (little-endian bytes)."""

    __tablename__ = "embeddings"
    __table_args__ = (UniqueConstraint("face_id", "model_version", name="uq_embeddings_face_id_model_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    face_id: Mapped[int] = mapped_column(ForeignKey("faces.id", ondelete="CASCADE"))
    model_version: Mapped[str] = mapped_column(String(64), index=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    face: Mapped[FaceRow] = relationship(back_populates="embeddings")


class ModelRow(Base):
    """A model version that has written embeddings, with its bundle metadata (JSON)."""

    __tablename__ = "models"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    first_used: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKeyRow(Base):
    """An API key of the HTTP service. The key itself is never stored: ``key_hash`` is the hex
    SHA-256 of the whole key string and ``prefix`` its public lookup part. ``scopes`` is a sorted,
    comma-separated list; ``rate_per_min`` None means unlimited; ``revoked`` is set once revoked."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(64))
    rate_per_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditRow(Base):
    """One audited write: when (UTC), who (``actor``: a key name, ``"cli"`` or ``"library"``), what
    (``action``, e.g. ``enroll``), the person concerned (if any), face ids touched and a JSON detail."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    person: Mapped[str | None] = mapped_column(Text, nullable=True)
    face_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class GalleryStateRow(Base):
    """The gallery's change counter: a single row (``id`` 1); ``generation`` grows with every write."""

    __tablename__ = "gallery_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class LivenessChallengeRow(Base):
    """A liveness challenge of the HTTP service, shared by every worker and machine.

    ``state`` runs ``pending`` → ``answered`` → ``redeemed``; each step is one conditional UPDATE, so a
    challenge is answered once and its passed result redeemed once, whichever process asks. Times are
    seconds since the epoch (UTC); ``result`` is the check's JSON; ``embedding`` the ``dim`` float32
    values of the live face (so a verification can require the same face); ``key_name`` who asked.
    """

    __tablename__ = "liveness_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    steps: Mapped[str] = mapped_column(String(64))
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float] = mapped_column(Float, index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    key_name: Mapped[str] = mapped_column(String(64), default="")
    live: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    result_expires: Mapped[float | None] = mapped_column(Float, nullable=True)


#: Table names, parents first.
TABLES = ("people", "faces", "embeddings", "models", "api_keys", "audit_log", "gallery_state", "liveness_challenges")
