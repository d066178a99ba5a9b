"""The gallery: enrolled people in a database, searched as one in-memory matrix (1:K identification).

>>> from facever.gallery import Gallery
>>> with Gallery() as g:                                         # doctest: +SKIP
...     g.enroll("Ada Lovelace", ["ada1.jpg", "ada2.jpg"])
...     [r.person for r in g.identify("group.jpg")]             # e.g. ['Ada Lovelace', None]

Distances are Euclidean between unit embeddings, in [0, 2]. A person's score against a query face
is the distance to their *nearest* enrolled face (``scoring="nearest"``) or the mean distance to
their three nearest faces (``"mean3"``). A face is identified as the best-scoring person when that
score is ≤ the identification threshold (the bundle's ``identify_threshold`` if calibrated, else
its verification τ), and is ``unknown`` (``person=None``) otherwise.

Embeddings carry the model version that made them; search only uses those of the loaded model, and
refuses (:class:`~facever.errors.ModelVersionMismatchError`) while any enrolled face lacks one:
``Gallery.reindex()`` re-embeds the stored crops.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Sequence

import numpy as np

from facever.errors import (DatabaseError, DuplicateIdentityError, FaceQualityError, FaceverError, ImageError,
                            ModelVersionMismatchError, MultipleFacesError, NoFaceError, PersonExistsError,
                            PersonNotFoundError)
from facever.store import repository as repo
from facever.store.schema import NAME_MAX_LENGTH
from facever.store.session import Database, WriteConflict

if TYPE_CHECKING:
    from facever.api import FaceVerifier, VerifyResult
    from facever.embedding import AlignedFace

#: How a person is scored against a query: nearest enrolled face, or mean of the 3 nearest.
Scoring = Literal["nearest", "mean3"]

#: ``progress(done, total)`` callback for long operations.
Progress = Callable[[int, int], None]

#: File name endings read as images by :meth:`Gallery.enroll_dir` and the CLI.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".gif"})

#: Default quality bar: estimated face width in source pixels, Laplacian variance of the crop.
MIN_FACE_SIZE = 40.0
MIN_SHARPNESS = 15.0

_WRITE_ATTEMPTS = 3
_MAX_SIM_ELEMENTS = 1 << 25  # query×gallery similarities computed at once (128 MiB of float32)

# ==============================================================================================
# Results
# ==============================================================================================
@dataclass(frozen=True)
class ImageOutcome:
    """What enrolment did with one image.

    ``status`` is ``"enrolled"``, ``"skipped"`` (this exact image is already enrolled for the person)
    or ``"rejected"`` (``reason`` says why: unreadable, no face, below the quality bar...).
    """

    source: str
    status: Literal["enrolled", "skipped", "rejected"]
    reason: str = ""
    sha256: str = ""
    face_id: int | None = None
    face: dict[str, Any] | None = None
    quality: dict[str, float] | None = None
    error: FaceverError | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"source": self.source, "status": self.status, "reason": self.reason, "sha256": self.sha256,
                "face_id": self.face_id, "face": self.face, "quality": self.quality}


@dataclass
class EnrollReport:
    """Outcome of enrolling one person: one :class:`ImageOutcome` per image, in input order.

    ``error`` is set (and nothing was written) when :meth:`Gallery.enroll_dir` refused a whole
    person, e.g. as a duplicate identity.
    """

    person: str
    outcomes: list[ImageOutcome] = field(default_factory=list)
    error: str | None = None

    def _count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def enrolled(self) -> int:
        """Images newly enrolled."""
        return self._count("enrolled")

    @property
    def skipped(self) -> int:
        """Images already enrolled before."""
        return self._count("skipped")

    @property
    def rejected(self) -> int:
        """Images refused."""
        return self._count("rejected")

    @property
    def ok(self) -> bool:
        """No image rejected and the person not refused."""
        return self.error is None and self.rejected == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"person": self.person, "enrolled": self.enrolled, "skipped": self.skipped, "rejected": self.rejected,
                "error": self.error, "images": [o.to_dict() for o in self.outcomes]}


@dataclass(frozen=True)
class Candidate:
    """A person and their score (distance in [0, 2]) against a query face."""

    person: str
    distance: float


@dataclass(frozen=True)
class IdentifyResult:
    """Identification of one face.

    Attributes:
        person: the best person, or None (unknown) when their distance > ``threshold`` or the
            gallery is empty.
        distance: the best person's score (None for an empty gallery).
        threshold: the identification threshold used.
        candidates: the top-k people, nearest first (also when unknown).
        face / quality: the detected face (box, landmarks, score) and crop quality, if from an image.
        scoring: ``"nearest"`` or ``"mean3"``.
        model_version: the model that embedded the face.
    """

    person: str | None
    distance: float | None
    threshold: float
    candidates: list[Candidate]
    face: dict[str, Any] | None = None
    quality: dict[str, float] | None = None
    scoring: str = "nearest"
    model_version: str = ""

    @property
    def known(self) -> bool:
        """True when the face was identified as an enrolled person."""
        return self.person is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"person": self.person, "known": self.known,
                "distance": None if self.distance is None else round(self.distance, 6),
                "threshold": self.threshold, "scoring": self.scoring,
                "candidates": [{"person": c.person, "distance": round(c.distance, 6)} for c in self.candidates],
                "face": self.face, "quality": self.quality, "model_version": self.model_version}


@dataclass(frozen=True)
class PersonSummary:
    """An enrolled person: ``name``, number of faces, creation time (UTC)."""

    name: str
    n_faces: int
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"name": self.name, "faces": self.n_faces, "created": self.created.isoformat()}


@dataclass(frozen=True)
class FaceSummary:
    """One enrolled face of a person (no crop bytes): source, image hash, box/landmarks in source
    pixels, detector score, quality figures, creation time, model versions that embedded it."""

    id: int
    source: str
    sha256: str
    box: list[float]
    landmarks: list[list[float]]
    score: float
    quality: dict[str, float]
    created: datetime
    model_versions: list[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"id": self.id, "source": self.source, "sha256": self.sha256, "box": self.box,
                "landmarks": self.landmarks, "score": self.score, "quality": self.quality,
                "created": self.created.isoformat(), "model_versions": self.model_versions}


@dataclass(frozen=True)
class PersonDetail:
    """A person with each of their faces."""

    name: str
    created: datetime
    faces: list[FaceSummary]

    @property
    def n_faces(self) -> int:
        """Number of enrolled faces."""
        return len(self.faces)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"name": self.name, "created": self.created.isoformat(), "n_faces": self.n_faces,
                "faces": [f.to_dict() for f in self.faces]}


@dataclass(frozen=True)
class ReindexReport:
    """Outcome of :meth:`Gallery.reindex`: faces embedded now, faces in total, old vectors deleted."""

    model_version: str
    embedded: int
    total: int
    pruned: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"model_version": self.model_version, "embedded": self.embedded, "total": self.total,
                "pruned": self.pruned}


# ==============================================================================================
# In-memory search
# ==============================================================================================
def person_distances(queries: np.ndarray, vectors: np.ndarray, starts: np.ndarray,
                     scoring: Scoring = "nearest") -> np.ndarray:
    """Score every person against every query.

    Args:
        queries: ``(Q, D)`` float32 unit vectors.
        vectors: ``(N, D)`` float32 unit vectors, the rows of each person contiguous.
        starts: ``(P,)`` int, strictly increasing, ``starts[0] == 0``: first row of each person.
        scoring: ``"nearest"`` (min distance over the person's rows) or ``"mean3"`` (mean of the
            three smallest distances; of all rows for people with fewer).
    Returns:
        ``(Q, P)`` float32 distances in [0, 2].
    """
    queries = np.asarray(queries, np.float32)
    vectors = np.asarray(vectors, np.float32)
    starts = np.asarray(starts, np.intp)
    n_q, n = len(queries), len(vectors)
    out = np.empty((n_q, len(starts)), np.float32)
    if n_q == 0 or len(starts) == 0:
        return out
    step = max(1, _MAX_SIM_ELEMENTS // max(n, 1))
    for lo in range(0, n_q, step):
        sims = queries[lo:lo + step] @ vectors.T                     # (q, N) cosine similarities
        if scoring == "nearest":
            best = np.maximum.reduceat(sims, starts, axis=1)        # nearest = most similar row
            out[lo:lo + step] = np.sqrt(np.clip(2.0 - 2.0 * best, 0.0, 4.0))
        elif scoring == "mean3":
            dist = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, 4.0))
            out[lo:lo + step] = _mean_smallest(dist, starts, 3)
        else:
            raise ValueError(f"unknown scoring {scoring!r}; use 'nearest' or 'mean3'")
    return out


def _mean_smallest(dist: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """Per segment of columns, the mean of the ``k`` smallest values (all, if fewer). ``(q, N) → (q, P)``.

    Exact with ties: each of ``k`` rounds takes the segment minimum as many times as it occurs
    (capped by what is still needed) and masks it out.
    """
    counts = np.diff(np.append(starts, dist.shape[1]))
    wanted = np.minimum(counts, k).astype(np.float32)
    remaining = np.broadcast_to(wanted, (len(dist), len(starts))).copy()
    total = np.zeros_like(remaining)
    work = dist.copy()
    for _ in range(k):
        low = np.minimum.reduceat(work, starts, axis=1)
        hit = work == np.repeat(low, counts, axis=1)
        take = np.minimum(np.add.reduceat(hit, starts, axis=1, dtype=np.float32), remaining)
        total += np.where(take > 0, take * np.where(np.isfinite(low), low, 0.0), 0.0)
        remaining -= take
        work[hit] = np.inf
    return total / wanted


def nearest_k(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest entries of each row of ``(Q, P)`` distances, ascending.

    Uses ``argpartition`` (O(P) per row), then sorts only the ``k`` kept. Returns
    ``(indices (Q, k'), distances (Q, k'))`` with ``k' = min(k, P)``.
    """
    distances = np.asarray(distances)
    n_q, n_p = distances.shape
    k = max(0, min(int(k), n_p))
    if k == 0:
        return np.zeros((n_q, 0), np.intp), np.zeros((n_q, 0), distances.dtype)
    idx = np.argpartition(distances, k - 1, axis=1)[:, :k] if k < n_p else np.tile(np.arange(n_p), (n_q, 1))
    part = np.take_along_axis(distances, idx, axis=1)
    order = np.argsort(part, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(part, order, axis=1)


class SearchIndex:
    """Every embedding of one model version as one matrix, rows grouped by person.

    Attributes:
        vectors: ``(N, D)`` float32 unit vectors.
        starts: ``(P,)`` first row of each person in ``vectors``.
        person_ids: ``(P,)`` database ids; ``names``: the ``P`` names.
        model_version: the model that made the vectors.
    """

    def __init__(self, row_person_ids: np.ndarray, vectors: np.ndarray, names_by_id: dict[int, str],
                 model_version: str) -> None:
        row_person_ids = np.asarray(row_person_ids, np.int64)
        vectors = np.asarray(vectors, np.float32)
        if len(row_person_ids) and np.any(np.diff(row_person_ids) < 0):
            order = np.argsort(row_person_ids, kind="stable")
            row_person_ids, vectors = row_person_ids[order], vectors[order]
        self.vectors = vectors
        self.person_ids, self.starts = np.unique(row_person_ids, return_index=True)
        self.names = [names_by_id[int(i)] for i in self.person_ids]
        self.model_version = model_version

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def n_people(self) -> int:
        """Number of people with at least one vector."""
        return len(self.starts)

    def rows_of(self, person_id: int) -> np.ndarray:
        """The ``(n, D)`` vectors of one person (empty if none)."""
        pos = int(np.searchsorted(self.person_ids, person_id))
        if pos >= len(self.person_ids) or self.person_ids[pos] != person_id:
            return self.vectors[:0]
        end = self.starts[pos + 1] if pos + 1 < len(self.starts) else len(self.vectors)
        return self.vectors[self.starts[pos]:end]

    def distances(self, queries: np.ndarray, scoring: Scoring = "nearest") -> np.ndarray:
        """``(Q, D)`` queries → ``(Q, P)`` per-person distances (see :func:`person_distances`)."""
        return person_distances(queries, self.vectors, self.starts, scoring)

    def add(self, person_id: int, name: str, vectors: np.ndarray) -> None:
        """Insert one person's new ``(n, D)`` vectors, keeping rows grouped by person id."""
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.vectors.shape[1])
        pos = int(np.searchsorted(self.person_ids, person_id))
        if pos < len(self.person_ids) and self.person_ids[pos] == person_id:
            end = self.starts[pos + 1] if pos + 1 < len(self.starts) else len(self.vectors)
            self.vectors = np.insert(self.vectors, end, vectors, axis=0)
            self.starts[pos + 1:] += len(vectors)
            return
        at = self.starts[pos] if pos < len(self.starts) else len(self.vectors)
        self.vectors = np.insert(self.vectors, at, vectors, axis=0)
        self.starts = np.insert(self.starts + np.where(np.arange(len(self.starts)) >= pos, len(vectors), 0), pos, at)
        self.person_ids = np.insert(self.person_ids, pos, person_id)
        self.names.insert(pos, name)


