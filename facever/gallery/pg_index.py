"""Search inside PostgreSQL with pgvector: no in-process copy of the gallery.

Each search reads one snapshot of the database in which it

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

A single query settled by its first round is one statement (one round trip; the change counter is
read in it); anything else is one REPEATABLE READ transaction.

The gallery-adapted threshold (:mod:`facever.open_set.adaptive`) needs the gallery's between-person
distances: :meth:`PgVectorBackend.fit_sample` reads a seeded sample of at most ``ADAPT_MAX_PEOPLE``
people's embeddings (one statement), kept while the gallery is unchanged, or, past that many people,
while its people count moves by at most 1 %, the same rule as the in-memory gallery's fit. The only approximation is the HNSW
graph itself (a person whose nearest faces it misses entirely);
recall against the exact scan is measured in ``benchmarks/pgvector_bench.py``. A write committed by
any process is seen by the next search of every other process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from facever.errors import DatabaseError
from facever.gallery.index import GalleryCounts, Hits, IndexStatus, ScoringName, version_mismatch
from facever.gallery.search import nearest_k, person_distances
from facever.open_set import ADAPT_MAX_PEOPLE
from facever.store import repository as repo
from facever.store import vectors as pgvec
from facever.store.schema import EmbeddingRow, FaceRow

if TYPE_CHECKING:
    from facever.store.session import Database

#: ``hnsw.ef_search`` of a search (raised to the number of faces asked for): recall@1 0.995 at 300 k
#: faces with m 32 (docs/SCALING.md, benchmarks/pgvector_bench.py).
EF_SEARCH = 200
#: Fewest nearest faces asked for per query.
MIN_CANDIDATES = 32
#: Most nearest faces asked for per query (pgvector caps ``ef_search`` at 1,000).
MAX_CANDIDATES = 4000
_EF_MAX = 1000

#: One search round: the ``:n`` nearest faces of the loaded model (HNSW), then every face of their
#: people, with the person's name, whether the face was among the nearest, how many were, and the
#: change counter (all in the statement's one snapshot).
_SEARCH = text(
    "WITH nn AS MATERIALIZED ("
    f" SELECT face_id FROM embeddings WHERE model_version = :v AND {pgvec.COLUMN} IS NOT NULL"
    f" ORDER BY {pgvec.COLUMN} <#> CAST(:q AS vector) LIMIT :n),"
    " cand AS (SELECT DISTINCT f.person_id FROM nn JOIN faces f ON f.id = nn.face_id)"
    " SELECT c.person_id, p.name, e.face_id, e.vector, e.face_id IN (SELECT face_id FROM nn),"
    " (SELECT count(*) FROM nn), (SELECT generation FROM gallery_state WHERE id = 1)"
    " FROM cand c JOIN people p ON p.id = c.person_id JOIN faces f ON f.person_id = c.person_id"
    " JOIN embeddings e ON e.face_id = f.id AND e.model_version = :v"
    " ORDER BY c.person_id, e.face_id")
_GENERATION = text("SELECT COALESCE((SELECT generation FROM gallery_state WHERE id = 1), 0)")
#: A seeded sample of at most ``:m`` people with embeddings of model ``:v`` (the order of md5 of the
#: person id: stable across processes), all their embeddings, by person then face.
_SAMPLE = text(
    "WITH sample AS (SELECT f.person_id FROM faces f JOIN embeddings e ON e.face_id = f.id"
    " AND e.model_version = :v GROUP BY f.person_id ORDER BY md5(f.person_id::text) LIMIT :m)"
    " SELECT f.person_id, e.vector FROM sample s JOIN faces f ON f.person_id = s.person_id"
    " JOIN embeddings e ON e.face_id = f.id AND e.model_version = :v ORDER BY f.person_id, e.face_id")
_COUNTS = text("SELECT (SELECT count(*) FROM faces), count(*), count(DISTINCT f.person_id) "
               "FROM embeddings e JOIN faces f ON f.id = e.face_id WHERE e.model_version = :v")


@dataclass(eq=False)
class GallerySample:
    """Embeddings of a sample of the gallery's people, for the gallery fit (hashable by identity, so
    the fit made of it is remembered as long as the sample is kept).

    Attributes:
        vectors: ``(N, D)`` float32 unit vectors, each person's rows contiguous.
        starts: ``(P,)`` first row of each person (P ≤ ``ADAPT_MAX_PEOPLE``).
        generation: the change counter when it was read.
        n_people: people in the whole gallery then (embedded by the model).
    """

    vectors: np.ndarray
    starts: np.ndarray
    generation: int
    n_people: int


@dataclass
class _Round:
    """What one search round found for one query."""

    names: list[str]
    distances: np.ndarray
    generation: int | None
    done: bool


class PgVectorBackend:
    """1:K search in PostgreSQL (implements :class:`~facever.gallery.index.SearchBackend`).

    A single query whose first round settles it (the usual case) costs one statement on its own
    autocommit connection: one round trip, one snapshot that also holds the change counter, so the
    counts kept from an earlier search are used only when they belong to that very snapshot.
    Anything else (a changed gallery, a widened round, several queries) runs in one REPEATABLE READ
    transaction. A connection cut by a server restart is retried once on a fresh one.

    Args:
        db: a PostgreSQL gallery with the pgvector column (:attr:`Database.vector_support` usable).
        mode: the index mode asked for (``"pgvector"`` or ``"auto"``), for the status.
        ef_search: base ``hnsw.ef_search`` (an attribute; may be changed).
    """

    backend = "pgvector"

    def __init__(self, db: "Database", mode: str = "pgvector", ef_search: int = EF_SEARCH) -> None:
        self.db = db
        self.mode = mode
        self.ef_search = int(ef_search)
        self._counts: dict[str, tuple[int, GalleryCounts]] = {}  # version → (change counter, counts)
        version = db.vector_support.installed or "0"
        self.iterative = tuple(int(p) for p in version.split(".")[:2] if p.isdigit()) >= (0, 8)
        self._fast: Engine | None = None
        self._sample: dict[str, GallerySample] = {}  # version → the last sample for the gallery fit

    # -- connections ------------------------------------------------------------------------------
    def _fast_engine(self) -> Engine:
        """A small autocommit pool without pre-ping (one round trip per search; disconnects are retried)."""
        if self._fast is None:
            with self.db.errors():
                self._fast = create_engine(self.db.url, isolation_level="AUTOCOMMIT", pool_size=2)
        return self._fast

    def _configure(self, conn: Connection, limit: int, local: bool) -> None:
        """``hnsw.ef_search`` for ``limit`` faces (and strict iterative scans on pgvector ≥ 0.8):
        for this transaction (``local``), or for the connection, skipped when already so."""
        ef = self._ef(limit)
        if not local and conn.info.get("facever_ef") == ef:
            return
        sql = "SELECT set_config('hnsw.ef_search', :ef, :local)"
        if self.iterative:
            sql += ", set_config('hnsw.iterative_scan', 'strict_order', :local)"
        conn.execute(text(sql), {"ef": str(ef), "local": local})
        conn.info["facever_ef"] = None if local else ef

    def _ef(self, limit: int) -> int:
        return max(self.ef_search, min(_EF_MAX, limit))

    def _gallery(self, conn: Connection, model_version: str) -> GalleryCounts:
        """The gallery size in this transaction's snapshot (kept while the change counter stands);
        raises ModelVersionMismatchError."""
        generation = int(conn.execute(_GENERATION).scalar_one())
        known = self._counts.get(model_version)
        if known is not None and known[0] == generation:
            return known[1]
        n_faces, n_embedded, n_people = (int(v) for v in conn.execute(_COUNTS, {"v": model_version}).one())
        if n_embedded < n_faces:
            with Session(conn) as session:
                versions = repo.model_versions(session)
            raise version_mismatch(n_faces, n_embedded, model_version, versions)
        counts = GalleryCounts(n_embedded, n_people)
        self._counts = {model_version: (generation, counts)}
        return counts

    # -- one round --------------------------------------------------------------------------------
    def _round(self, conn: Connection, query: np.ndarray, k: int, scoring: ScoringName, model_version: str,
               dim: int, limit: int, n_people: int) -> _Round:
        """Ask for the ``limit`` nearest faces, score their people exactly; ``done`` when no person
        left out can be among the ``k`` best (or nothing more can be asked)."""
        rows = conn.execute(_SEARCH, {"q": pgvec.vector_literal(query), "v": model_version, "n": limit}).all()
        if not rows:
            return _Round([], np.zeros(0, np.float32), None, True)
        people = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        vectors = repo.decode_vectors([r[3] for r in rows], dim)
        _, starts = np.unique(people, return_index=True)
        pos, dist = nearest_k(person_distances(query[None], vectors, starts, scoring), k)
        names = [rows[int(starts[j])][1] for j in pos[0]]
        generation = None if rows[0][6] is None else int(rows[0][6])
        if int(rows[0][5]) < limit or limit >= MAX_CANDIDATES:  # every face of this model was seen
            return _Round(names, dist[0], generation, True)
        # the farthest face returned bounds every person not returned (all their faces are farther)
        proposed = np.fromiter((bool(r[4]) for r in rows), bool, len(rows))
        bound = float(np.sqrt(np.clip(2.0 - 2.0 * (vectors[proposed] @ query).min(), 0.0, 4.0)))
        done = len(names) >= min(k, n_people) and (not names or float(dist[0][-1]) <= bound)
        return _Round(names, dist[0], generation, done)

    def _first_limit(self, k: int, counts: GalleryCounts) -> int:
        """Nearest faces asked for first: twice ``k`` people's worth of faces, at least :data:`MIN_CANDIDATES`."""
        per_person = counts.n_faces / max(counts.n_people, 1)
        return min(MAX_CANDIDATES, max(MIN_CANDIDATES, math.ceil(2 * k * per_person)))

    def _fast_search(self, query: np.ndarray, k: int, scoring: ScoringName, model_version: str,
                     dim: int) -> Hits | None:
        """One statement in autocommit; None when it does not settle the search."""
        known = self._counts.get(model_version)
        if known is None:
            return None
        generation, counts = known
        limit = self._first_limit(k, counts)
        for attempt in (0, 1):
            try:
                with self.db.errors(), self._fast_engine().connect() as conn:
                    self._configure(conn, limit, local=False)
                    found = self._round(conn, query, k, scoring, model_version, dim, limit, counts.n_people)
                break
            except DatabaseError as exc:
                if attempt or not getattr(exc.__cause__, "connection_invalidated", False):
                    raise
        if not found.done or found.generation != generation:
            return None
        return Hits([found.names], [np.asarray(found.distances, np.float32)], counts)

    def _people_vectors(self, session: Session, person_ids: Sequence[int], model_version: str,
                        dim: int) -> np.ndarray:
        """Every embedding of these people by ``model_version``, ``(N, dim)``, by person then face."""
        rows = session.execute(
            select(EmbeddingRow.vector).join(FaceRow, FaceRow.id == EmbeddingRow.face_id)
            .where(FaceRow.person_id.in_(pgvec.ids_literal(person_ids)), EmbeddingRow.model_version == model_version)
            .order_by(FaceRow.person_id, EmbeddingRow.face_id)).scalars().all()
        return repo.decode_vectors(list(rows), dim)

    # -- the protocol ---------------------------------------------------------------------------
    def counts(self, model_version: str, dim: int) -> GalleryCounts:
        """Faces embedded by the loaded model and their people, now."""
        with self.db.connection(snapshot=True) as conn:
            return self._gallery(conn, model_version)

    def top_people(self, queries: np.ndarray, k: int, scoring: ScoringName, model_version: str,
                   dim: int) -> Hits:
        """The ``k`` best people of each query, searched in PostgreSQL and scored exactly; the counts
        belong to the same snapshot."""
        queries = np.asarray(queries, np.float32).reshape(-1, dim)
        k = max(0, int(k))
        if len(queries) == 1 and k:
            hits = self._fast_search(queries[0], k, scoring, model_version, dim)
            if hits is not None:
                return hits
        with self.db.connection(snapshot=True) as conn:
            counts = self._gallery(conn, model_version)
            found: list[tuple[list[str], np.ndarray]] = []
            for q in queries:
                limit = self._first_limit(k, counts)
                result = _Round([], np.zeros(0, np.float32), None, True)
                while k and counts.n_faces:
                    self._configure(conn, limit, local=True)
                    result = self._round(conn, q, k, scoring, model_version, dim, limit, counts.n_people)
                    if result.done:
                        break
                    limit = min(MAX_CANDIDATES, 4 * limit)
                found.append((result.names, np.asarray(result.distances, np.float32)))
        return Hits([n for n, _ in found], [d for _, d in found], counts)

    def fit_sample(self, model_version: str, dim: int) -> GallerySample:
        """A seeded sample of at most ``ADAPT_MAX_PEOPLE`` people's embeddings, for the gallery fit.

        Kept while the change counter of the last search stands, and in galleries past
        ``ADAPT_MAX_PEOPLE`` people while the people count moved by at most 1 % (no round trip then);
        otherwise read again in one statement.
        """
        known = self._counts.get(model_version)
        if known is None:
            self.counts(model_version, dim)
            known = self._counts[model_version]
        generation, counts = known
        kept = self._sample.get(model_version)
        if kept is not None and (kept.generation == generation or (
                min(kept.n_people, counts.n_people) > ADAPT_MAX_PEOPLE
                and abs(kept.n_people - counts.n_people) <= 0.01 * counts.n_people)):
            return kept
        with self.db.errors(), self._fast_engine().connect() as conn:
            rows = conn.execute(_SAMPLE, {"v": model_version, "m": ADAPT_MAX_PEOPLE}).all()
        people = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        vectors = repo.decode_vectors([r[1] for r in rows], dim) if rows else np.zeros((0, dim), np.float32)
        _, starts = np.unique(people, return_index=True)
        sample = GallerySample(vectors, starts.astype(np.intp), generation, counts.n_people)
        self._sample = {model_version: sample}
        return sample

    def person_vectors(self, person_id: int, model_version: str, dim: int) -> np.ndarray:
        """The person's embeddings by the loaded model, read now."""
        with self.db.read() as session:
            return self._people_vectors(session, [int(person_id)], model_version, dim)

    def status(self, model_version: str, dim: int) -> IndexStatus:
        """Search runs in the database; nothing is held here."""
        support = self.db.vector_support
        known = self._counts.get(model_version)  # the last search's gallery, else read now
        n = known[1].n_faces if known is not None else self.counts(model_version, dim).n_faces
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
        """Release the search connections (the others are the gallery's)."""
        if self._fast is not None:
            self._fast.dispose()
            self._fast = None
