"""Which distance threshold identification and the enrolment duplicate gate use, and why.

With open-set data in the model bundle (``metadata.open_set``, see :mod:`facever.open_set`), the
identification threshold follows the gallery: it is the distance at which a stranger is named as
*someone* with the target probability (FPIR, default the bundle's, 1%) given the number of enrolled
people and faces. Without it, the model's fixed identification threshold (else its verification τ)
is used as before, and the result says that the FPIR is unknown. A threshold given by the caller
always wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from facever import open_set as osm
from facever.errors import ModelError

Policy = Literal["open_set", "fixed", "identify_threshold", "tau"]

NO_OPEN_SET = ("this model has no open-set calibration, so the chance of naming a stranger is unknown and "
               "grows with the gallery")


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold and what it means for the current gallery.

    Attributes:
        threshold: distance in [0, 2].
        policy: ``"open_set"`` (from ``fpir_target`` and the gallery size), ``"fixed"`` (given by
            the caller), ``"identify_threshold"`` / ``"tau"`` (no open-set data in the model: its
            fixed identification threshold / its verification τ).
        expected_fpir: for identification, the probability that a stranger is named as someone in
            this gallery; for the duplicate gate, that one face of a distinct new person is refused.
            None when the model has no open-set data.
        fpir_target: the rate asked for (``"open_set"`` only).
        n_people, n_faces: the gallery it was computed for (current model's embeddings).
        note: one human-readable sentence.
    """

    threshold: float
    policy: Policy
    expected_fpir: float | None
    fpir_target: float | None
    n_people: int
    n_faces: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"threshold": self.threshold, "threshold_policy": self.policy, "expected_fpir": self.expected_fpir,
                "fpir_target": self.fpir_target, "gallery": {"people": self.n_people, "faces": self.n_faces},
                "note": self.note}


def open_set_data(metadata: Any) -> dict[str, Any] | None:
    """The bundle metadata's open-set dict, validated; None when it has none.

    Raises :class:`ModelError` when it is there but unusable.
    """
    data = getattr(metadata, "open_set", None) if metadata is not None else None
    if not data:
        return None
    try:
        osm.validate(data)
    except ValueError as exc:
        raise ModelError(f"the model's open-set calibration is unusable ({exc}); recalibrate it") from exc
    return data


def _rate(value: float) -> float:
    return float(f"{value:.6g}")


def _fallback(metadata: Any, tau: float) -> tuple[float, Policy, str]:
    calibrated = getattr(metadata, "identify_threshold", None) if metadata is not None else None
    if calibrated is not None:
        return float(calibrated.value), "identify_threshold", "the model's fixed identification threshold"
    return float(tau), "tau", "the model's verification threshold τ"


def identification_threshold(metadata: Any, tau: float, n_faces: int, n_people: int, *, fpir: float | None = None,
                             threshold: float | None = None, scoring: str = "nearest") -> ThresholdChoice:
    """The identification threshold for a gallery of ``n_people`` people with ``n_faces`` faces.

    Args:
        metadata: the model bundle's metadata (its ``open_set`` and ``identify_threshold`` are used).
        tau: the verifier's τ (last resort).
        fpir: target FPIR in (0, 1); default: the open-set data's ``default_fpir``.
        threshold: a fixed threshold; overrides everything (its expected FPIR is still reported).
        scoring: person scoring of the search (``"mean3"`` makes the expected FPIR an upper bound).
    Raises:
        ModelError: ``fpir`` asked of a model without open-set data, or unusable open-set data.
        ValueError: ``fpir`` outside (0, 1).
    """
    if fpir is not None and not 0 < float(fpir) < 1:
        raise ValueError(f"the target FPIR must be between 0 and 1 (exclusive), got {fpir}")
    data = open_set_data(metadata)
    bound = " (an upper bound with mean3 scoring)" if scoring == "mean3" else ""
    size = f"{n_people} {'person' if n_people == 1 else 'people'} ({n_faces} faces)"
    if threshold is not None:
        thr = float(threshold)
        if data is None:
            return ThresholdChoice(thr, "fixed", None, None, n_people, n_faces,
                                   "fixed threshold; " + NO_OPEN_SET)
        exp = _rate(osm.expected_fpir(data, thr, n_faces, n_people, scoring)) if n_people else 0.0
        return ThresholdChoice(thr, "fixed", exp, None, n_people, n_faces,
                               f"fixed threshold: a stranger is named as someone with probability {exp:.3%} "
                               f"among {size}{bound}")
    if data is None:
        if fpir is not None:
            raise ModelError("this model has no open-set calibration, so a target FPIR cannot be turned into a "
                             "threshold; give a fixed threshold (--threshold) or calibrate the model "
                             "(facever.open_set.impostor_distribution → metadata.open_set)")
        thr, policy, what = _fallback(metadata, tau)
        return ThresholdChoice(thr, policy, None, None, n_people, n_faces, f"{what} is used; {NO_OPEN_SET}")
    target = float(data.get("default_fpir", osm.DEFAULT_FPIR) if fpir is None else fpir)
    thr, exp = osm.threshold_for_gallery(data, n_faces, n_people, target, scoring)
    if abs(exp - target) <= 1e-3 * target:
        note = f"threshold for a {target:.3%} chance of naming a stranger among {size}"
    else:
        note = f"threshold for a {target:.3%} target; the calibration can promise {exp:.3%} among {size}"
    return ThresholdChoice(round(float(thr), 6), "open_set", _rate(exp), target, n_people, n_faces, note + bound)


def duplicate_gate(metadata: Any, tau: float, n_faces: int, n_people: int) -> ThresholdChoice:
    """Threshold of the enrolment duplicate gate (a new face nearer than it to someone else is refused).

    With open-set data: :func:`facever.open_set.duplicate_threshold` (per comparison 1e-6, lower in
    large galleries; ``expected_fpir`` is the chance that one face of a distinct person is refused).
    Without: the stricter of the model's identification threshold and τ.
    """
    data = open_set_data(metadata)
    if data is None:
        thr, policy, what = _fallback(metadata, tau)
        if policy == "identify_threshold" and thr > tau:
            thr, policy, what = float(tau), "tau", "the model's verification threshold τ"
        return ThresholdChoice(thr, policy, None, None, n_people, n_faces,
                               f"{what} (no open-set calibration in this model)")
    thr, refusal = osm.duplicate_threshold(data, n_faces, n_people)
    far = osm.far_at_distance(data, thr)
    return ThresholdChoice(round(float(thr), 6), "open_set", _rate(refusal), None, n_people, n_faces,
                           f"a different person's face comes this close to one enrolled face with probability "
                           f"{far:.1e}, and to anyone among {n_people} people with probability {refusal:.2e}")
