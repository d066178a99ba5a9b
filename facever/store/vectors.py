"""Embeddings inside PostgreSQL with pgvector: the ``embeddings.embedding vector(128)`` column, its
HNSW index, and what a database offers (:func:`vector_support`).

On PostgreSQL with the ``vector`` extension, migration 0003 (:func:`install`) adds a nullable
``embedding vector(128)`` column to ``embeddings`` (a copy of the float32 bytes in ``vector``, which
stay the system of record), fills it for the stored 128-d embeddings and builds an HNSW index over it
(inner product on unit vectors: the order of Euclidean distance; m 32, ef_construction 80). Every write of an embedding then
fills both columns in the same statement (:func:`insert_embeddings`). SQLite, and PostgreSQL without
the extension, keep only the bytes: nothing here runs there.

The ORM (:mod:`facever.store.schema`) does not map the column (it exists on some databases only);
:func:`include_object` tells Alembic's comparison to leave it and its index alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, func, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.types import UserDefinedType

from facever.store.codec import encode_vector

#: Dimension of the ``vector`` column (the default model's embedding size); embeddings of any other
#: size leave it NULL and are searched in memory.
VECTOR_DIM = 128
COLUMN = "embedding"
INDEX = "ix_embeddings_embedding_hnsw"
#: HNSW build parameters, as the faiss index (m 32, ef_construction 80). pgvector's defaults
#: (16, 64) reached only 0.87 recall@1 at ef_search 100 on 1 M faces (benchmarks/pgvector_bench.py).
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
#: Rows copied per statement when filling the column for existing embeddings.
_BACKFILL_BATCH = 2000


def vector_literal(vector: np.ndarray) -> str:
    """A ``(D,)`` float32 vector in pgvector's text form ``[v1,v2,...]``.

    Each value is the shortest decimal that reads back as the same float32 (pgvector parses with
    ``strtof``), so the stored vector equals the bytes column bit for bit.
    """
    return "[" + ",".join(repr(float(x)) for x in np.asarray(vector, np.float32).reshape(-1)) + "]"


class PgVector(UserDefinedType):
    """pgvector's ``vector(dim)`` type for Core statements; values are bound as text and cast."""

    cache_ok = True

    def __init__(self, dim: int = VECTOR_DIM) -> None:
        self.dim = dim

    def get_col_spec(self, **_kw: Any) -> str:
        return f"vector({self.dim})"

    def bind_processor(self, dialect):
        return lambda value: None if value is None else vector_literal(value)

    def bind_expression(self, bindvalue):
        return func.cast(bindvalue, self)


#: The ``embeddings`` table as it is on a pgvector database (Core only, for inserts).
_table = Table("embeddings", MetaData(), Column("id", Integer, primary_key=True), Column("face_id", Integer),
               Column("model_version", String(64)), Column("dim", Integer), Column("vector", LargeBinary),
               Column(COLUMN, PgVector(VECTOR_DIM), nullable=True))


