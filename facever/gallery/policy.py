"""Which distance threshold identification and the enrolment duplicate gate use, and why.

With open-set data in the model bundle (``metadata.open_set``, see :mod:`facever.open_set`), the
identification threshold follows the gallery: it is the distance at which a stranger is named as
*someone* with the target probability (FPIR, default the bundle's, 1%) given the number of enrolled
people and faces. Without it, the model's verification threshold τ is used, and the result's note
says so and that the FPIR is unknown. A threshold given by the caller (``threshold=``, the CLI's
``--threshold``) always wins and is reported as ``"fixed"``. These three are the only policies.

Every choice states its footing (``calibration``): ``"shipped"`` (the model bundle's open-set data),
``"user-calibrated"`` (data fitted by ``facever calibrate --open-set`` on the user's own people) or
``"gallery-adapted"`` (either of those, checked against the gallery's own between-person distances
and tightened where the gallery's people are nearer each other: :mod:`facever.open_set.adaptive`;
galleries of at least :data:`~facever.open_set.ADAPT_MIN_PEOPLE` people). ``fpir_spread`` is what
the bundle records about how far measured FPIRs strayed from their target on people it was not
calibrated on (leave-one-domain-out, or the user's held-out people).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Literal

from facever import open_set as osm
from facever.errors import ModelError

Policy = Literal["open_set", "fixed", "tau"]
Calibration = Literal["shipped", "gallery-adapted", "user-calibrated"]

NO_OPEN_SET = ("this model has no open-set calibration, so the chance of naming a stranger is unknown and "
               "grows with the gallery")


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold and what it means for the current gallery.

    Attributes:
        threshold: distance in [0, 2].
        policy: ``"open_set"`` (from ``fpir_target`` and the gallery size), ``"fixed"`` (given by
            the caller) or ``"tau"`` (no open-set data in the model: its verification τ).
        expected_fpir: for identification, the probability that a stranger is named as someone in
            this gallery; for the duplicate gate, that one face of a distinct new person is refused.
            None when the model has no open-set data.
        fpir_target: the rate asked for (``"open_set"`` only).
        n_people, n_faces: the gallery it was computed for (current model's embeddings).
        note: one human-readable sentence.
        calibration: the footing of ``expected_fpir``: ``"shipped"``, ``"user-calibrated"`` or
            ``"gallery-adapted"`` (None without open-set data).
        fpir_spread: measured FPIR ÷ target on people the calibration never saw, as recorded in
            the open-set data for this footing (``{"ratio_min", "ratio_max", "fpir_target", ...}``),
            or None when it records none.
        adaptation: the gallery fit (:meth:`facever.open_set.GalleryFit.to_dict`) when one was made.
    """

    threshold: float
    policy: Policy
    expected_fpir: float | None
    fpir_target: float | None
    n_people: int
    n_faces: int
    note: str = ""
    calibration: Calibration | None = None
    fpir_spread: dict[str, Any] | None = None
    adaptation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"threshold": self.threshold, "threshold_policy": self.policy, "expected_fpir": self.expected_fpir,
                "fpir_target": self.fpir_target, "gallery": {"people": self.n_people, "faces": self.n_faces},
                "calibration": self.calibration, "fpir_spread": self.fpir_spread, "adaptation": self.adaptation,
                "note": self.note}

    def footing(self) -> dict[str, Any]:
        """The fields an identify answer repeats: ``calibration``, ``fpir_spread``, ``adaptation``."""
        return {"calibration": self.calibration, "fpir_spread": self.fpir_spread, "adaptation": self.adaptation}


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


def base_calibration(data: dict[str, Any]) -> Calibration:
    """``"user-calibrated"`` for data written by ``facever calibrate --open-set``, else ``"shipped"``."""
    return "user-calibrated" if data.get("origin") == "user-calibrated" else "shipped"


def fpir_spread(data: dict[str, Any], calibration: str) -> dict[str, Any] | None:
    """What the open-set data records about measured FPIR ÷ target away from its calibration people
    (``data["transfer"][calibration]``, falling back to the base calibration's entry)."""
    transfer = data.get("transfer") or {}
    entry = transfer.get(calibration) or transfer.get(base_calibration(data))
    return dict(entry) if isinstance(entry, dict) else None


_FITS: "weakref.WeakKeyDictionary[Any, tuple[tuple[int, int, int], osm.GalleryFit]]" = weakref.WeakKeyDictionary()


def gallery_fit(data: dict[str, Any], gallery: Any) -> osm.GalleryFit | None:
    """:func:`facever.open_set.fit_gallery` of a gallery matrix (anything with ``vectors`` and
    ``starts``, e.g. :class:`~facever.gallery.search.SearchIndex`), remembered until its size changes
    (in galleries past the fit's sample of ``ADAPT_MAX_PEOPLE`` people: by more than 1 %)."""
    if gallery is None or getattr(gallery, "vectors", None) is None:
        return None
    key = (len(gallery.vectors), len(gallery.starts), id(data))
    try:
        cached = _FITS.get(gallery)
    except TypeError:                      # not weak-referenceable: no cache
        cached = None
    if cached is not None and cached[0][2] == key[2] and (cached[0] == key or (
            min(cached[0][1], key[1]) > osm.ADAPT_MAX_PEOPLE and abs(cached[0][1] - key[1]) <= 0.01 * key[1])):
        return cached[1]
    fit = osm.fit_gallery(data, gallery.vectors, gallery.starts)
    try:
        _FITS[gallery] = (key, fit)
    except TypeError:
        pass
    return fit


