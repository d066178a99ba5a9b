"""Search inside PostgreSQL with pgvector: no in-process copy of the gallery.

Each search is one read transaction (REPEATABLE READ: one snapshot for every statement) that

1. reads the change counter and, when it moved since the last search, the gallery size for the
   threshold (faces embedded by the loaded model, their people), so the counts always belong to the
   snapshot the search ran in (they are kept between searches only while the counter is unchanged);
2. asks the HNSW index (``embeddings.embedding``, inner product on unit vectors) for the ``L``
   nearest faces of the loaded model's version, ``L`` from the faces per person and ``k``, with
   ``hnsw.ef_search`` ≥ ``L`` (pgvector ≥ 0.8: iterative scans in strict order, so the
   model-version filter never starves the result);
3. fetches every face of the people found and scores them exactly in Python
   (:func:`~facever.gallery.search.person_distances`, the exact scan's own code, on the float32
   bytes), so distances and scoring (``nearest`` / ``mean3``) are the exact search's;
4. stops when the ``k``-th person's exact score is no farther than the ``L``-th face (no person
   left out can beat it) or the gallery is exhausted, and otherwise asks for 4× more faces.

The only approximation is the HNSW graph itself (a person whose nearest faces it misses entirely);
recall against the exact scan is measured in ``benchmarks/pgvector_bench.py``. A write committed by
any process is seen by the next search of every other process.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from facever.gallery.index import GalleryCounts, Hits, IndexStatus, ScoringName, version_mismatch
from facever.gallery.search import nearest_k, person_distances
from facever.store import repository as repo
from facever.store import vectors as pgvec
from facever.store.schema import EmbeddingRow, FaceRow, PersonRow

if TYPE_CHECKING:
    from facever.store.session import Database

#: ``hnsw.ef_search`` of a search (raised to the number of faces asked for); see SCALING.md.
EF_SEARCH = 100
#: Fewest nearest faces asked for per query.
MIN_CANDIDATES = 32
#: Most nearest faces asked for per query (pgvector caps ``ef_search`` at 1,000).
MAX_CANDIDATES = 4000
_EF_MAX = 1000

_NEAREST = text(
    "SELECT nn.face_id, f.person_id FROM ("
    f" SELECT face_id, {pgvec.COLUMN} <#> CAST(:q AS vector) AS score FROM embeddings"
    f" WHERE model_version = :v AND {pgvec.COLUMN} IS NOT NULL"
    f" ORDER BY {pgvec.COLUMN} <#> CAST(:q AS vector) LIMIT :n) nn"
    " JOIN faces f ON f.id = nn.face_id ORDER BY nn.score")


class PgVectorBackend:
    """1:K search in PostgreSQL (implements :class:`~facever.gallery.index.SearchBackend`).

    Args:
        db: a PostgreSQL gallery with the pgvector column (:attr:`Database.vector_support` usable).
        mode: the index mode asked for (``"pgvector"`` or ``"auto"``), for the status.
        ef_search: base ``hnsw.ef_search``.
    """

    backend = "pgvector"

    def __init__(self, db: "Database", mode: str = "pgvector", ef_search: int = EF_SEARCH) -> None:
        self.db = db
        self.mode = mode
        self.ef_search = int(ef_search)
        self._counts: dict[str, tuple[int, GalleryCounts]] = {}  # version → (change counter, counts)
        version = db.vector_support.installed or "0"
        self.iterative = tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) >= (0, 8)

    # -- one snapshot -----------------------------------------------------------------------------
    def _gallery(self, session: Session, model_version: str) -> GalleryCounts:
        """The gallery size in this snapshot; raises ModelVersionMismatchError."""
        generation = repo.generation(session)
        known = self._counts.get(model_version)
        if known is not None and known[0] == generation:
            return known[1]
        n_faces = repo.count_faces(session)
        n_embedded, n_people = session.execute(text(
            "SELECT count(*), count(DISTINCT f.person_id) FROM embeddings e JOIN faces f ON f.id = e.face_id "
            "WHERE e.model_version = :v"), {"v": model_version}).one()
        if n_embedded < n_faces:
            raise version_mismatch(n_faces, int(n_embedded), model_version, repo.model_versions(session))
        counts = GalleryCounts(int(n_embedded), int(n_people))
        self._counts = {model_version: (generation, counts)}
        return counts

    def _settings(self, session: Session, limit: int) -> None:
        ef = max(self.ef_search, min(_EF_MAX, limit))
        session.execute(text("SELECT set_config('hnsw.ef_search', :ef, true)"), {"ef": str(ef)})
        if self.iterative:
            session.execute(text("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)"))

    def _people_vectors(self, session: Session, person_ids: Sequence[int], model_version: str,
                        dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every embedding of these people: ``(person ids (N,), face ids (N,), (N, dim) vectors)``,
        sorted by person then face."""
        rows = session.execute(
            select(FaceRow.person_id, EmbeddingRow.face_id, EmbeddingRow.vector)
            .join(FaceRow, FaceRow.id == EmbeddingRow.face_id)
            .where(FaceRow.person_id.in_(pgvec.ids_literal(person_ids)), EmbeddingRow.model_version == model_version)
            .order_by(FaceRow.person_id, EmbeddingRow.face_id)).all()
        people = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        faces = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        return people, faces, repo.decode_vectors([r[2] for r in rows], dim)

    def _search_one(self, session: Session, query: np.ndarray, k: int, scoring: ScoringName, model_version: str,
                    dim: int, counts: GalleryCounts) -> tuple[list[int], np.ndarray]:
        """The ``k`` best person ids of one ``(dim,)`` query and their exact distances."""
        per_person = counts.n_faces / max(counts.n_people, 1)
        limit = min(MAX_CANDIDATES, max(MIN_CANDIDATES, math.ceil(2 * k * per_person)))
        literal = pgvec.vector_literal(query)
        q = query[None]
        while True:
            self._settings(session, limit)
            rows = session.execute(_NEAREST, {"q": literal, "v": model_version, "n": limit}).all()
            if not rows:
                return [], np.zeros(0, np.float32)
            people, faces, vectors = self._people_vectors(session, sorted({int(p) for _, p in rows}),
                                                          model_version, dim)
            ids, starts = np.unique(people, return_index=True)
            pos, dist = nearest_k(person_distances(q, vectors, starts, scoring), k)
            found = [int(ids[j]) for j in pos[0]]
            if len(rows) < limit or limit >= MAX_CANDIDATES:
                return found, dist[0]
            # the farthest face returned bounds every person not returned (all their faces are farther)
            proposed = np.isin(faces, [int(f) for f, _ in rows])
            bound = float(np.sqrt(np.clip(2.0 - 2.0 * (vectors[proposed] @ query).min(), 0.0, 4.0)))
            if len(found) >= min(k, counts.n_people) and (len(found) == 0 or float(dist[0][-1]) <= bound):
                return found, dist[0]
            limit = min(MAX_CANDIDATES, 4 * limit)

    # -- the protocol ---------------------------------------------------------------------------
    def counts(self, model_version: str, dim: int) -> GalleryCounts:
        """Faces embedded by the loaded model and their people, now."""
        with self.db.read(snapshot=True) as session:
            return self._gallery(session, model_version)

    def top_people(self, queries: np.ndarray, k: int, scoring: ScoringName, model_version: str,
                   dim: int) -> Hits:
        """The ``k`` best people of each query, searched in PostgreSQL and scored exactly."""
        queries = np.asarray(queries, np.float32).reshape(-1, dim)
        k = max(0, int(k))
        with self.db.read(snapshot=True) as session:
            counts = self._gallery(session, model_version)
            found = [self._search_one(session, q, k, scoring, model_version, dim, counts) if k and counts.n_faces
                     else ([], np.zeros(0, np.float32)) for q in queries]
            wanted = sorted({p for ids, _ in found for p in ids})
            names = dict(session.execute(select(PersonRow.id, PersonRow.name)
                                         .where(PersonRow.id.in_(wanted))).all()) if wanted else {}
        return Hits([[names[p] for p in ids] for ids, _ in found],
                    [np.asarray(d, np.float32) for _, d in found], counts)

    def person_vectors(self, person_id: int, model_version: str, dim: int) -> np.ndarray:
        """The person's embeddings by the loaded model, read now."""
        with self.db.read() as session:
            return self._people_vectors(session, [int(person_id)], model_version, dim)[2]

    def status(self, model_version: str, dim: int) -> IndexStatus:
        """Search runs in the database; nothing is held here."""
        support = self.db.vector_support
        n = self.counts(model_version, dim).n_faces
        index = (f"HNSW (m {pgvec.HNSW_M}, ef_construction {pgvec.HNSW_EF_CONSTRUCTION})" if support.index
                 else "no HNSW index (exact scan in the database)")
        return IndexStatus("pgvector", self.mode, "hnsw", None, "database", False,
                           f"search in PostgreSQL: pgvector {support.installed}, {index}, ef_search "
                           f"{self.ef_search}; candidates re-scored exactly", n, 0.0)

    def rebuild(self, model_version: str, dim: int) -> IndexStatus:
        """``REINDEX INDEX CONCURRENTLY`` the HNSW index (searches and writes go on meanwhile)."""
        import time

        t0 = time.perf_counter()
        with self.db.errors(), self.db.engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            if self.db.vector_support.index:
                conn.execute(text(f"REINDEX INDEX CONCURRENTLY {pgvec.INDEX}"))
            conn.execute(text("ANALYZE embeddings"))
        seconds = time.perf_counter() - t0
        status = self.status(model_version, dim)
        return IndexStatus(status.backend, status.mode, status.kind, None, "rebuilt", True,
                           f"HNSW index rebuilt in PostgreSQL ({status.n_faces:,} faces, {seconds:.1f} s)",
                           status.n_faces, seconds)

    def added(self, person_id: int, name: str, face_ids: Sequence[int], vectors: np.ndarray,
              model_version: str) -> None:
        """Nothing to do: the write itself filled the vector column."""

    def removed(self, person_id: int, face_ids: Sequence[int] | None) -> None:
        """Nothing to do: the rows are gone from the index with the transaction."""

    def changed(self) -> None:
        """Nothing is cached but the counts, which follow the change counter."""

    def close(self) -> None:
        """Nothing to release (the database connections are the gallery's)."""
