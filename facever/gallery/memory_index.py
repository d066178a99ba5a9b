"""In-process search backends: the exact matrix, optionally with a faiss HNSW proposer (``ann``).

:class:`MemoryBackend` loads every embedding of the loaded model into one matrix
(:class:`~facever.gallery.search.SearchIndex`), keeps it up to date with this process's own writes
(``added`` / ``removed``) and forgets it when told that something else changed (``changed``: the
gallery then calls it after another process wrote, see :meth:`facever.gallery.Gallery.sync`).
With ``mode="ann"`` (or ``"auto"`` from :data:`~facever.gallery.ann_index.AUTO_MIN_FACES` faces
when faiss is installed) a faiss HNSW index, persisted in a file, proposes the candidate people.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from facever.gallery import ann_index
from facever.gallery.ann_index import AnnIndex, faiss_available, open_index
from facever.gallery.index import GalleryCounts, Hits, IndexStatus, ScoringName, version_mismatch
from facever.gallery.search import SearchIndex, rerank
from facever.store import repository as repo

if TYPE_CHECKING:
    from facever.store.session import Database

#: Nearest faces the approximate index proposes per query (their people are then scored exactly).
ANN_CANDIDATE_FACES = 32


class MemoryBackend:
    """Exact in-memory search, with an optional faiss proposer (implements
    :class:`~facever.gallery.index.SearchBackend`).

    Args:
        db: the gallery database.
        mode: ``"exact"``, ``"ann"`` or ``"auto"``.
        index_path: returns the faiss index file.
        on_load: called with the database change counter each time the matrix is (re)loaded.
        asked: the mode the caller asked for (reported in the status; e.g. ``"pgvector"``).
        fallback_note: why this in-memory backend searches instead of pgvector (prefixed to notes).
    """

    def __init__(self, db: "Database", mode: str, *, index_path: Callable[[], Path],
                 on_load: Callable[[int], None], asked: str | None = None, fallback_note: str | None = None) -> None:
        self.db = db
        self.mode = mode
        self.asked = asked or mode
        self.backend = "exact"
        self._index_path = index_path
        self._on_load = on_load
        self._fallback = fallback_note
        self.matrix: SearchIndex | None = None
        self.ann: AnnIndex | None = None
        self._status: IndexStatus | None = None

    # -- loading --------------------------------------------------------------------------------
    def load(self, model_version: str, dim: int, rebuild_ann: bool = False) -> SearchIndex:
        """The matrix of ``model_version`` (loaded once, updated on own writes), with the approximate
        index beside it when the mode calls for one."""
        if self.matrix is not None and self.matrix.model_version == model_version and not rebuild_ann:
            return self.matrix
        with self.db.read(snapshot=True) as session:
            generation = repo.generation(session)  # first: the matrix is at least this new
            n_faces = repo.count_faces(session)
            person_ids, face_ids, vectors = repo.load_embeddings(session, model_version, dim)
            names = repo.person_names(session)
            versions = repo.model_versions(session) if len(person_ids) < n_faces else {}
        if len(person_ids) < n_faces:
            raise version_mismatch(n_faces, len(person_ids), model_version, versions)
        self._attach_ann(face_ids, person_ids, vectors, model_version, rebuild_ann)
        self.matrix = SearchIndex(person_ids, vectors, names, model_version)
        self._on_load(generation)
        return self.matrix

    def _attach_ann(self, face_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray, version: str,
                    rebuild: bool) -> None:
        """Open, catch up or build the approximate index for these vectors (or drop it)."""
        n = len(face_ids)
        small = n < ann_index.AUTO_MIN_FACES
        if self.mode == "exact" or (self.mode == "auto" and (small or not faiss_available())):
            self.ann, self.backend = None, "exact"
            why = ("asked for" if self.mode == "exact" else
                   f"{n:,} faces < {ann_index.AUTO_MIN_FACES:,}" if small else "faiss is not installed")
            self._status = IndexStatus("exact", self.asked, status="exact", n_faces=n,
                                       note=self._noted(f"exact search ({why})"))
            return
        self.backend = "ann"
        ann = self.ann
        if ann is not None and ann.model_version == version and not rebuild:
            added, removed = ann.sync(face_ids, person_ids, vectors)
            if not ann.needs_rebuild:
                self._status = replace(
                    self._status or IndexStatus("ann", self.asked, ann.kind), status="memory",
                    rebuilt=False, n_faces=len(ann), seconds=0.0,
                    note=self._noted(f"in-memory index checked against the database: added {added}, "
                                     f"removed {removed} face(s)"))
                return
        self.ann, status = open_index(self._index_path(), face_ids, person_ids, vectors, version,
                                      mode=self.asked, rebuild=rebuild or ann is not None)
        self._status = replace(status, note=self._noted(status.note))

    def _noted(self, note: str) -> str:
        return note if self._fallback is None else f"{self._fallback}; {note}"

    # -- the protocol ---------------------------------------------------------------------------
    def counts(self, model_version: str, dim: int) -> GalleryCounts:
        """Faces and people of the loaded matrix."""
        matrix = self.load(model_version, dim)
        return GalleryCounts(len(matrix), matrix.n_people)

    def top_people(self, queries: np.ndarray, k: int, scoring: ScoringName, model_version: str,
                   dim: int) -> Hits:
        """Exact scan, or faiss candidates re-scored exactly on the matrix."""
        matrix = self.load(model_version, dim)
        queries = np.asarray(queries, np.float32).reshape(-1, dim)
        if self.ann is None:
            idx, dist = matrix.top_k(queries, k, scoring)
        else:
            candidates = self.ann.candidate_people(queries, max(ANN_CANDIDATE_FACES, 4 * k))
            idx, dist = rerank(queries, matrix, candidates, k, scoring)
        names = [[matrix.names[int(j)] for j in row if j >= 0] for row in idx]
        dists = [np.asarray(d[:len(n)], np.float32) for d, n in zip(dist, names)]
        return Hits(names, dists, GalleryCounts(len(matrix), matrix.n_people))

    def person_vectors(self, person_id: int, model_version: str, dim: int) -> np.ndarray:
        """The person's rows of the matrix."""
        return self.load(model_version, dim).rows_of(person_id)

    def status(self, model_version: str, dim: int) -> IndexStatus:
        """The status of the last load (loading now if needed)."""
        self.load(model_version, dim)
        assert self._status is not None
        if self.ann is not None:
            return replace(self._status, n_faces=len(self.ann))
        return self._status

    def rebuild(self, model_version: str, dim: int) -> IndexStatus:
        """Rebuild the approximate index from the database and save it (nothing to build when exact)."""
        self.load(model_version, dim, rebuild_ann=True)
        return self.status(model_version, dim)

    def added(self, person_id: int, name: str, face_ids: Sequence[int], vectors: np.ndarray,
              model_version: str) -> None:
        """Insert own new faces into the matrix and the graph (no reload)."""
        if self.matrix is None or self.matrix.model_version != model_version or len(face_ids) == 0:
            return
        self.matrix.add(person_id, name, vectors)
        if self.ann is not None:
            self.ann.add(list(face_ids), person_id, vectors)

    def removed(self, person_id: int, face_ids: Sequence[int] | None) -> None:
        """Tombstone the faces in the graph (no rebuild per removal); reload the matrix next time."""
        if self.ann is not None:
            if face_ids is None:
                self.ann.remove_person(person_id)
            else:
                self.ann.remove(list(face_ids))
        self.matrix = None

    def changed(self) -> None:
        """Forget the matrix; the next search reloads it (the graph is kept and caught up then)."""
        self.matrix = None

    def close(self) -> None:
        """Save a changed faiss index (best effort: the next open catches up or rebuilds)."""
        if self.ann is not None and self.ann.dirty:
            try:
                self.ann.save(self._index_path())
            except OSError:
                pass
        self.ann = None
        self.matrix = None

