"""The gallery: enrolled people in a database, searched as one in-memory matrix (1:K identification).

Embeddings carry the model version that made them; search only uses those of the loaded model, and
refuses (:class:`~facever.errors.ModelVersionMismatchError`) while any enrolled face lacks one:
``Gallery.reindex()`` re-embeds the stored crops.

Every write (enrol, remove, remove a face, rename, reindex) writes an audit row and bumps the
database's change counter in the same transaction; :meth:`Gallery.sync` compares that counter with
the one this object last knew, so several processes can share one database and each reload its
in-memory matrix only after another process wrote.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from facever.ann_index import AUTO_MIN_FACES, AnnIndex, IndexStatus, faiss_available, open_index
from facever.errors import ModelVersionMismatchError, PersonNotFoundError
from facever.gallery.enrolment import MIN_FACE_SIZE, MIN_SHARPNESS, EnrolmentMixin, Progress
from facever.gallery.policy import ThresholdChoice, identification_threshold
from facever.gallery.management import ManagementMixin
from facever.gallery.records import _metadata_json, decode_png
from facever.gallery.results import Candidate, IdentifyResult, ReindexReport
from facever.gallery.search import Scoring, SearchIndex, rerank
from facever.store import repository as repo
from facever.store.session import Database

if TYPE_CHECKING:
    from facever.api import FaceVerifier, VerifyResult

#: Search backend: exact NumPy scan, approximate (faiss HNSW, :mod:`facever.ann_index`), or
#: ``"auto"``: approximate from :data:`~facever.ann_index.AUTO_MIN_FACES` faces when faiss is installed.
IndexMode = Literal["exact", "ann", "auto"]

#: Nearest faces the approximate index proposes per query (their people are then scored exactly).
ANN_CANDIDATE_FACES = 32


class Gallery(EnrolmentMixin, ManagementMixin):
    """Enrolled people in a database, with 1:K search.

    Args:
        db_url: SQLAlchemy URL (default: ``FACEVER_DB`` or SQLite in ``FACEVER_HOME``). The schema is
            created or upgraded on first use.
        verifier: the :class:`~facever.api.FaceVerifier` (model + detector) to embed faces with;
            created lazily from ``model`` only when needed, so listing people needs no model.
        model: model bundle directory for the lazily created verifier (default model if None).
        scoring: default person scoring for :meth:`identify`: ``"nearest"`` or ``"mean3"``.
        min_face_size: enrolment quality bar, estimated face width in source pixels.
        min_sharpness: enrolment quality bar, Laplacian variance of the grey aligned crop.
        create: create a missing SQLite database (for writers). Readers pass ``create=False`` and get
            :class:`~facever.errors.NoGalleryError` instead of a new, empty gallery (a typo in a path
            must not make everyone unknown). Other backends are assumed to exist.
        index: search backend, ``"exact"``, ``"ann"`` (needs faiss) or ``"auto"`` (approximate from
            :data:`~facever.ann_index.AUTO_MIN_FACES` faces when faiss is installed); see
            :attr:`index_status`.
        index_path: the approximate index file (default: beside the SQLite database, ``<db>.ann``;
            for other databases under ``FACEVER_HOME/ann/``).
        actor: who writes, as recorded in the audit log (an API key name, ``"cli"``, ``"library"``);
            also a settable attribute.

    Identification thresholds follow the gallery size when the model bundle carries open-set data
    (see :meth:`threshold_for` and :mod:`facever.open_set`).

    Use it as a context manager (or call :meth:`close`). Raises :class:`DatabaseError` when the
    database is unreachable, corrupt, read-only or from a newer facever.
    """

    def __init__(self, db_url: str | None = None, verifier: "FaceVerifier | None" = None, *,
                 model: str | os.PathLike[str] | None = None, scoring: Scoring = "nearest",
                 min_face_size: float = MIN_FACE_SIZE, min_sharpness: float = MIN_SHARPNESS,
                 create: bool = True, index: IndexMode = "auto",
                 index_path: str | os.PathLike[str] | None = None, actor: str = "library") -> None:
        if scoring not in ("nearest", "mean3"):
            raise ValueError(f"unknown scoring {scoring!r}; use 'nearest' or 'mean3'")
        if index not in ("exact", "ann", "auto"):
            raise ValueError(f"unknown index {index!r}; use 'exact', 'ann' or 'auto'")
        self.db = Database(db_url, create=create)
        self._verifier = verifier
        self._model = model
        self.scoring: Scoring = scoring
        self.min_face_size = float(min_face_size)
        self.min_sharpness = float(min_sharpness)
        self._index: SearchIndex | None = None
        self.index_mode: IndexMode = index
        self._index_path = index_path
        self._ann: AnnIndex | None = None
        self._index_status: IndexStatus | None = None
        self.actor = actor
        self._generation: int | None = None  # the change counter this object's view is as new as

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Release database connections (the object is unusable afterwards); save a changed ANN index."""
        if self._ann is not None and self._ann.dirty:
            try:
                self._ann.save(self.index_path)
            except OSError:  # the next open rebuilds or catches up from the database
                pass
        self._ann = None
        self.db.close()
        self._index = None

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def verifier(self) -> "FaceVerifier":
        """The verifier (model + detector), loaded on first use."""
        if self._verifier is None:
            from facever.api import FaceVerifier

            self._verifier = FaceVerifier(model=self._model)
        return self._verifier

    @verifier.setter
    def verifier(self, verifier: "FaceVerifier") -> None:
        self._verifier = verifier
        self._index = None

    @property
    def model_version(self) -> str:
        """Version of the model embeddings are compared under."""
        return self.verifier.model_version

    @property
    def _metadata(self) -> Any:
        bundle = getattr(self.verifier, "bundle", None)
        return getattr(bundle, "metadata", None)

    @property
    def identify_threshold(self) -> float:
        """The model's fixed identification threshold (its calibrated one, else τ).

        Used only when the model has no open-set data; see :meth:`threshold_for` for the threshold
        identification actually uses.
        """
        calibrated = getattr(self._metadata, "identify_threshold", None)
        return float(calibrated.value) if calibrated is not None else float(self.verifier.threshold)

    def threshold_for(self, fpir: float | None = None, threshold: float | None = None,
                      scoring: Scoring | None = None) -> ThresholdChoice:
        """The identification threshold for the gallery as it is now, and the FPIR it gives.

        Args:
            fpir: target probability that a stranger is named as someone (default: the model's
                open-set ``default_fpir``, 1%).
            threshold: a fixed threshold (overrides ``fpir``; its expected FPIR is still reported).
            scoring: person scoring (default: the gallery's).
        Raises:
            ModelError: ``fpir`` given but the model has no open-set calibration.
            ModelVersionMismatchError: enrolled faces lack embeddings by the loaded model.
        """
        index = self._search_index()
        return identification_threshold(self._metadata, float(self.verifier.threshold), len(index), index.n_people,
                                        fpir=fpir, threshold=threshold, scoring=scoring or self.scoring, gallery=index)

    def refresh(self) -> None:
        """Forget the in-memory matrix; the next search reloads it (to see other processes' writes).

        An approximate index is kept but checked against the database on that reload (faces added or
        removed elsewhere are added or tombstoned; a stale one is rebuilt)."""
        self._index = None

    @property
    def generation(self) -> int | None:
        """The database change counter this object's in-memory view is known to be as new as (None:
        not known yet)."""
        return self._generation

    def sync(self) -> bool:
        """See other processes' writes: one cheap query of the database's change counter.

        When it differs from the counter this object last knew (from loading its matrix, its own
        writes, or the previous call), the in-memory matrix is forgotten (:meth:`refresh`) and the
        next search reloads it. The first call on a fresh object only records the counter. Own
        writes do not force a reload (they update the matrix in place) unless another process
        wrote in between. Returns True when the matrix was forgotten.
        """
        with self.db.read() as session:
            current = repo.generation(session)
        known, self._generation = self._generation, current
        if known is None or current == known:
            return False
        self.refresh()
        return True

    def _note_write(self, generation: int) -> None:
        """After a committed write of this object that moved the change counter to ``generation``:
        when that is exactly one more than known, no one else wrote in between; otherwise reload."""
        if self._generation is None or generation != self._generation + 1:
            self.refresh()
        self._generation = generation

    # -- search ---------------------------------------------------------------------------------
    def _search_index(self, rebuild_ann: bool = False) -> SearchIndex:
        """The in-memory matrix of the current model version (loaded once, updated on writes), and
        the approximate index beside it when the index mode calls for one."""
        version = self.verifier.model_version
        if self._index is not None and self._index.model_version == version and not rebuild_ann:
            return self._index
        dim = int(self.verifier.bundle.metadata.embedding_dim)
        with self.db.read() as session:
            generation = repo.generation(session)  # first: the matrix is at least this new
            n_faces = repo.count_faces(session)
            person_ids, face_ids, vectors = repo.load_embeddings(session, version, dim)
            names = repo.person_names(session)
            versions = repo.model_versions(session) if len(person_ids) < n_faces else {}
        if len(person_ids) < n_faces:
            others = ", ".join(v for v in versions if v != version) or "none"
            raise ModelVersionMismatchError(
                f"{n_faces - len(person_ids)} of {n_faces} enrolled faces have no embedding by the loaded model "
                f"{version} (stored embeddings are by: {others}); run `facever reindex` to re-embed the stored "
                "crops with this model")
        self._attach_ann(face_ids, person_ids, vectors, version, rebuild_ann)
        self._index = SearchIndex(person_ids, vectors, names, version)
        self._generation = generation
        return self._index

    @property
    def index_path(self) -> Path:
        """Where the approximate index is kept (see ``index_path`` of the constructor)."""
        if self._index_path is not None:
            return Path(self._index_path)
        if self.db.path is not None:
            return Path(f"{self.db.path}.ann")
        from facever import config

        digest = hashlib.sha256(self.db.url.encode()).hexdigest()[:16]
        return config.home_dir() / "ann" / f"{digest}.ann"

    @property
    def index_status(self) -> IndexStatus:
        """Which backend searches use and what happened to the index file (``rebuilt``, ``note``)."""
        self._search_index()
        assert self._index_status is not None
        if self._ann is not None:
            return replace(self._index_status, n_faces=len(self._ann))
        return self._index_status

    def rebuild_index(self) -> IndexStatus:
        """Rebuild the approximate index from the database and save it (``facever reindex`` does).

        With the exact backend (``index="exact"``, or ``"auto"`` below the size threshold) nothing
        is built and the status says so.
        """
        self._search_index(rebuild_ann=True)
        return self.index_status

    def _attach_ann(self, face_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray, version: str,
                    rebuild: bool) -> None:
        """Open, catch up or build the approximate index for these vectors (or drop it)."""
        n = len(face_ids)
        if self.index_mode == "exact" or (self.index_mode == "auto" and (n < AUTO_MIN_FACES or not faiss_available())):
            self._ann = None
            why = ("asked for" if self.index_mode == "exact" else
                   f"{n:,} faces < {AUTO_MIN_FACES:,}" if n < AUTO_MIN_FACES else "faiss is not installed")
            self._index_status = IndexStatus("exact", self.index_mode, status="exact", n_faces=n,
                                             note=f"exact search ({why})")
            return
        ann = self._ann
        if ann is not None and ann.model_version == version and not rebuild:
            added, removed = ann.sync(face_ids, person_ids, vectors)
            if not ann.needs_rebuild:
                self._index_status = replace(
                    self._index_status or IndexStatus("ann", self.index_mode, ann.kind), status="memory",
                    rebuilt=False, n_faces=len(ann), seconds=0.0,
                    note=f"in-memory index checked against the database: added {added}, removed {removed} face(s)")
                return
        self._ann, self._index_status = open_index(self.index_path, face_ids, person_ids, vectors, version,
                                                   mode=self.index_mode, rebuild=rebuild or ann is not None)

    def _top_people(self, emb: np.ndarray, k: int, scoring: Scoring) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best people per query: ``(positions, distances)``, position -1 where fewer."""
        index = self._search_index()
        if self._ann is None:
            return index.top_k(emb, k, scoring)
        candidates = self._ann.candidate_people(emb, max(ANN_CANDIDATE_FACES, 4 * k))
        return rerank(emb, index, candidates, k, scoring)

    def search(self, embeddings: np.ndarray, top_k: int = 5, threshold: float | None = None,
               scoring: Scoring | None = None, fpir: float | None = None) -> list[IdentifyResult]:
        """Identify ``(Q, D)`` embeddings made by the current model (one result per row).

        The threshold is :meth:`threshold_for` (``threshold``, else from ``fpir`` and the gallery size).
        """
        scoring = scoring or self.scoring
        if scoring not in ("nearest", "mean3"):
            raise ValueError(f"unknown scoring {scoring!r}; use 'nearest' or 'mean3'")
        index = self._search_index()
        choice = self.threshold_for(fpir=fpir, threshold=threshold, scoring=scoring)
        thr = choice.threshold
        emb = np.asarray(embeddings, np.float32).reshape(-1, index.vectors.shape[1])
        idx, dist = self._top_people(emb, max(1, top_k), scoring)
        results = []
        for q in range(len(emb)):
            cands = [Candidate(index.names[int(j)], float(d)) for j, d in zip(idx[q], dist[q]) if j >= 0]
            best = cands[0] if cands else None
            results.append(IdentifyResult(
                person=best.person if best is not None and best.distance <= thr else None,
                distance=best.distance if best is not None else None, threshold=thr,
                candidates=cands[:max(0, top_k)], scoring=scoring, model_version=index.model_version,
                threshold_policy=choice.policy, expected_fpir=choice.expected_fpir, fpir_target=choice.fpir_target,
                **choice.footing()))
        return results

    def identify(self, image, top_k: int = 5, threshold: float | None = None, scoring: Scoring | None = None,
                 faces: Literal["all", "largest"] = "all", name: str | None = None,
                 fpir: float | None = None) -> list[IdentifyResult]:
        """Identify the faces in ``image`` (path, bytes or RGB array).

        Args:
            top_k: people listed per face, nearest first.
            threshold: a fixed identification threshold (distance); overrides ``fpir``.
            scoring: ``"nearest"`` or ``"mean3"`` (default: the gallery's).
            faces: ``"all"`` faces in the image (largest first) or only the ``"largest"``.
            name: label of the image in error messages.
            fpir: target probability that a stranger is named as someone (default: the model's, 1%);
                the threshold is derived from it and the number of enrolled people and faces. Models
                without open-set data use their fixed threshold (``threshold_policy`` says which).
        Returns:
            One :class:`IdentifyResult` per face, largest face first, each stating its threshold,
            ``threshold_policy`` and ``expected_fpir``.
        Raises:
            ImageError, NoFaceError: unreadable image, no face.
            ModelVersionMismatchError: enrolled faces lack embeddings by the loaded model.
            ModelError: ``fpir`` given but the model has no open-set calibration.
        """
        self.threshold_for(fpir=fpir, threshold=threshold, scoring=scoring)  # fail early, before the expensive part
        aligned = self.verifier.embedder.find_faces(image, policy=faces, name=name)
        emb = self.verifier.embedder.embed_crops(np.stack([a.crop for a in aligned]))
        results = self.search(emb, top_k=top_k, threshold=threshold, scoring=scoring, fpir=fpir)
        return [replace(r, face=a.face.to_dict(), quality=a.quality.to_dict()) for r, a in zip(results, aligned)]

    def verify_person(self, image, name: str) -> "VerifyResult":
        """Is the (largest) face in ``image`` the enrolled person ``name``?

        The distance is to the person's nearest enrolled face; the decision uses τ.
        Raises :class:`PersonNotFoundError`, :class:`ModelVersionMismatchError`, image errors.
        """
        self._person_rows(name)  # an unknown person fails before the expensive part
        aligned, emb = self.verifier.embed_with_face(image)
        return self.compare_person(emb, name, faces=[aligned.face.to_dict()])

    def compare_person(self, embedding: np.ndarray, name: str,
                       faces: list[dict[str, Any]] | None = None) -> "VerifyResult":
        """Decide whether a ``(D,)`` unit embedding (by the loaded model) is the enrolled person ``name``:
        its distance to the person's nearest enrolled face against τ. ``faces`` is passed to the result.

        Raises :class:`PersonNotFoundError`, :class:`ModelVersionMismatchError`.
        """
        rows = self._person_rows(name)
        emb = np.asarray(embedding, np.float32).reshape(-1)
        nearest = rows[int(np.argmax(rows @ emb))]
        return self.verifier.compare(emb, nearest, faces=faces)

    def _person_rows(self, name: str) -> np.ndarray:
        """The ``(n, D)`` enrolled embeddings of ``name`` (n ≥ 1)."""
        with self.db.read() as session:
            person_id = repo.require_person(session, name).id
        rows = self._search_index().rows_of(person_id)
        if len(rows) == 0:
            raise PersonNotFoundError(f"{name!r} has no enrolled face")
        return rows

    # -- maintenance ----------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None, batch_size: int = 256, prune: bool = False) -> ReindexReport:
        """Embed every stored crop that has no embedding by the current model (batches of ``batch_size``,
        one transaction each: an interrupted run resumes where it stopped).

        Args:
            progress: called as ``progress(faces done, faces to do)``.
            prune: afterwards delete the embeddings of every other model version.
        """
        version = self.verifier.model_version
        meta = _metadata_json(self.verifier)
        with self.db.read() as session:
            todo = repo.face_ids_without_embedding(session, version)
            total = repo.count_faces(session)
        done = embedded = pruned = 0
        if progress is not None:
            progress(0, len(todo))
        for lo in range(0, max(len(todo), 1), batch_size):
            chunk = todo[lo:lo + batch_size]
            last = lo + batch_size >= len(todo)
            rows: list[tuple[int, bytes]] = []
            if chunk:
                with self.db.read() as session:
                    rows = repo.crops(session, chunk)
            vectors = self.verifier.embedder.embed_crops(np.stack([decode_png(c) for _, c in rows])) if rows else None
            if rows or (prune and last):
                n, p = self._reindex_write(version, meta, rows, vectors, prune and last, (done + len(chunk), len(todo)))
                embedded, pruned = embedded + n, pruned + p
            done += len(chunk)
            if progress is not None and chunk:
                progress(done, len(todo))
        if prune:
            self.db.checkpoint()
        self._index = None
        return ReindexReport(version, embedded, total, pruned)

    def _reindex_write(self, version: str, meta: dict[str, Any], rows: list[tuple[int, bytes]],
                       vectors: np.ndarray | None, prune: bool, progress: tuple[int, int]) -> tuple[int, int]:
        """One reindex transaction: store a batch's vectors and/or prune other versions, audited
        (``reindex``, detail: model version, vectors embedded and pruned, faces done of to do) when
        anything changed. Returns ``(embedded, pruned)``."""
        with self.db.write() as session:
            embedded = pruned = 0
            if rows:
                repo.ensure_model(session, version, meta)
                embedded = repo.put_embeddings(session, version, [i for i, _ in rows], vectors)
            if prune:
                pruned = repo.delete_other_embeddings(session, version)
            generation = None
            if embedded or pruned:
                generation = repo.record_write(session, self.actor, "reindex", None, (),
                                               {"model_version": version, "embedded": embedded, "pruned": pruned,
                                                "faces_done": progress[0], "faces_todo": progress[1]})
        if generation is not None:
            self._note_write(generation)
        return embedded, pruned

    def check(self) -> repo.CheckReport:
        """Health report of the database (see :func:`facever.store.check_database`)."""
        return repo.check_database(self.db)

    def backup(self, dest: str | os.PathLike[str], overwrite: bool = False) -> int:
        """Copy a SQLite gallery consistently to ``dest``; return its size in bytes."""
        return self.db.backup(dest, overwrite=overwrite)




