"""The threshold policy part of the gallery: which distance names a face, and which refuses an
enrolment as a duplicate identity, for a gallery of a given size.

:class:`ThresholdPolicy` holds no gallery state: it is asked with the counts a search saw
(:class:`~facever.gallery.index.GalleryCounts`), so the threshold always belongs to the same
snapshot as the distances it is compared with. The rules themselves are
:func:`facever.gallery.policy.identification_threshold` and :func:`~facever.gallery.policy.duplicate_gate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from facever.gallery.index import GalleryCounts
from facever.gallery.policy import ThresholdChoice, duplicate_gate, identification_threshold

if TYPE_CHECKING:
    from facever.api import FaceVerifier


class ThresholdPolicy:
    """Thresholds from the loaded model's calibration and the gallery size.

    Args:
        verifier: returns the :class:`~facever.api.FaceVerifier` (its τ and bundle metadata, with the
            open-set calibration when the model has one); called on use, so a model loaded later or
            swapped is followed.
    """

    def __init__(self, verifier: Callable[[], "FaceVerifier"]) -> None:
        self._verifier = verifier

    @property
    def metadata(self) -> Any:
        """The loaded model bundle's metadata (None for a verifier without one)."""
        bundle = getattr(self._verifier(), "bundle", None)
        return getattr(bundle, "metadata", None)

    @property
    def tau(self) -> float:
        """The model's verification threshold τ (distance)."""
        return float(self._verifier().threshold)

    def identification(self, counts: GalleryCounts, *, fpir: float | None = None, threshold: float | None = None,
                       scoring: str = "nearest", gallery: Any = None) -> ThresholdChoice:
        """The identification threshold for a gallery of ``counts`` (see
        :func:`~facever.gallery.policy.identification_threshold`; ``gallery``: its matrix, for the
        gallery-adapted threshold)."""
        return identification_threshold(self.metadata, self.tau, counts.n_faces, counts.n_people,
                                        fpir=fpir, threshold=threshold, scoring=scoring, gallery=gallery)

    def duplicate(self, counts: GalleryCounts) -> ThresholdChoice:
        """The enrolment duplicate gate for a gallery of ``counts`` (see
        :func:`~facever.gallery.policy.duplicate_gate`)."""
        return duplicate_gate(self.metadata, self.tau, counts.n_faces, counts.n_people)