# ==============================================================================================
# The gallery
# ==============================================================================================
@dataclass
class _Pending:
    """An accepted image waiting to be written."""

    index: int
    label: str
    sha256: str
    aligned: "AlignedFace"


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

    Use it as a context manager (or call :meth:`close`). Raises :class:`DatabaseError` when the
    database is unreachable, corrupt, read-only or from a newer facever.
    """

    def __init__(self, db_url: str | None = None, verifier: "FaceVerifier | None" = None, *,
                 model: str | os.PathLike[str] | None = None, scoring: Scoring = "nearest",
                 min_face_size: float = MIN_FACE_SIZE, min_sharpness: float = MIN_SHARPNESS) -> None:
        if scoring not in ("nearest", "mean3"):
            raise ValueError(f"unknown scoring {scoring!r}; use 'nearest' or 'mean3'")
        self.db = Database(db_url)
        self._verifier = verifier
        self._model = model
        self.scoring: Scoring = scoring
        self.min_face_size = float(min_face_size)
        self.min_sharpness = float(min_sharpness)
        self._index: SearchIndex | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Release database connections (the object is unusable afterwards)."""
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

    @property
    def model_version(self) -> str:
        """Version of the model embeddings are compared under."""
        return self.verifier.model_version

    @property
    def identify_threshold(self) -> float:
        """Open-set threshold: the bundle's calibrated identification threshold, else τ."""
        calibrated = getattr(self.verifier.bundle.metadata, "identify_threshold", None)
        return float(calibrated.value) if calibrated is not None else float(self.verifier.threshold)

    def refresh(self) -> None:
        """Forget the in-memory matrix; the next search reloads it (to see other processes' writes)."""
        self._index = None

    # -- enrolment ------------------------------------------------------------------------------
    def enroll(self, name: str, images: Sequence[str | os.PathLike[str] | bytes | np.ndarray], force: bool = False,
               allow_duplicate: bool = False, strict: bool = False, progress: Progress | None = None) -> EnrollReport:
        """Enroll images of one person, in one transaction.

        Every image is first read, hashed (SHA-256 of its bytes), detected (the verifier's face
        policy: largest face by default), aligned and quality-checked; the accepted faces are then
        embedded in one batch and written together, so an exception leaves the database exactly as
        it was. An image whose bytes are already enrolled for this person is ``skipped``.

        Args:
            name: the person's name, stored exactly (any characters but control characters).
            images: paths, encoded image bytes, or ``(H, W, 3)`` RGB uint8 arrays.
            force: accept faces below the quality bar (``min_face_size``, ``min_sharpness``).
            allow_duplicate: enroll even when a face is within τ of another enrolled person.
            strict: raise the first rejection's error instead of reporting it (nothing is written).
            progress: called as ``progress(images done, images total)``.

        Raises:
            DuplicateIdentityError: a face is nearer than τ to another person (nothing written).
            ModelVersionMismatchError: the gallery holds faces not embedded by this model.
            DatabaseError: the write failed (rolled back).
            ValueError: invalid name.
        """
        name = check_name(name)
        images = list(images)
        with self.db.read() as session:
            person = repo.get_person(session, name)
            known = repo.person_hashes(session, person.id) if person is not None else set()
        outcomes: list[ImageOutcome | None] = [None] * len(images)
        pending: list[_Pending] = []
        seen: set[str] = set()
        for i, image in enumerate(images):
            outcome = self._prepare(i, image, known, seen, force, pending)
            if outcome is not None:
                outcomes[i] = outcome
                if strict and outcome.status == "rejected":
                    raise outcome.error or FaceQualityError(outcome.reason)
            if progress is not None:
                progress(i + 1, len(images))
        if pending:
            vectors = self.verifier.embedder.embed_crops(np.stack([p.aligned.crop for p in pending]))
            if not allow_duplicate:
                self._check_duplicates(name, pending, vectors)
            for p, face_id in zip(pending, self._write_faces(name, pending, vectors)):
                face = p.aligned.face.to_dict()
                quality = p.aligned.quality.to_dict()
                outcomes[p.index] = (
                    ImageOutcome(p.label, "enrolled", "", p.sha256, face_id, face, quality) if face_id is not None
                    else ImageOutcome(p.label, "skipped", "already enrolled for this person", p.sha256))
        return EnrollReport(person=name, outcomes=[o for o in outcomes if o is not None])

    def _prepare(self, i: int, image, known: set[str], seen: set[str], force: bool,
                 pending: list[_Pending]) -> ImageOutcome | None:
        """Read, hash, detect, align and quality-check one image; queue it or return its outcome."""
        label = _label(image, i)
        try:
            data, sha = _read_and_hash(image, label)
        except ImageError as exc:
            return ImageOutcome(label, "rejected", str(exc), error=exc)
        if sha in known:
            return ImageOutcome(label, "skipped", "already enrolled for this person", sha)
        if sha in seen:
            return ImageOutcome(label, "skipped", "same image given twice", sha)
        try:
            aligned = self.verifier.faces(data, name=label)[0]
        except (ImageError, NoFaceError, MultipleFacesError, FaceQualityError) as exc:
            return ImageOutcome(label, "rejected", str(exc), sha, error=exc)
        problem = self.quality_problem(aligned)
        if problem and not force:
            exc = FaceQualityError(f"{label}: {problem} (force / --force enrolls it anyway)")
            return ImageOutcome(label, "rejected", str(exc), sha, face=aligned.face.to_dict(),
                                quality=aligned.quality.to_dict(), error=exc)
        seen.add(sha)
        pending.append(_Pending(i, label, sha, aligned))
        return None

    def quality_problem(self, aligned: "AlignedFace") -> str | None:
        """Why a face is below the enrolment quality bar, or None when it passes."""
        q = aligned.quality
        if q.face_size < self.min_face_size:
            return f"face too small ({q.face_size:.0f} px wide < {self.min_face_size:.0f} px)"
        if q.sharpness < self.min_sharpness:
            return f"face too blurry (sharpness {q.sharpness:.1f} < {self.min_sharpness:.1f})"
        return None

    def _check_duplicates(self, name: str, pending: list[_Pending], vectors: np.ndarray) -> None:
        """Raise :class:`DuplicateIdentityError` if a new face is within τ of another person."""
        index = self._search_index()
        if index.n_people == 0:
            return
        dist = index.distances(vectors, "nearest")
        if name in index.names:
            dist[:, index.names.index(name)] = np.inf
        best = np.argmin(dist, axis=1)
        best_d = dist[np.arange(len(dist)), best]
        tau = float(self.verifier.threshold)
        j = int(np.argmin(best_d))
        if best_d[j] < tau:
            other = index.names[int(best[j])]
            raise DuplicateIdentityError(
                f"{pending[j].label}: this face is {best_d[j]:.3f} from enrolled person {other!r} "
                f"(< τ = {tau:.3f}); not enrolling {name!r} (allow_duplicate / --allow-duplicate overrides)")

    def _write_faces(self, name: str, pending: list[_Pending], vectors: np.ndarray) -> list[int | None]:
        """Write the accepted faces in one transaction; ids, None where another writer got there first."""
        version = self.verifier.model_version
        meta = _metadata_json(self.verifier)
        new = [repo.NewFace(crop_png=encode_png(p.aligned.crop), source=p.label, sha256=p.sha256,
                            box=[float(v) for v in p.aligned.face.box],
                            landmarks=np.asarray(p.aligned.face.landmarks, float).round(3).tolist(),
                            detector_score=float(p.aligned.face.score),
                            quality={k: float(v) for k, v in asdict(p.aligned.quality).items()}) for p in pending]
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.db.write() as session:
                    person = repo.get_or_create_person(session, name)
                    repo.ensure_model(session, version, meta)
                    existing = repo.person_hashes(session, person.id)
                    ids: list[int | None] = []
                    for face, vector in zip(new, vectors):
                        if face.sha256 in existing:
                            ids.append(None)
                            continue
                        ids.append(repo.add_face(session, person.id, face, version, vector))
                        existing.add(face.sha256)
                    person_id = person.id
                break
            except WriteConflict:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
        if self._index is not None and self._index.model_version == version:
            written = [v for v, i in zip(vectors, ids) if i is not None]
            if written:
                self._index.add(person_id, name, np.stack(written))
        return ids

    def enroll_dir(self, root: str | os.PathLike[str], force: bool = False, allow_duplicate: bool = False,
                   progress: Progress | None = None) -> Iterator[EnrollReport]:
        """Enroll a folder holding one sub-folder of images per person (the folder name is the name).

        Each person is one transaction, so an interrupted run leaves every person either fully
        enrolled or absent, and running it again completes the rest (already enrolled images are
        skipped). A person refused as a duplicate identity, or with an invalid name, is reported with
        ``error`` set and the others go on. Yields one :class:`EnrollReport` per person, by name.

        Args:
            progress: called as ``progress(images done, images total)`` over the whole folder.
        """
        folders = person_folders(root)
        total = sum(len(files) for _, files in folders)
        done = 0
        for name, files in folders:
            def step(i: int, _n: int, base: int = done) -> None:
                if progress is not None:
                    progress(base + i, total)
            try:
                report = self.enroll(name, files, force=force, allow_duplicate=allow_duplicate, progress=step)
            except (DuplicateIdentityError, ValueError) as exc:
                report = EnrollReport(person=name, error=str(exc))
            done += len(files)
            if progress is not None:
                progress(done, total)
            yield report

    # -- search ---------------------------------------------------------------------------------
    def _search_index(self) -> SearchIndex:
        """The in-memory matrix of the current model version (loaded once, updated on writes)."""
        version = self.verifier.model_version
        if self._index is not None and self._index.model_version == version:
            return self._index
        dim = int(self.verifier.bundle.metadata.embedding_dim)
        with self.db.read() as session:
            n_faces = repo.count_faces(session)
            person_ids, _face_ids, vectors = repo.load_embeddings(session, version, dim)
            names = repo.person_names(session)
            versions = repo.model_versions(session) if len(person_ids) < n_faces else {}
        if len(person_ids) < n_faces:
            others = ", ".join(v for v in versions if v != version) or "none"
            raise ModelVersionMismatchError(
                f"{n_faces - len(person_ids)} of {n_faces} enrolled faces have no embedding by the loaded model "
                f"{version} (stored embeddings are by: {others}); run `facever reindex` to re-embed the stored "
                "crops with this model")
        self._index = SearchIndex(person_ids, vectors, names, version)
        return self._index

    def search(self, embeddings: np.ndarray, top_k: int = 5, threshold: float | None = None,
               scoring: Scoring | None = None) -> list[IdentifyResult]:
        """Identify ``(Q, D)`` embeddings made by the current model (one result per row)."""
        scoring = scoring or self.scoring
        thr = self.identify_threshold if threshold is None else float(threshold)
        index = self._search_index()
        emb = np.asarray(embeddings, np.float32).reshape(-1, index.vectors.shape[1])
        idx, dist = nearest_k(index.distances(emb, scoring), max(1, top_k))
        results = []
        for q in range(len(emb)):
            cands = [Candidate(index.names[int(j)], float(d)) for j, d in zip(idx[q], dist[q])]
            best = cands[0] if cands else None
            results.append(IdentifyResult(
                person=best.person if best is not None and best.distance <= thr else None,
                distance=best.distance if best is not None else None, threshold=thr,
                candidates=cands[:max(0, top_k)], scoring=scoring, model_version=index.model_version))
        return results

    def identify(self, image, top_k: int = 5, threshold: float | None = None, scoring: Scoring | None = None,
                 faces: Literal["all", "largest"] = "all", name: str | None = None) -> list[IdentifyResult]:
        """Identify the faces in ``image`` (path, bytes or RGB array).

        Args:
            top_k: people listed per face, nearest first.
            threshold: identification threshold (distance); default :attr:`identify_threshold`.
            scoring: ``"nearest"`` or ``"mean3"`` (default: the gallery's).
            faces: ``"all"`` faces in the image (largest first) or only the ``"largest"``.
            name: label of the image in error messages.
        Returns:
            One :class:`IdentifyResult` per face, largest face first.
        Raises:
            ImageError, NoFaceError: unreadable image, no face.
            ModelVersionMismatchError: enrolled faces lack embeddings by the loaded model.
        """
        self._search_index()  # fail on a version mismatch before the expensive part
        aligned = self.verifier.embedder.find_faces(image, policy=faces, name=name)
        emb = self.verifier.embedder.embed_crops(np.stack([a.crop for a in aligned]))
        results = self.search(emb, top_k=top_k, threshold=threshold, scoring=scoring)
        return [IdentifyResult(r.person, r.distance, r.threshold, r.candidates, a.face.to_dict(), a.quality.to_dict(),
                               r.scoring, r.model_version) for r, a in zip(results, aligned)]

    def verify_person(self, image, name: str) -> "VerifyResult":
        """Is the (largest) face in ``image`` the enrolled person ``name``?

        The distance is to the person's nearest enrolled face; the decision uses τ.
        Raises :class:`PersonNotFoundError`, :class:`ModelVersionMismatchError`, image errors.
        """
        with self.db.read() as session:
            person_id = repo.require_person(session, name).id
        rows = self._search_index().rows_of(person_id)
        if len(rows) == 0:
            raise PersonNotFoundError(f"{name!r} has no enrolled face")
        aligned, emb = self.verifier.embed_with_face(image)
        nearest = rows[int(np.argmax(rows @ emb))]
        return self.verifier.compare(emb, nearest, faces=[aligned.face.to_dict()])

    # -- management -----------------------------------------------------------------------------
    def people(self) -> list[PersonSummary]:
        """Every enrolled person with their number of faces, by name."""
        with self.db.read() as session:
            return [PersonSummary(p.name, n, _utc(p.created)) for p, n in repo.list_people(session)]

    def person(self, name: str) -> PersonDetail:
        """One person and their faces. Raises :class:`PersonNotFoundError`."""
        with self.db.read() as session:
            person = repo.require_person(session, name)
            faces = [FaceSummary(f.id, f.source, f.sha256, list(f.box), [list(p) for p in f.landmarks],
                                 f.detector_score, {"face_size": f.face_size, "sharpness": f.sharpness,
                                                    "frontality": f.frontality}, _utc(f.created), versions)
                     for f, versions in repo.person_faces(session, person.id)]
            return PersonDetail(person.name, _utc(person.created), faces)

    def rename(self, old: str, new: str) -> None:
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
        except WriteConflict as exc:
            raise PersonExistsError(f"a person named {new!r} is already enrolled") from exc
        self._index = None

    def remove(self, name: str, vacuum: bool = False) -> int:
        """Delete a person with every crop and vector of theirs; return the number of faces removed.

        On SQLite, deleted content is overwritten with zeros (``secure_delete``) and the WAL is
        checkpointed, so no copy stays in the database files; ``vacuum`` also compacts the file.
        Raises :class:`PersonNotFoundError`.
        """
        with self.db.write() as session:
            n = repo.delete_person(session, repo.require_person(session, name).id)
        self._index = None
        self.db.checkpoint()
        if vacuum:
            self.db.vacuum()
        return n

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
        done = embedded = 0
        if progress is not None:
            progress(0, len(todo))
        for lo in range(0, len(todo), batch_size):
            chunk = todo[lo:lo + batch_size]
            with self.db.read() as session:
                rows = repo.crops(session, chunk)
            if rows:
                vectors = self.verifier.embedder.embed_crops(np.stack([decode_png(c) for _, c in rows]))
                with self.db.write() as session:
                    repo.ensure_model(session, version, meta)
                    embedded += repo.put_embeddings(session, version, [i for i, _ in rows], vectors)
            done += len(chunk)
            if progress is not None:
                progress(done, len(todo))
        pruned = 0
        if prune:
            with self.db.write() as session:
                pruned = repo.delete_other_embeddings(session, version)
            self.db.checkpoint()
        self._index = None
        return ReindexReport(version, embedded, total, pruned)

    def check(self) -> repo.CheckReport:
        """Health report of the database (see :func:`facever.store.check_database`)."""
        return repo.check_database(self.db)

    def backup(self, dest: str | os.PathLike[str], overwrite: bool = False) -> int:
        """Copy a SQLite gallery consistently to ``dest``; return its size in bytes."""
        return self.db.backup(dest, overwrite=overwrite)


