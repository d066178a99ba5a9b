"""Gallery-adapted thresholds: tighten the calibrated threshold when the gallery's own people are
more crowded than the calibration people (NumPy only).

Every enrolled person is a stranger to all the others. The distance from each enrolled face to the
nearest face of *another* person is therefore a sample of what a stranger's nearest distance looks
like in this population, against a gallery one person smaller. The calibration predicts the same
distribution (:func:`~facever.open_set.threshold_for_gallery` at a target FPIR ``u`` is its ``u``
quantile), so comparing the two says how far this population sits from the calibration people.

Only the **body** is compared: the gallery's quantiles ``ADAPT_QUANTILES`` (50-80 %) against the
calibration's at the same levels; the shift is the median of the differences (distance units). The
low tail is never used: a person enrolled twice under two names, or a few look-alikes, put a few
faces at genuine-pair distances, which would drag a tail quantile; the upper body moves little (a
tenth of the people enrolled twice moved the shift by 0.003-0.012 on real galleries, always tighter).

The shift is applied to the calibrated threshold only when it **tightens** it (a negative shift:
the gallery's people are nearer each other than the calibration people), never to loosen it, and
only in galleries of at least ``ADAPT_MIN_PEOPLE`` people. Large galleries are fitted on a seeded
sample of ``ADAPT_MAX_PEOPLE`` people (the shift is measured at that size and applied at any size).

Chosen on the leave-one-domain-out benchmark (``benchmarks/open_set_lodo.py``, results in
``models/MODEL_CARD.md``): calibrated on all other domains, today's thresholds named 2.9-10.6x the
target share of strangers on bollywood, glint16 and ORL galleries of 10-20 people; adapted, every
domain with enough strangers to measure stayed within 0.00-1.42x. It cannot foresee strangers unlike
the enrolled people (Yale's look-alike subjects: 18-21x).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facever.open_set.common import Count, _BLOCK_ELEMENTS, _sim_to_dist
from facever.open_set.thresholds import expected_fpir, threshold_for_gallery, validate

#: Fewest enrolled people for the gallery-adapted correction; smaller galleries keep the calibration.
ADAPT_MIN_PEOPLE = 10

#: Quantiles of the gallery's cross-person nearest distances that are matched (the body).
ADAPT_QUANTILES = (0.5, 0.6, 0.7, 0.8)

#: People sampled (seeded) to fit large galleries: bounds the cost at about 3,000 x 3,000 dot products.
ADAPT_MAX_PEOPLE = 1000


@dataclass(frozen=True)
class GalleryFit:
    """How far the gallery's people sit from the calibration people.

    Attributes:
        shift: distance added to calibrated thresholds, ≤ 0 (0: no tightening, or not in use).
        raw_shift: the fitted shift before clipping at 0 (None when not fitted).
        in_use: True when the gallery was big enough to be fitted.
        n_people, n_faces: people and faces the fit used (a sample in large galleries).
        note: one human-readable sentence.
    """

    shift: float
    raw_shift: float | None
    in_use: bool
    n_people: int
    n_faces: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"in_use": self.in_use, "shift": round(self.shift, 6),
                "raw_shift": None if self.raw_shift is None else round(self.raw_shift, 6),
                "people": self.n_people, "faces": self.n_faces, "note": self.note}


def _sample_people(vectors: np.ndarray, starts: np.ndarray, max_people: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of at most ``max_people`` random people (seeded) and each row's person ``0..P'-1``."""
    n = len(vectors)
    ends = np.append(starts[1:], n)
    people = np.arange(len(starts))
    if len(people) > max_people:
        people = np.sort(np.random.default_rng(seed).choice(people, max_people, replace=False))
    counts = ends[people] - starts[people]
    rows = np.concatenate([np.arange(starts[p], ends[p]) for p in people]) if len(people) else np.zeros(0, np.intp)
    return rows, np.repeat(np.arange(len(people)), counts)