def insert_embeddings(session: Session, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
    """Insert ``(face id, model version, (D,) float32 vector)`` rows, filling the bytes column and,
    for 128-d vectors, the ``vector`` column in the same statement (one round trip per batch)."""
    if not rows:
        return
    values = [{"face_id": int(f), "model_version": v, "dim": int(np.size(x)), "vector": encode_vector(x),
               COLUMN: x if np.size(x) == VECTOR_DIM else None} for f, v, x in rows]
    session.execute(_table.insert(), values)


# -- what the server offers -----------------------------------------------------------------------
@dataclass(frozen=True)
class VectorSupport:
    """pgvector on one database (see :func:`vector_support`).

    Attributes:
        backend: the SQLAlchemy backend name (``"postgresql"``, ``"sqlite"``...).
        available: version of the extension the server could install (None: not on this server).
        installed: version installed in this database (None: not installed).
        column: the ``embeddings.embedding`` column exists; index: its HNSW index exists.
    """

    backend: str
    available: str | None = None
    installed: str | None = None
    column: bool = False
    index: bool = False

    @property
    def usable(self) -> bool:
        """Search can run in the database."""
        return self.column and self.installed is not None

    @property
    def note(self) -> str:
        """One sentence on what this means for search."""
        if self.backend != "postgresql":
            return f"{self.backend}: search runs in memory (pgvector needs PostgreSQL)"
        if self.usable:
            extra = "" if self.index else " (no HNSW index: every search scans; run `facever db upgrade`)"
            return f"pgvector {self.installed}: search runs in PostgreSQL{extra}"
        if self.installed is not None:
            if not hnsw_capable(self.installed):
                return (f"pgvector {self.installed} has no HNSW index (0.5 or newer needed): search runs in memory "
                        "(ALTER EXTENSION vector UPDATE, then `facever db upgrade`)")
            return f"pgvector {self.installed} is enabled but the gallery lacks its column: run `facever db upgrade`"
        if self.available is None:
            return ("this PostgreSQL server has no pgvector extension: search runs in memory in each process "
                    "(install pgvector on the server, then `facever db upgrade`)")
        return (f"pgvector {self.available} is available but not enabled in this database: search runs in memory "
                "(a superuser runs CREATE EXTENSION vector, then `facever db upgrade`)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"backend": self.backend, "available": self.available, "installed": self.installed,
                "column": self.column, "index": self.index, "usable": self.usable, "note": self.note}


def hnsw_capable(version: str) -> bool:
    """Whether a pgvector version has the HNSW index (0.5.0 and newer)."""
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    return parts >= (0, 5)


def vector_support(conn: Connection) -> VectorSupport:
    """What pgvector offers on ``conn``'s database (one catalog query on PostgreSQL, none elsewhere)."""
    backend = conn.dialect.name
    if backend != "postgresql":
        return VectorSupport(backend)
    row = conn.execute(text(
        "SELECT (SELECT default_version FROM pg_available_extensions WHERE name = 'vector'),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
        " EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        "         AND table_name = 'embeddings' AND column_name = :col),"
        " EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :ix)"),
        {"col": COLUMN, "ix": INDEX}).one()
    return VectorSupport(backend, row[0], row[1], bool(row[2]), bool(row[3]))


def install(conn: Connection) -> VectorSupport:
    """Enable pgvector search on ``conn``'s database when the server offers it; idempotent.

    Creates the extension (inside a savepoint: without the privilege nothing changes), adds the
    column, fills it from the stored 128-d embeddings and builds the HNSW index. A no-op on other
    backends and on servers without the extension. Returns what the database offers afterwards.
    """
    support = vector_support(conn)
    if support.backend != "postgresql" or support.available is None:
        return support
    if support.installed is None:
        savepoint = conn.begin_nested()
        try:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            savepoint.commit()
        except Exception:  # no privilege: the database keeps byte-only storage
            savepoint.rollback()
            return vector_support(conn)
        support = vector_support(conn)
    if not hnsw_capable(support.installed or "0"):
        return support
    if not support.column:
        conn.execute(text(f"ALTER TABLE embeddings ADD COLUMN {COLUMN} vector({VECTOR_DIM})"))
        backfill(conn)
    if not support.index:
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS {INDEX} ON embeddings USING hnsw ({COLUMN} vector_ip_ops) "
                          f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"))
        conn.execute(text("ANALYZE embeddings"))  # the planner's row estimates decide between HNSW and a scan
    return vector_support(conn)


def backfill(conn: Connection) -> int:
    """Fill the ``vector`` column of 128-d embeddings that lack it, from their bytes; return how many."""
    done = 0
    last = 0
    while True:
        rows = conn.execute(text(f"SELECT id, vector FROM embeddings WHERE id > :last AND dim = :dim "
                                 f"AND {COLUMN} IS NULL ORDER BY id LIMIT :n"),
                            {"last": last, "dim": VECTOR_DIM, "n": _BACKFILL_BATCH}).all()
        if not rows:
            return done
        params = [{"id": i, "v": vector_literal(np.frombuffer(blob, "<f4"))} for i, blob in rows]
        conn.execute(text(f"UPDATE embeddings SET {COLUMN} = CAST(:v AS vector) WHERE id = :id"), params)
        done += len(rows)
        last = rows[-1][0]


def drop(conn: Connection) -> None:
    """Remove the column and its index (the extension stays: other schemas may use it)."""
    if vector_support(conn).column:
        conn.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))
        conn.execute(text(f"ALTER TABLE embeddings DROP COLUMN {COLUMN}"))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic hook: leave the pgvector column and index (not in the ORM) out of schema comparisons."""
    if type_ == "column" and name == COLUMN and getattr(getattr(obj, "table", None), "name", None) == "embeddings":
        return False
    return not (type_ == "index" and name == INDEX)


def ids_literal(ids: Iterable[int]) -> list[int]:
    """Python ints for an ``= ANY(:ids)`` bind (NumPy integers are not adapted by every driver)."""
    return [int(i) for i in ids]