# ==============================================================================================
# Helpers
# ==============================================================================================
def check_name(name: str) -> str:
    """Validate a person name and return it unchanged (names are stored exactly as given).

    Raises ValueError for a non-string, an empty or blank name, control characters (newline, tab...)
    or more than :data:`~facever.store.schema.NAME_MAX_LENGTH` characters.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("a person name must be a non-empty string")
    if len(name) > NAME_MAX_LENGTH:
        raise ValueError(f"a person name must be at most {NAME_MAX_LENGTH} characters, got {len(name)}")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise ValueError(f"a person name must not contain control characters: {name!r}")
    return name


def person_folders(root: str | os.PathLike[str]) -> list[tuple[str, list[Path]]]:
    """``(name, image files)`` for each non-hidden sub-folder of ``root``, sorted by name.

    Image files are those ending in :data:`IMAGE_SUFFIXES` (any case), not hidden, sorted; deeper
    folders and files directly in ``root`` are ignored. Raises NotADirectoryError/FileNotFoundError.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out.append((sub.name, image_files(sub)))
    return out


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly in ``folder`` (by suffix, not hidden), sorted by name."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def encode_png(crop: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 RGB crop → PNG bytes (lossless)."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(crop, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("could not encode crop as PNG")
    return buf.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes → ``(H, W, 3)`` uint8 RGB. Raises :class:`DatabaseError` for damaged data."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatabaseError("a stored face crop is damaged (not a PNG image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _label(image, i: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fsdecode(image)
    if isinstance(image, np.ndarray):
        return f"<array #{i + 1}>"
    return f"<bytes #{i + 1}>"


def _read_and_hash(image, label: str) -> tuple[Any, str]:
    """The image data to decode and the SHA-256 hex digest identifying it."""
    from facever.imaging import image_sha256, read_image_bytes

    if isinstance(image, (str, os.PathLike)):
        data = read_image_bytes(image, name=label)
        return data, image_sha256(data)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ImageError(f"{label}: empty image data")
        return data, image_sha256(data)
    if isinstance(image, np.ndarray):
        arr = np.ascontiguousarray(image)
        header = f"{arr.dtype.str}{arr.shape}".encode()
        return arr, image_sha256(header + arr.tobytes())
    raise TypeError(f"an image must be a path, bytes or a numpy array, not {type(image).__name__}")


def _metadata_json(verifier) -> dict[str, Any]:
    meta = getattr(verifier.bundle, "metadata", None)
    try:
        return dict(meta.to_json()) if meta is not None else {}
    except Exception:  # metadata is informative only
        return {}


def _utc(value: datetime) -> datetime:
    """Datetimes come back naive from SQLite; they are UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