def cross_person_nearest(vectors: np.ndarray, starts: np.ndarray, max_people: int = ADAPT_MAX_PEOPLE,
                         seed: int = 0) -> tuple[np.ndarray, int]:
    """Distance from each enrolled face to the nearest face of another person.

    Args:
        vectors: ``(N, D)`` unit vectors, each person's rows contiguous.
        starts: ``(P,)`` first row of each person (strictly increasing, ``starts[0] == 0``).
        max_people: fit on at most this many people (a seeded sample).
        seed: for the sample.
    Returns:
        ``(distances (N',) in [0, 2], people used)``; empty with fewer than 2 people.
    """
    x = np.asarray(vectors, np.float32)
    starts = np.asarray(starts, np.intp)
    if len(starts) < 2:
        return np.zeros(0), len(starts)
    rows, owner = _sample_people(x, starts, max_people, seed)
    x = x[rows]
    best = np.empty(len(x), np.float64)
    step = max(1, _BLOCK_ELEMENTS // 4 // max(len(x), 1))
    for lo in range(0, len(x), step):
        sims = x[lo:lo + step] @ x.T
        sims[owner[lo:lo + step, None] == owner[None, :]] = -np.inf
        best[lo:lo + step] = sims.max(axis=1)
    return _sim_to_dist(best), int(owner[-1]) + 1


def fit_gallery(open_set: dict[str, Any], vectors: np.ndarray, starts: np.ndarray, *,
                min_people: int = ADAPT_MIN_PEOPLE, quantiles: tuple[float, ...] = ADAPT_QUANTILES,
                max_people: int = ADAPT_MAX_PEOPLE, seed: int = 0) -> GalleryFit:
    """Compare the body of the gallery's cross-person nearest distances with the calibration's.

    Args:
        open_set: :func:`~facever.open_set.impostor_distribution`'s dict.
        vectors, starts: the gallery, rows grouped by person (see :func:`cross_person_nearest`).
        min_people: below this many people the fit is not used (``in_use`` False, shift 0).
        quantiles: levels of the body that are matched, each in (0, 1).
        max_people, seed: sample of people for large galleries.
    Returns:
        A :class:`GalleryFit`.
    """
    validate(open_set)
    n_people = len(starts)
    if n_people < max(min_people, 2):
        return GalleryFit(0.0, None, False, n_people, len(vectors),
                          f"gallery too small to adapt ({n_people} < {min_people} people): calibration as is")
    d, used = cross_person_nearest(vectors, starts, max_people, seed)
    n_faces = len(d)
    qs = np.asarray(quantiles, np.float64)
    if qs.min() <= 0 or qs.max() >= 1:
        raise ValueError("quantiles must be in (0, 1)")
    ours = np.quantile(d, qs)
    others_faces = n_faces - n_faces / used       # a face's person is not among its own strangers
    model = np.array([threshold_for_gallery(open_set, others_faces, used - 1, float(q))[0] for q in qs])
    raw = float(np.median(ours - model))
    shift = min(0.0, raw)
    sample = f" (a sample of {used} people)" if used < n_people else ""
    if shift < 0:
        note = (f"this gallery's people are nearer each other than the calibration people{sample}: "
                f"threshold tightened by {-shift:.4f}")
    else:
        note = f"gallery checked{sample}: its people are no nearer each other than the calibration people"
    return GalleryFit(shift, raw, True, used, n_faces, note)


def adapted_threshold(open_set: dict[str, Any], fit: GalleryFit | None, n_faces: int, n_people: int,
                      fpir: float | None = None, scoring: str = "nearest",
                      count: Count = "effective") -> tuple[float, float]:
    """:func:`~facever.open_set.threshold_for_gallery` moved by the gallery fit's shift (≤ 0).

    Returns ``(threshold, expected FPIR)``: in the gallery's population (the calibration shifted
    by ``fit.shift``) the shifted threshold gives what the calibrated one gives the calibration
    people, so the expected FPIR is the same.
    """
    thr, exp = threshold_for_gallery(open_set, n_faces, n_people, fpir, scoring, count)
    shift = fit.shift if fit is not None and fit.in_use else 0.0
    return max(0.0, thr + shift), exp


def adapted_expected_fpir(open_set: dict[str, Any], fit: GalleryFit | None, threshold: float, n_faces: int,
                          n_people: int, scoring: str = "nearest") -> float:
    """The FPIR a fixed ``threshold`` gives in this gallery's population (the calibration shifted)."""
    shift = fit.shift if fit is not None and fit.in_use else 0.0
    return expected_fpir(open_set, float(threshold) - shift, n_faces, n_people, scoring)

