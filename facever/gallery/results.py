"""What gallery operations return: enrolment reports, identification results, people and faces.

Every result has ``to_dict()``, a JSON-ready view (what ``--json`` prints).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from facever.errors import FaceverError

if TYPE_CHECKING:
    from facever.alignment import CropQuality
    from facever.detection import Face


def _dict(value: Any) -> Any:
    """A typed part of a result (:class:`~facever.detection.Face`, :class:`~facever.alignment.CropQuality`)
    as JSON-ready data, at the edge; None stays None."""
    return None if value is None else value.to_dict()


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
    face: Face | None = None
    quality: CropQuality | None = None
    error: FaceverError | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"source": self.source, "status": self.status, "reason": self.reason, "sha256": self.sha256,
                "face_id": self.face_id, "face": _dict(self.face), "quality": _dict(self.quality)}


@dataclass(frozen=True)
class LookAlike:
    """A warning, not a refusal: a newly enrolled face is within the identification threshold of
    another, already enrolled person, so identification may name that person for this one.

    Attributes:
        name: the other person.
        distance: the nearest new face's distance to that person's nearest face (in [0, 2]).
        threshold: the identification threshold for the gallery as it was (the open-set one for its
            size, see :meth:`Gallery.threshold_for <facever.gallery.Gallery.threshold_for>`).
        source: the label of the new image that came nearest.
    """

    name: str
    distance: float
    threshold: float
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"name": self.name, "distance": round(self.distance, 6), "threshold": self.threshold,
                "source": self.source}


@dataclass
class EnrollReport:
    """Outcome of enrolling one person: one :class:`ImageOutcome` per image, in input order.

    ``error`` is set (and nothing was written) when :meth:`Gallery.enroll_dir` refused a whole
    person, e.g. as a duplicate identity. ``look_alikes`` warns (nearest first) about other people
    the enrolled faces are within the identification threshold of; they were enrolled all the same.
    """

    person: str
    outcomes: list[ImageOutcome] = field(default_factory=list)
    error: str | None = None
    look_alikes: list[LookAlike] = field(default_factory=list)

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
                "error": self.error, "images": [o.to_dict() for o in self.outcomes],
                "look_alikes": [a.to_dict() for a in self.look_alikes]}


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
        threshold: the identification threshold used (distance).
        candidates: the top-k people, nearest first (also when unknown).
        face / quality: the detected face (box, landmarks, score) and crop quality, if from an image.
        scoring: ``"nearest"`` or ``"mean3"``.
        model_version: the model that embedded the face.
        threshold_policy: how ``threshold`` was chosen (see :class:`~facever.gallery.ThresholdChoice`):
            ``"open_set"`` (from the target FPIR and this gallery's size), ``"fixed"`` (given by the
            caller) or ``"tau"`` (the model has no open-set calibration: its verification τ).
        expected_fpir: probability that a stranger (someone not enrolled) is named as someone at
            this threshold in this gallery; None when the model cannot tell (no open-set data).
        fpir_target: the FPIR asked for (``"open_set"`` policy only).
        calibration, fpir_spread, adaptation: the footing of ``expected_fpir`` (see
            :class:`~facever.gallery.ThresholdChoice`): ``"shipped"``, ``"user-calibrated"`` or
            ``"gallery-adapted"``; the measured spread of FPIR ÷ target on people the calibration
            never saw; the gallery fit.
    """

    person: str | None
    distance: float | None
    threshold: float
    candidates: list[Candidate]
    face: Face | None = None
    quality: CropQuality | None = None
    scoring: str = "nearest"
    model_version: str = ""
    threshold_policy: str = "fixed"
    expected_fpir: float | None = None
    fpir_target: float | None = None
    calibration: str | None = None
    fpir_spread: dict[str, Any] | None = None
    adaptation: dict[str, Any] | None = None

    @property
    def known(self) -> bool:
        """True when the face was identified as an enrolled person."""
        return self.person is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"person": self.person, "known": self.known,
                "distance": None if self.distance is None else round(self.distance, 6),
                "threshold": self.threshold, "threshold_policy": self.threshold_policy,
                "expected_fpir": self.expected_fpir, "fpir_target": self.fpir_target,
                "calibration": self.calibration, "fpir_spread": self.fpir_spread, "adaptation": self.adaptation,
                "scoring": self.scoring,
                "candidates": [{"person": c.person, "distance": round(c.distance, 6)} for c in self.candidates],
                "face": _dict(self.face), "quality": _dict(self.quality), "model_version": self.model_version}


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
