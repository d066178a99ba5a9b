"""Which search backend a gallery uses: the in-memory search (exact, or faiss HNSW beside it) or
pgvector inside PostgreSQL, from the index mode and what the database offers.

It imports every backend; the backends import only :mod:`facever.gallery.index` (the protocol), so
the arrows run one way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from facever.gallery.index import INDEX_MODES, IndexUnavailableError, SearchBackend, warn_once
from facever.gallery.memory_index import MemoryBackend
from facever.gallery.pg_index import PgVectorBackend
from facever.store.vectors import VECTOR_DIM

if TYPE_CHECKING:
    from facever.store.session import Database


def open_backend(db: "Database", mode: str, dim: int, *, index_path: Callable[[], Any],
                 on_load: Callable[[int], None]) -> SearchBackend:
    """The backend for index ``mode`` on ``db`` for ``dim``-d embeddings.

    ``pgvector`` / ``auto`` search in PostgreSQL when the database has the pgvector column (and the
    model's embeddings are 128-d); on a PostgreSQL database without it they fall back to the
    in-memory search (``auto`` rules: exact, then faiss past its threshold), say so once in the log
    and in :attr:`IndexStatus.note`. ``index_path`` gives the faiss file; ``on_load(generation)`` is
    called when an in-memory matrix is loaded (the change counter it is as new as).

    Raises:
        IndexUnavailableError: ``pgvector`` on a database that is not PostgreSQL.
    """
    if mode not in INDEX_MODES:
        raise ValueError(f"unknown index {mode!r}; use 'exact', 'ann', 'pgvector' or 'auto'")
    if mode == "pgvector" and db.backend != "postgresql":
        raise IndexUnavailableError(f"pgvector search needs a PostgreSQL database, not {db.backend} "
                                    "(--db postgresql://...); use --index auto, exact or ann here")
    fallback = None
    if mode in ("pgvector", "auto") and db.backend == "postgresql":
        support = db.vector_support
        if support.usable and dim == VECTOR_DIM:
            return PgVectorBackend(db, mode)
        fallback = (support.note if not support.usable else
                    f"the loaded model's embeddings are {dim}-d and the pgvector column {VECTOR_DIM}-d: "
                    "search runs in memory")
        warn_once(db.label, f"{db.label}: {fallback}")
    return MemoryBackend(db, "auto" if mode == "pgvector" else mode, index_path=index_path, on_load=on_load,
                         asked=mode, fallback_note=fallback)