def gallery_matrix(backend: Any, model_version: str, dim: int) -> Any:
    """The gallery matrix (``vectors``, ``starts``) for the gallery fit: the in-memory matrix a search
    backend holds (``load``), or a seeded sample of people read from the database (``fit_sample``,
    pgvector); None for a backend with neither (thresholds then keep the calibration as is)."""
    for name in ("load", "fit_sample"):
        read = getattr(backend, name, None)
        if callable(read):
            return read(model_version, dim)
    return None


def identification_threshold(metadata: Any, tau: float, n_faces: int, n_people: int, *, fpir: float | None = None,
                             threshold: float | None = None, scoring: str = "nearest",
                             gallery: Any = None) -> ThresholdChoice:
    """The identification threshold for a gallery of ``n_people`` people with ``n_faces`` faces.

    Args:
        metadata: the model bundle's metadata (its ``open_set`` is used).
        tau: the verifier's τ (the threshold of a model without open-set data).
        fpir: target FPIR in (0, 1); default: the open-set data's ``default_fpir``.
        threshold: a fixed threshold; overrides everything (its expected FPIR is still reported).
        scoring: person scoring of the search (``"mean3"`` makes the expected FPIR an upper bound).
        gallery: the gallery matrix (``vectors``, ``starts``); when given and the gallery has at least
            :data:`~facever.open_set.ADAPT_MIN_PEOPLE` people, the threshold is gallery-adapted
            (tightened, never loosened; see :mod:`facever.open_set.adaptive`).
    Raises:
        ModelError: ``fpir`` asked of a model without open-set data, or unusable open-set data.
        ValueError: ``fpir`` outside (0, 1).
    """
    if fpir is not None and not 0 < float(fpir) < 1:
        raise ValueError(f"the target FPIR must be between 0 and 1 (exclusive), got {fpir}")
    data = open_set_data(metadata)
    bound = " (an upper bound with mean3 scoring)" if scoring == "mean3" else ""
    size = f"{n_people} {'person' if n_people == 1 else 'people'} ({n_faces} faces)"
    if data is None:
        if threshold is not None:
            return ThresholdChoice(float(threshold), "fixed", None, None, n_people, n_faces,
                                   "fixed threshold; " + NO_OPEN_SET)
        if fpir is not None:
            raise ModelError("this model has no open-set calibration, so a target FPIR cannot be turned into a "
                             "threshold; give a fixed threshold (--threshold) or calibrate the model "
                             "(facever calibrate --open-set, or facever.open_set.impostor_distribution → "
                             "metadata.open_set)")
        return ThresholdChoice(float(tau), "tau", None, None, n_people, n_faces,
                               f"the model's verification threshold τ is used; {NO_OPEN_SET}")
    fit = gallery_fit(data, gallery) if n_people else None
    adapted = fit is not None and fit.in_use
    calibration: Calibration = "gallery-adapted" if adapted else base_calibration(data)
    footing = dict(calibration=calibration, fpir_spread=fpir_spread(data, calibration),
                   adaptation=fit.to_dict() if fit is not None else None)
    how = f" [{calibration} calibration" + (f": {fit.note}]" if fit is not None else "]")
    if threshold is not None:
        thr = float(threshold)
        exp = _rate(osm.adapted_expected_fpir(data, fit, thr, n_faces, n_people, scoring)) if n_people else 0.0
        return ThresholdChoice(thr, "fixed", exp, None, n_people, n_faces,
                               f"fixed threshold: a stranger is named as someone with probability {exp:.3%} "
                               f"among {size}{bound}{how}", **footing)
    target = float(data.get("default_fpir", osm.DEFAULT_FPIR) if fpir is None else fpir)
    thr, exp = osm.adapted_threshold(data, fit, n_faces, n_people, target, scoring)
    if abs(exp - target) <= 1e-3 * target:
        note = f"threshold for a {target:.3%} chance of naming a stranger among {size}"
    else:
        note = f"threshold for a {target:.3%} target; the calibration can promise {exp:.3%} among {size}"
    return ThresholdChoice(round(float(thr), 6), "open_set", _rate(exp), target, n_people, n_faces,
                           note + bound + how, **footing)


def duplicate_gate(metadata: Any, tau: float, n_faces: int, n_people: int) -> ThresholdChoice:
    """Threshold of the enrolment duplicate gate (a new face nearer than it to someone else is refused).

    With open-set data: :func:`facever.open_set.duplicate_threshold` (per comparison 1e-6, lower in
    large galleries; ``expected_fpir`` is the chance that one face of a distinct person is refused).
    Without: the model's verification threshold τ.
    """
    data = open_set_data(metadata)
    if data is None:
        return ThresholdChoice(float(tau), "tau", None, None, n_people, n_faces,
                               "the model's verification threshold τ (no open-set calibration in this model)")
    thr, refusal = osm.duplicate_threshold(data, n_faces, n_people)
    far = osm.far_at_distance(data, thr)
    return ThresholdChoice(round(float(thr), 6), "open_set", _rate(refusal), None, n_people, n_faces,
                           f"a different person's face comes this close to one enrolled face with probability "
                           f"{far:.1e}, and to anyone among {n_people} people with probability {refusal:.2e}")
