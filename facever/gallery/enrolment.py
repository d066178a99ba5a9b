"""Enrolment: read, detect, align, quality-check, deduplicate and write a person's faces in one
transaction (:class:`Enrolment`, one part of :class:`facever.gallery.Gallery`).

It asks the search backend (:class:`~facever.gallery.index.SearchBackend`) for the nearest other
people of each new face (the duplicate gate, which refuses, and the look-alike warning, which does
not) and tells it about the faces it wrote (``added``); the threshold policy
(:class:`~facever.gallery.thresholds.ThresholdPolicy`) gives the gate and the identification threshold.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from facever import config
from facever.errors import DuplicateIdentityError, FaceQualityError, ImageError, MultipleFacesError, NoFaceError
from facever.gallery.folders import person_folders
from facever.gallery.index import Hits, SearchBackend, model_of
from facever.gallery.policy import ThresholdChoice, gallery_matrix
from facever.gallery.records import _label, _metadata_json, _read_and_hash, check_name, encode_png
from facever.gallery.results import EnrollReport, ImageOutcome, LookAlike
from facever.gallery.thresholds import ThresholdPolicy
from facever.store import repository as repo
from facever.store.session import Database, WriteConflict

if TYPE_CHECKING:
    from facever.api import FaceVerifier
    from facever.embedding import AlignedFace

#: ``progress(done, total)`` callback for long operations.
Progress = Callable[[int, int], None]

#: Default quality bar: estimated face width in source pixels, Laplacian variance of the crop.
MIN_FACE_SIZE = 40.0
MIN_SHARPNESS = 15.0

#: Enrolment searches first only for MTCNN boxes at least this fraction of the quality bar
#: (``min_face_size``) wide: 99 % of faces on LFW and pins have a box at least 0.68 of their
#: estimated width. Skipping the finest pyramid level made enrolment 15 % faster and chose the same
#: largest face, to the bit, on 1,077 LFW, pins and bollywood photos; a photo where the pruned
#: search finds nothing is searched in full, so its outcome and message are unchanged.
ENROL_BOX_FRACTION = 0.7

_WRITE_ATTEMPTS = 3

#: Most other people a look-alike warning names (the nearest ones).
LOOK_ALIKES_MAX = 5


@dataclass
class _Pending:
    """An accepted image waiting to be written."""

    index: int
    label: str
    sha256: str
    aligned: "AlignedFace"
    vector: np.ndarray
    crop_png: bytes



@dataclass
class PreparedEnrolment:
    """What :meth:`Enrolment.prepare` found: per-image outcomes so far (None for faces to write), the
    accepted faces and their ``(n, D)`` embeddings."""

    name: str
    outcomes: list[ImageOutcome | None]
    pending: list[_Pending]
    vectors: np.ndarray


class Enrolment:
    """Enrols people: the enrolment part of :class:`~facever.gallery.Gallery`.

    Args:
        db: the gallery database.
        verifier: returns the :class:`~facever.api.FaceVerifier` (loaded on first use).
        search: returns the current search backend.
        thresholds: the threshold policy (duplicate gate).
        on_write: called with the change counter after each committed write.
        min_face_size, min_sharpness: the quality bar (attributes, may be changed).
    """

    def __init__(self, db: Database, verifier: Callable[[], "FaceVerifier"], search: Callable[[], SearchBackend],
                 thresholds: ThresholdPolicy, on_write: Callable[[int], None], min_face_size: float = MIN_FACE_SIZE,
                 min_sharpness: float = MIN_SHARPNESS) -> None:
        self.db = db
        self._verifier = verifier
        self._search = search
        self.thresholds = thresholds
        self._on_write = on_write
        self.min_face_size = float(min_face_size)
        self.min_sharpness = float(min_sharpness)

    @property
    def verifier(self) -> "FaceVerifier":
        """The verifier faces are embedded with."""
        return self._verifier()

    # -- enrolment ------------------------------------------------------------------------------
    def enroll(self, name: str, images: Sequence[str | os.PathLike[str] | bytes | np.ndarray], force: bool = False,
               allow_duplicate: bool = False, strict: bool = False, progress: Progress | None = None,
               labels: Sequence[str] | None = None, actor: str = "library") -> EnrollReport:
        """Enroll images of one person, in one transaction.

        Every image is first read, hashed (SHA-256 of its bytes), detected (the verifier's face
        policy: largest face by default), aligned, quality-checked and embedded, one photo per worker
        thread; the accepted faces are then written together, so an exception leaves the database exactly as
        it was. An image whose bytes are already enrolled for this person is ``skipped``. The write
        is audited (action ``enroll``, the new face ids) in the same transaction. A face nearer than
        the (looser) identification threshold to another enrolled person is enrolled all the same, and
        the report's ``look_alikes`` names that person with the distance: a warning, not a refusal.

        Args:
            name: the person's name, stored exactly (any characters but control characters).
            images: paths, encoded image bytes, or ``(H, W, 3)`` RGB uint8 arrays.
            force: accept faces below the quality bar (``min_face_size``, ``min_sharpness``).
            allow_duplicate: enroll even when a face is nearer than the duplicate gate to another
                enrolled person (see :meth:`duplicate_threshold`).
            strict: raise the first rejection's error instead of reporting it (nothing is written).
            progress: called as ``progress(images done, images total)``.
            labels: one label per image for reports and the stored ``source`` (e.g. uploaded file
                names); default: the path, or ``<bytes #i>`` / ``<array #i>``.
            actor: who writes, for the audit log.

        Raises:
            DuplicateIdentityError: a face is nearer than the duplicate gate to another person (nothing
                written); the message names that person, the distance and what to do.
            ModelVersionMismatchError: the gallery holds faces not embedded by this model.
            DatabaseError: the write failed (rolled back).
            ValueError: invalid name.
        """
        prepared = self.prepare(name, images, force=force, strict=strict, progress=progress, labels=labels)
        return self.commit(prepared, allow_duplicate=allow_duplicate, actor=actor)

    def prepare(self, name: str, images: Sequence[str | os.PathLike[str] | bytes | np.ndarray], force: bool = False,
                strict: bool = False, progress: Progress | None = None,
                labels: Sequence[str] | None = None) -> "PreparedEnrolment":
        """The expensive, read-only half of :meth:`enroll`: read, hash, detect, align, quality-check and
        embed (arguments as there). Touches no search index and writes nothing, so callers may run it
        without holding a lock on the gallery; :meth:`commit` then checks duplicates and writes."""
        name = check_name(name)
        images = list(images)
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        with self.db.read() as session:
            person = repo.get_person(session, name)
            known = repo.person_hashes(session, person.id) if person is not None else set()
        outcomes: list[ImageOutcome | None] = [None] * len(images)
        todo: list[tuple[int, str, object, str]] = []  # (index, label, bytes or array, sha256)
        seen: set[str] = set()
        for i, image in enumerate(images):  # read and hash everything first: cheap, and skips are free
            label = labels[i] if labels is not None else _label(image, i)
            try:
                data, sha = _read_and_hash(image, label)
            except ImageError as exc:
                outcomes[i] = ImageOutcome(label, "rejected", str(exc), error=exc)
                if strict:
                    raise
                continue
            if sha in known:
                outcomes[i] = ImageOutcome(label, "skipped", "already enrolled for this person", sha)
            elif sha in seen:
                outcomes[i] = ImageOutcome(label, "skipped", "same image given twice", sha)
            else:
                seen.add(sha)
                todo.append((i, label, data, sha))
        pending: list[_Pending] = []
        for done, ((i, label, data, sha), (aligned, encoded, error)) in enumerate(zip(todo, self._embed_all(todo, force)), 1):
            outcome = self._accept(i, label, sha, aligned, encoded, error, force, pending)
            if outcome is not None:
                outcomes[i] = outcome
                if strict:
                    raise outcome.error or FaceQualityError(outcome.reason)
            if progress is not None:
                progress(len(images) - len(todo) + done, len(images))
        vectors = np.stack([p.vector for p in pending]) if pending else np.zeros((0, 0), np.float32)
        return PreparedEnrolment(name, outcomes, pending, vectors)

    def commit(self, prepared: "PreparedEnrolment", allow_duplicate: bool = False, actor: str = "library") -> EnrollReport:
        """The writing half of :meth:`enroll`: the duplicate gate and the look-alike warning against the
        gallery as it is now, then one transaction (images enrolled meanwhile by another writer come
        back ``skipped``)."""
        name, outcomes, pending, vectors = prepared.name, list(prepared.outcomes), prepared.pending, prepared.vectors
        look_alikes: list[LookAlike] = []
        if pending:
            version, dim = model_of(self.verifier)
            hits = self._search().top_people(vectors, LOOK_ALIKES_MAX + 1, "nearest", version, dim)  # + the person
            if not allow_duplicate:
                self._check_duplicates(name, pending, hits)
            threshold = self._look_alike_threshold(hits)  # of the gallery as the search saw it, before the write
            ids = self._write_faces(name, pending, vectors, actor)
            look_alikes = self._look_alikes(name, pending, hits, threshold, [i is not None for i in ids])
            for p, face_id in zip(pending, ids):
                outcomes[p.index] = (
                    ImageOutcome(p.label, "enrolled", "", p.sha256, face_id, p.aligned.face, p.aligned.quality)
                    if face_id is not None
                    else ImageOutcome(p.label, "skipped", "already enrolled for this person", p.sha256))
        return EnrollReport(person=name, outcomes=[o for o in outcomes if o is not None], look_alikes=look_alikes)

    def _embed_all(self, todo: list[tuple[int, str, object, str]], force: bool) -> list[tuple]:
        """``(aligned face | None, (embedding (D,), crop PNG bytes) | None, error | None)`` of each
        ``(index, label, data, sha)``, one photo per worker thread.

        Each worker detects, aligns and embeds its photo and encodes the crop for storage (a face
        below the quality bar is not embedded unless ``force``). onnxruntime and OpenCV release the
        GIL, so on two cores two photos are worked on at once, detection and the encoder alike (an
        encoder batch run after all detections kept the other core idle for 40 % of an enrolment)."""
        from concurrent.futures import ThreadPoolExecutor

        if not todo:
            return []
        verifier = self.verifier  # loaded once, before the threads
        policy = verifier.default_faces
        # the largest face is kept and small ones are refused: skip the search for tiny faces
        min_box = ENROL_BOX_FRACTION * self.min_face_size if policy == "largest" and not force else None

        def work(item):
            _, label, data, _ = item
            try:
                aligned = verifier.embedder.find_faces(data, faces=policy, name=label, min_box=min_box)[0]
            except (ImageError, NoFaceError, MultipleFacesError, FaceQualityError) as exc:
                return None, None, exc
            if self.quality_problem(aligned) and not force:
                return aligned, None, None  # rejected by _accept: nothing to embed
            # this is a worker thread already: no encoder threads of its own (parallel=False)
            vector = verifier.embedder.embed_crops(aligned.crop[None], parallel=False)[0]
            return aligned, (vector, encode_png(aligned.crop)), None

        if len(todo) < 2:
            return [work(item) for item in todo]
        with ThreadPoolExecutor(max_workers=config.worker_threads()) as pool:
            return list(pool.map(work, todo))

    def _accept(self, i: int, label: str, sha: str, aligned, encoded, error, force: bool,
                pending: list[_Pending]) -> ImageOutcome | None:
        """Quality-check one detected face; queue it, or return the image's rejection."""
        if error is not None:
            return ImageOutcome(label, "rejected", str(error), sha, error=error)
        problem = self.quality_problem(aligned)
        if problem and not force:
            exc = FaceQualityError(f"{label}: {problem} (force / --force enrolls it anyway)")
            return ImageOutcome(label, "rejected", str(exc), sha, face=aligned.face, quality=aligned.quality,
                                error=exc)
        pending.append(_Pending(i, label, sha, aligned, *encoded))  # embedded by its worker
        return None

    def quality_problem(self, aligned: "AlignedFace") -> str | None:
        """Why a face is below the enrolment quality bar, or None when it passes."""
        q = aligned.quality
        if q.face_size < self.min_face_size:
            return f"face too small ({q.face_size:.0f} px wide < {self.min_face_size:.0f} px)"
        if q.sharpness < self.min_sharpness:
            return f"face too blurry (sharpness {q.sharpness:.1f} < {self.min_sharpness:.1f})"
        return None

    def duplicate_threshold(self) -> ThresholdChoice:
        """The enrolment duplicate gate for the gallery as it is now (see :func:`~facever.gallery.duplicate_gate`)."""
        return self.thresholds.duplicate(self._search().counts(*model_of(self.verifier)))

    def _check_duplicates(self, name: str, pending: list[_Pending], hits: Hits) -> None:
        """Raise :class:`DuplicateIdentityError` if a new face is nearer than the duplicate gate to
        another person (a strict per-comparison false-accept rate, scaled by the gallery size).
        ``hits``: each new face's nearest people (at least 2, so the nearest other is among them)."""
        if hits.counts.n_people == 0:
            return
        others = [next(((n, float(d)) for n, d in zip(names, dist) if n != name), (None, np.inf))
                  for names, dist in zip(hits.names, hits.distances)]
        j = int(np.argmin([d for _, d in others]))
        other, best_d = others[j]
        if other is None:
            return
        gate = self.thresholds.duplicate(hits.counts)
        if best_d < gate.threshold:
            raise DuplicateIdentityError(
                f"{pending[j].label}: this face is {best_d:.3f} from enrolled person {other!r} (duplicate gate "
                f"{gate.threshold:.3f}: {gate.note}); not enrolling {name!r}. If these are photos of {other!r}, "
                f"enroll them under that name; if {name!r} is someone else, pass --allow-duplicate "
                f"(Python: allow_duplicate=True)")

    def _look_alike_threshold(self, hits: Hits) -> float | None:
        """The identification threshold (nearest-face scoring) for the gallery the search saw, as
        :meth:`Gallery.threshold_for <facever.gallery.Gallery.threshold_for>` gives it; None when empty."""
        if hits.counts.n_people == 0:
            return None
        version, dim = model_of(self.verifier)
        return self.thresholds.identification(hits.counts, scoring="nearest",
                                              gallery=gallery_matrix(self._search(), version, dim)).threshold

    def _look_alikes(self, name: str, pending: list[_Pending], hits: Hits, threshold: float | None,
                     written: list[bool]) -> list[LookAlike]:
        """Other people within ``threshold`` (distance) of a written new face: one entry per person at
        their smallest distance, nearest first, at most :data:`LOOK_ALIKES_MAX`; the person being
        enrolled is never named. ``written``: per pending face, whether it was written."""
        if threshold is None:
            return []
        nearest: dict[str, LookAlike] = {}
        for p, names, dists, kept in zip(pending, hits.names, hits.distances, written):
            for other, d in zip(names, map(float, dists)):
                if kept and other != name and d <= threshold and (other not in nearest or d < nearest[other].distance):
                    nearest[other] = LookAlike(other, d, float(threshold), p.label)
        return sorted(nearest.values(), key=lambda a: a.distance)[:LOOK_ALIKES_MAX]

    def _write_faces(self, name: str, pending: list[_Pending], vectors: np.ndarray, actor: str) -> list[int | None]:
        """Write the accepted faces in one transaction; ids, None where another writer got there first."""
        version = self.verifier.model_version
        embedder = self.verifier.embedder  # the crop geometry: the model's template and input size
        new = [repo.NewFace(crop_png=p.crop_png, source=p.label, sha256=p.sha256,
                            box=[float(v) for v in p.aligned.face.box],
                            landmarks=np.asarray(p.aligned.face.landmarks, float).round(3).tolist(),
                            detector_score=float(p.aligned.face.score),
                            quality={k: float(v) for k, v in asdict(p.aligned.quality).items()},
                            crop_template=embedder.template_name, crop_size=embedder.input_size) for p in pending]
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                with self.db.write() as session:
                    new_person = repo.get_person(session, name) is None
                    person = repo.get_or_create_person(session, name)
                    repo.ensure_model(session, version, lambda: _metadata_json(self.verifier))
                    existing = repo.person_hashes(session, person.id)
                    ids: list[int | None] = []
                    for face, vector in zip(new, vectors):
                        if face.sha256 in existing:
                            ids.append(None)
                            continue
                        ids.append(repo.add_face(session, person.id, face, version, vector))
                        existing.add(face.sha256)
                    person_id = person.id
                    written_ids = [i for i in ids if i is not None]
                    generation = None
                    if written_ids:  # audited with the write; nothing written, nothing recorded
                        generation = repo.record_write(session, actor, "enroll", name, written_ids,
                                                       {"faces": len(written_ids), "new_person": new_person,
                                                        "person_id": person.id, "model_version": version})
                break
            except WriteConflict:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
        written = [v for v, i in zip(vectors, ids) if i is not None]
        if written:
            self._search().added(person_id, name, [i for i in ids if i is not None], np.stack(written), version)
        if generation is not None:
            self._on_write(generation)
        return ids

    def enroll_dir(self, root: str | os.PathLike[str], force: bool = False, allow_duplicate: bool = False,
                   progress: Progress | None = None, actor: str = "library") -> Iterator[EnrollReport]:
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
                report = self.enroll(name, files, force=force, allow_duplicate=allow_duplicate, progress=step,
                                     actor=actor)
            except (DuplicateIdentityError, ValueError) as exc:
                report = EnrollReport(person=name, error=str(exc))
            done += len(files)
            if progress is not None:
                progress(done, total)
            yield report

