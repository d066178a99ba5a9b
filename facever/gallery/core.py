"""The gallery: enrolled people in a database, with 1:K search, wired from parts with one job each.

* the search backend (:class:`~facever.gallery.index.SearchBackend`): the exact in-memory matrix,
  faiss HNSW beside it, or pgvector inside PostgreSQL (:func:`~facever.gallery.backends.open_backend`);
* enrolment (:class:`~facever.gallery.enrolment.Enrolment`);
* the threshold policy (:class:`~facever.gallery.thresholds.ThresholdPolicy`);
* people management (:class:`~facever.gallery.management.Management`).

Embeddings carry the model version that made them; search only uses those of the loaded model, and
refuses (:class:`~facever.errors.ModelVersionMismatchError`) while any enrolled face lacks one:
``Gallery.reindex()`` re-embeds the stored crops.

Every write (enrol, remove, remove a face, rename, reindex) writes an audit row and bumps the
database's change counter in the same transaction; :meth:`Gallery.sync` compares that counter with
the one this object last knew, so several processes can share one database and each reload its
in-memory matrix only after another process wrote. With pgvector there is no matrix: every search
reads the database as it is.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Literal, Sequence

import numpy as np

from facever.errors import PersonNotFoundError
from facever.gallery.enrolment import MIN_FACE_SIZE, MIN_SHARPNESS, Enrolment, PreparedEnrolment, Progress
from facever.gallery.backends import open_backend
from facever.gallery.index import INDEX_MODES, IndexMode, IndexStatus, IndexUnavailableError, SearchBackend, model_of
from facever.gallery.management import Management
from facever.gallery.policy import ThresholdChoice, gallery_matrix
from facever.gallery.records import _metadata_json, check_crop_templates, decode_png, templates_of
from facever.gallery.results import (Candidate, EnrollReport, FaceSummary, IdentifyResult, PersonDetail,
                                     PersonSummary, ReindexReport)
from facever.gallery.search import Scoring
from facever.gallery.thresholds import ThresholdPolicy
from facever.store import repository as repo
from facever.store.session import Database

if TYPE_CHECKING:
    from facever.api import FaceVerifier, VerifyResult
    from facever.detection import Face, FacePolicy
    from facever.embedding import AlignedFace

__all__ = ["Gallery", "IndexMode"]


class Gallery:
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
        index: search backend (:data:`~facever.gallery.index.IndexMode`): ``"exact"``, ``"ann"``
            (faiss), ``"pgvector"`` (in PostgreSQL) or ``"auto"`` (pgvector on PostgreSQL with the
            extension; otherwise exact, then faiss from
            :data:`~facever.gallery.ann_index.AUTO_MIN_FACES` faces when installed); see
            :attr:`index_status`. On PostgreSQL without pgvector, ``"pgvector"`` and ``"auto"``
            search in memory and say so.
        index_path: the faiss index file (default: beside the SQLite database, ``<db>.ann``; for
            other databases under ``FACEVER_HOME/ann/``).
        actor: who writes, as recorded in the audit log (an API key name, ``"cli"``, ``"library"``);
            also a settable attribute.

    Identification thresholds follow the gallery size when the model bundle carries open-set data
    (see :meth:`threshold_for` and :mod:`facever.open_set`).

    Use it as a context manager (or call :meth:`close`). Raises :class:`DatabaseError` when the
    database is unreachable, corrupt, read-only or from a newer facever, and
    :class:`~facever.gallery.index.IndexUnavailableError` for ``index="pgvector"`` on a database that
    is not PostgreSQL.
    """

    def __init__(self, db_url: str | None = None, verifier: "FaceVerifier | None" = None, *,
                 model: str | os.PathLike[str] | None = None, scoring: Scoring = "nearest",
                 min_face_size: float = MIN_FACE_SIZE, min_sharpness: float = MIN_SHARPNESS,
                 create: bool = True, index: IndexMode = "auto",
                 index_path: str | os.PathLike[str] | None = None, actor: str = "library") -> None:
        if scoring not in ("nearest", "mean3"):
            raise ValueError(f"unknown scoring {scoring!r}; use 'nearest' or 'mean3'")
        if index not in INDEX_MODES:
            raise ValueError(f"unknown index {index!r}; use 'exact', 'ann', 'pgvector' or 'auto'")
        self.db = Database(db_url, create=create)
        if index == "pgvector" and self.db.backend != "postgresql":
            self.db.close()
            raise IndexUnavailableError(f"pgvector search needs a PostgreSQL database, not {self.db.backend} "
                                        "(--db postgresql://...); use --index auto, exact or ann here")
        self._verifier = verifier
        self._model = model
        self.scoring: Scoring = scoring
        self.index_mode: IndexMode = index
        self._index_path = index_path
        self._backend: SearchBackend | None = None
        self.actor = actor
        self._generation: int | None = None  # the change counter this object's view is as new as
        self.thresholds = ThresholdPolicy(lambda: self.verifier)
        self.enrolment = Enrolment(self.db, lambda: self.verifier, self._search, self.thresholds, self._note_write,
                                   min_face_size, min_sharpness)
        self.management = Management(self.db, lambda: self._backend, self._note_write)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Release database connections (the object is unusable afterwards); save a changed faiss index."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self.db.close()

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
        if self._backend is not None:  # another model may want another backend (pgvector is 128-d)
            self._backend.close()
            self._backend = None

    @property
    def model_version(self) -> str:
        """Version of the model embeddings are compared under."""
        return self.verifier.model_version

    @property
    def min_face_size(self) -> float:
        """Enrolment quality bar: estimated face width in source pixels."""
        return self.enrolment.min_face_size

    @min_face_size.setter
    def min_face_size(self, value: float) -> None:
        self.enrolment.min_face_size = float(value)

    @property
    def min_sharpness(self) -> float:
        """Enrolment quality bar: Laplacian variance of the grey aligned crop."""
        return self.enrolment.min_sharpness

    @min_sharpness.setter
    def min_sharpness(self, value: float) -> None:
        self.enrolment.min_sharpness = float(value)

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
        counts = self._search().counts(*model_of(self.verifier))
        return self.thresholds.identification(counts, fpir=fpir, threshold=threshold, scoring=scoring or self.scoring,
                                              gallery=gallery_matrix(self._search(), *model_of(self.verifier)))

    # -- the search backend and other processes' writes -----------------------------------------
    def _search(self) -> SearchBackend:
        """The search backend, opened on first use (see :func:`~facever.gallery.index.open_backend`)."""
        if self._backend is None:
            _, dim = model_of(self.verifier)
            self._backend = open_backend(self.db, self.index_mode, dim, index_path=lambda: self.index_path,
                                         on_load=self._loaded)
        return self._backend

    @property
    def search_backend(self) -> SearchBackend:
        """The backend searches use (opened now if needed): ``.backend`` is ``"exact"``, ``"ann"`` or
        ``"pgvector"``."""
        return self._search()

    def _loaded(self, generation: int) -> None:
        self._generation = generation

    def refresh(self) -> None:
        """Forget the in-memory matrix; the next search reloads it (to see other processes' writes).

        An approximate index is kept but checked against the database on that reload (faces added or
        removed elsewhere are added or tombstoned; a stale one is rebuilt). Nothing to do with pgvector."""
        if self._backend is not None:
            self._backend.changed()

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
        wrote in between. Returns True when the matrix was forgotten (with pgvector searches always
        read the database, so there is nothing to forget, but the answer is the same).
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

    @property
    def index_path(self) -> Path:
        """Where the faiss index is kept (see ``index_path`` of the constructor)."""
        if self._index_path is not None:
            return Path(self._index_path)
        if self.db.path is not None:
            return Path(f"{self.db.path}.ann")
        from facever import config

        digest = hashlib.sha256(self.db.url.encode()).hexdigest()[:16]
        return config.home_dir() / "ann" / f"{digest}.ann"

    @property
    def index_status(self) -> IndexStatus:
        """Which backend searches use and what happened to its index (``rebuilt``, ``note``)."""
        return self._search().status(*model_of(self.verifier))

    def rebuild_index(self) -> IndexStatus:
        """Rebuild the search index from the database (``facever reindex`` does): the faiss file, or
        pgvector's HNSW index (``REINDEX CONCURRENTLY``). With the exact backend nothing is built and
        the status says so."""
        return self._search().rebuild(*model_of(self.verifier))

    # -- search ---------------------------------------------------------------------------------
    def search(self, embeddings: np.ndarray, top_k: int = 5, threshold: float | None = None,
               scoring: Scoring | None = None, fpir: float | None = None) -> list[IdentifyResult]:
        """Identify ``(Q, D)`` embeddings made by the current model (one result per row).

        The threshold is :meth:`threshold_for` (``threshold``, else from ``fpir`` and the gallery
        size the search itself saw, read in the same snapshot).
        """
        scoring = scoring or self.scoring
        if scoring not in ("nearest", "mean3"):
            raise ValueError(f"unknown scoring {scoring!r}; use 'nearest' or 'mean3'")
        version, dim = model_of(self.verifier)
        emb = np.asarray(embeddings, np.float32).reshape(-1, dim)
        hits = self._search().top_people(emb, max(1, top_k), scoring, version, dim)
        choice = self.thresholds.identification(hits.counts, fpir=fpir, threshold=threshold, scoring=scoring,
                                                gallery=gallery_matrix(self._search(), version, dim))
        thr = choice.threshold
        results = []
        for names, dists in zip(hits.names, hits.distances):
            cands = [Candidate(n, float(d)) for n, d in zip(names, dists)]
            best = cands[0] if cands else None
            results.append(IdentifyResult(
                person=best.person if best is not None and best.distance <= thr else None,
                distance=best.distance if best is not None else None, threshold=thr,
                candidates=cands[:max(0, top_k)], scoring=scoring, model_version=version,
                threshold_policy=choice.policy, expected_fpir=choice.expected_fpir, fpir_target=choice.fpir_target,
                **choice.footing()))
        return results

    def identify(self, image, top_k: int = 5, threshold: float | None = None, scoring: Scoring | None = None,
                 faces: FacePolicy = "all", name: str | None = None,
                 fpir: float | None = None) -> list[IdentifyResult]:
        """Identify the faces in ``image`` (path, bytes or RGB array).

        Args:
            top_k: people listed per face, nearest first.
            threshold: a fixed identification threshold (distance); overrides ``fpir``.
            scoring: ``"nearest"`` or ``"mean3"`` (default: the gallery's).
            faces: ``"all"`` faces in the image (largest first), only the ``"largest"``, or exactly ``"one"``.
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
        aligned = self.verifier.embedder.find_faces(image, faces=faces, name=name)
        emb = self.verifier.embedder.embed_crops(np.stack([a.crop for a in aligned]))
        results = self.search(emb, top_k=top_k, threshold=threshold, scoring=scoring, fpir=fpir)
        return [replace(r, face=a.face, quality=a.quality) for r, a in zip(results, aligned)]

    def verify_person(self, image, name: str) -> "VerifyResult":
        """Is the (largest) face in ``image`` the enrolled person ``name``?

        The distance is to the person's nearest enrolled face; the decision uses τ.
        Raises :class:`PersonNotFoundError`, :class:`ModelVersionMismatchError`, image errors.
        """
        self._person_rows(name)  # an unknown person fails before the expensive part
        aligned, emb = self.verifier.embed_with_face(image)
        return self.compare_person(emb, name, faces=[aligned.face])

    def compare_person(self, embedding: np.ndarray, name: str,
                       faces: list[Face] | None = None) -> "VerifyResult":
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
        backend = self._search()
        version, dim = model_of(self.verifier)
        backend.counts(version, dim)  # every face must have a vector by this model
        rows = backend.person_vectors(person_id, version, dim)
        if len(rows) == 0:
            raise PersonNotFoundError(f"{name!r} has no enrolled face")
        return rows

    # -- enrolment (see facever.gallery.enrolment) ----------------------------------------------
    def enroll(self, name: str, images: Sequence[str | os.PathLike[str] | bytes | np.ndarray], force: bool = False,
               allow_duplicate: bool = False, strict: bool = False, progress: Progress | None = None,
               labels: Sequence[str] | None = None) -> EnrollReport:
        """Enroll images of one person, in one transaction (see :meth:`Enrolment.enroll
        <facever.gallery.enrolment.Enrolment.enroll>`, audited as :attr:`actor`)."""
        return self.enrolment.enroll(name, images, force=force, allow_duplicate=allow_duplicate, strict=strict,
                                     progress=progress, labels=labels, actor=self.actor)

    def prepare_enrolment(self, name: str, images: Sequence[str | os.PathLike[str] | bytes | np.ndarray],
                          force: bool = False, labels: Sequence[str] | None = None) -> "PreparedEnrolment":
        """The read-only half of :meth:`enroll` (detect, check, embed; no index, no write): safe to run
        while other threads search. Finish with :meth:`commit_enrolment`."""
        return self.enrolment.prepare(name, images, force=force, labels=labels)

    def commit_enrolment(self, prepared: "PreparedEnrolment", allow_duplicate: bool = False) -> EnrollReport:
        """The writing half of :meth:`enroll` (duplicate gate, one transaction), audited as :attr:`actor`."""
        return self.enrolment.commit(prepared, allow_duplicate=allow_duplicate, actor=self.actor)

    def enroll_dir(self, root: str | os.PathLike[str], force: bool = False, allow_duplicate: bool = False,
                   progress: Progress | None = None) -> Iterator[EnrollReport]:
        """Enroll a folder of one sub-folder per person, one transaction each (see
        :meth:`Enrolment.enroll_dir <facever.gallery.enrolment.Enrolment.enroll_dir>`)."""
        return self.enrolment.enroll_dir(root, force=force, allow_duplicate=allow_duplicate, progress=progress,
                                         actor=self.actor)

    def quality_problem(self, aligned: "AlignedFace") -> str | None:
        """Why a face is below the enrolment quality bar, or None when it passes."""
        return self.enrolment.quality_problem(aligned)

    def duplicate_threshold(self) -> ThresholdChoice:
        """The enrolment duplicate gate for the gallery as it is now (see :func:`~facever.gallery.duplicate_gate`)."""
        return self.enrolment.duplicate_threshold()

    # -- management (see facever.gallery.management) --------------------------------------------
    def people(self) -> list[PersonSummary]:
        """Every enrolled person with their number of faces, by name."""
        return self.management.people()

    def people_page(self, offset: int = 0, limit: int = 50,
                    query: str | None = None) -> tuple[list[PersonSummary], int]:
        """One page of people by name, and how many match in all (see :meth:`Management.people_page
        <facever.gallery.management.Management.people_page>`)."""
        return self.management.people_page(offset, limit, query)

    def person(self, name: str) -> PersonDetail:
        """One person and their faces. Raises :class:`PersonNotFoundError`."""
        return self.management.person(name)

    def face_crops(self, name: str) -> list[tuple[int, np.ndarray]]:
        """The stored aligned crops of a person: ``(face id, (S, S, 3) uint8 RGB)`` in enrolment order, ``S``
        each face's ``crop_size`` (150 for the default model's dlib crops)."""
        return self.management.face_crops(name)

    def rename(self, old: str, new: str) -> None:
        """Rename a person. Raises :class:`PersonNotFoundError`, :class:`PersonExistsError`."""
        self.management.rename(old, new, actor=self.actor)

    def remove(self, name: str, vacuum: bool = False) -> int:
        """Delete a person with every crop and vector of theirs; return the faces removed (see
        :meth:`Management.remove <facever.gallery.management.Management.remove>`)."""
        return self.management.remove(name, vacuum=vacuum, actor=self.actor)

    def remove_face(self, name: str, face_id: int) -> int:
        """Delete one face of a person; return how many faces they have left (see
        :meth:`Management.remove_face <facever.gallery.management.Management.remove_face>`)."""
        return self.management.remove_face(name, face_id, actor=self.actor)

    # -- maintenance ----------------------------------------------------------------------------
    def reindex(self, progress: Progress | None = None, batch_size: int = 256, prune: bool = False) -> ReindexReport:
        """Embed every stored crop that has no embedding by the current model (batches of ``batch_size``,
        one transaction each: an interrupted run resumes where it stopped).

        Args:
            progress: called as ``progress(faces done, faces to do)``.
            prune: afterwards delete the embeddings of every other model version.
        Raises:
            ModelError: a crop to embed is aligned to another template than the model's, or its
                template was never recorded (crops are not re-warped); checked before the first batch.
        """
        version, template = self.verifier.model_version, self.verifier.embedder.template_name
        meta = _metadata_json(self.verifier)
        with self.db.read() as session:
            check_crop_templates(repo.templates_without_embedding(session, version), template, version)
            todo = repo.face_ids_without_embedding(session, version)
            total = repo.count_faces(session)
        done = embedded = pruned = 0
        if progress is not None:
            progress(0, len(todo))
        for lo in range(0, max(len(todo), 1), batch_size):
            chunk = todo[lo:lo + batch_size]
            last = lo + batch_size >= len(todo)
            rows: list[tuple[int, bytes, str | None]] = []
            if chunk:
                with self.db.read() as session:
                    rows = repo.crops(session, chunk)
                check_crop_templates(templates_of(rows), template, version)  # faces stored since the check above
            vectors = (self.verifier.embedder.embed_crops(np.stack([decode_png(c) for _, c, _ in rows]), template)
                       if rows else None)
            if rows or (prune and last):
                n, p = self._reindex_write(version, meta, [i for i, _, _ in rows], vectors, prune and last,
                                           (done + len(chunk), len(todo)))
                embedded, pruned = embedded + n, pruned + p
            done += len(chunk)
            if progress is not None and chunk:
                progress(done, len(todo))
        if prune:
            self.db.checkpoint()
        self.refresh()
        return ReindexReport(version, embedded, total, pruned)

    def _reindex_write(self, version: str, meta: dict[str, Any], face_ids: list[int],
                       vectors: np.ndarray | None, prune: bool, progress: tuple[int, int]) -> tuple[int, int]:
        """One reindex transaction: store a batch's vectors and/or prune other versions, audited
        (``reindex``, detail: model version, vectors embedded and pruned, faces done of to do) when
        anything changed. Returns ``(embedded, pruned)``."""
        with self.db.write() as session:
            embedded = pruned = 0
            if face_ids:
                repo.ensure_model(session, version, meta)
                embedded = repo.put_embeddings(session, version, face_ids, vectors)
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
