"""Turn a target FPIR into a threshold for the current gallery size (query time)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from facever.open_set.common import (
    Count, DEFAULT_FPIR, DUPLICATE_FAR, DUPLICATE_MAX_REFUSAL, OPEN_SET_VERSION, _at_least_one,
    _mixture_curve, _probe_fpir, _tail_distance, _tail_far
)

def validate(open_set: dict[str, Any]) -> None:
    """Raise ValueError unless ``open_set`` looks like :func:`impostor_distribution`'s output."""
    if not isinstance(open_set, dict) or open_set.get("kind") != "impostor_distribution":
        raise ValueError("not an open-set impostor distribution")
    if int(open_set.get("version", 0)) > OPEN_SET_VERSION:
        raise ValueError(f"open-set data version {open_set['version']} is newer than this facever supports")
    far, dist = open_set.get("far"), open_set.get("distance")
    if not far or not dist or len(far) != len(dist):
        raise ValueError("open-set data needs equally long 'far' and 'distance' lists")
    probes = open_set.get("probes")
    if probes:
        rates, weights, grid = probes.get("rates"), probes.get("bin_weights"), probes.get("distance")
        if not rates or not weights or not grid or len(rates) != len(grid) or len(grid) < 2 \
                or any(len(row) != len(weights) for row in rates):
            raise ValueError("open-set 'probes' needs a rates row per distance, one rate per bin weight")


def effective_count(open_set: dict[str, Any], n_faces: int, n_people: int, count: Count = "effective",
                    scoring: str = "nearest") -> float:
    """The number of independent comparisons a stranger gets in a gallery (0 for an empty one).

    ``"effective"``: ``n_people · (n_faces / n_people) ** face_exponent``; ``"faces"``: every face;
    ``"people"``: one per person. With ``scoring="mean3"`` a person yields one averaged score, so
    people are counted (an average of distances is never below the nearest one, so the nearest-face
    model makes the result an upper bound on the FPIR).
    """
    if count not in ("effective", "faces", "people"):
        raise ValueError(f"unknown count {count!r}; use 'effective', 'faces' or 'people'")
    n_faces, n_people = int(n_faces), int(n_people)
    if n_people <= 0:
        return 0.0
    n_faces = max(n_faces, n_people)
    if scoring == "mean3" or count == "people":
        return float(n_people)
    if count == "faces":
        return float(n_faces)
    alpha = float(open_set.get("face_exponent", 1.0))
    return n_people * (n_faces / n_people) ** alpha


def distance_at_far(open_set: dict[str, Any], far: float) -> float:
    """The distance at which one impostor comparison is accepted with probability ``far`` (pooled).

    Between grid points: linear in log-rate. Below the grid: the tail model (or the smallest stored
    distance when there is none). Above it: the largest stored distance.
    """
    grid = np.log(np.asarray(open_set["far"], np.float64))
    dist = np.asarray(open_set["distance"], np.float64)
    lf = math.log(max(float(far), 1e-300))
    if lf < grid[0]:
        tail = open_set.get("tail")
        return float(min(dist[0], _tail_distance(tail, math.exp(lf)))) if tail else float(dist[0])
    return float(np.interp(lf, grid, dist))


def far_at_distance(open_set: dict[str, Any], distance: float) -> float:
    """Pooled per-comparison false-accept rate of a threshold ``distance`` (inverse of :func:`distance_at_far`).

    Never below the smallest rate the data (or its tail model) supports.
    """
    grid = np.asarray(open_set["far"], np.float64)
    dist = np.asarray(open_set["distance"], np.float64)
    d = float(distance)
    if d < dist[0]:
        tail = open_set.get("tail")
        return float(min(grid[0], _tail_far(tail, d))) if tail else float(grid[0])
    if d >= dist[-1]:
        return 1.0 if d >= 2.0 else float(grid[-1])
    pos = int(np.searchsorted(dist, d, side="right"))  # dist[pos-1] ≤ d < dist[pos]
    lo, hi = pos - 1, pos
    w = (d - dist[lo]) / (dist[hi] - dist[lo])
    return float(math.exp(math.log(grid[lo]) + w * (math.log(grid[hi]) - math.log(grid[lo]))))


def fpir_for(far: float, n_eff: float) -> float:
    """``1 - (1 - far) ** n_eff``: at least one of ``n_eff`` independent comparisons accepts."""
    if n_eff <= 0:
        return 0.0
    return float(_at_least_one(min(max(float(far), 0.0), 1.0), n_eff))


def far_for(fpir: float, n_eff: float) -> float:
    """Per-comparison rate that gives ``fpir`` over ``n_eff`` comparisons (inverse of :func:`fpir_for`)."""
    return float(-math.expm1(math.log1p(-float(fpir)) / max(float(n_eff), 1.0)))


def expected_fpir(open_set: dict[str, Any], threshold: float, n_faces: int, n_people: int,
                  scoring: str = "nearest", count: Count = "effective") -> float:
    """The FPIR a ``threshold`` gives in a gallery of ``n_people`` people with ``n_faces`` faces.

    With the hub model (``open_set["probes"]``): ``mean_i [1 - (1 - f_i(threshold)) ** N_eff]``;
    without it: ``1 - (1 - f(threshold)) ** N_eff`` with the pooled rate.
    """
    n_eff = effective_count(open_set, n_faces, n_people, count, scoring)
    if n_eff <= 0:
        return 0.0
    probes = open_set.get("probes")
    if probes:
        return _probe_fpir(probes, float(threshold), n_eff)
    return fpir_for(far_at_distance(open_set, threshold), n_eff)


def _solve(open_set: dict[str, Any], n_eff: float, fpir: float) -> float:
    """Largest distance whose predicted FPIR over ``n_eff`` comparisons is ≤ ``fpir``."""
    probes = open_set.get("probes")
    if not probes:
        return distance_at_far(open_set, far_for(fpir, n_eff))
    grid, curve = _mixture_curve(probes, n_eff)
    if curve[-1] <= fpir:
        return float(grid[-1])
    logf = np.log(np.maximum(curve, 1e-300))
    target = math.log(fpir)
    j = int(np.searchsorted(curve, fpir, side="right"))     # curve[j-1] ≤ fpir < curve[j]
    if j == 0:                                              # below the grid: extrapolate
        slope = (logf[1] - logf[0]) / max(grid[1] - grid[0], 1e-12)
        return float(max(0.0, grid[0] + (target - logf[0]) / slope)) if slope > 0 else float(grid[0])
    w = (target - logf[j - 1]) / max(logf[j] - logf[j - 1], 1e-300)
    return float(grid[j - 1] + w * (grid[j] - grid[j - 1]))


def threshold_for_gallery(open_set: dict[str, Any], n_faces: int, n_people: int, fpir: float | None = None,
                          scoring: str = "nearest", count: Count = "effective") -> tuple[float, float]:
    """The identification threshold that keeps the FPIR at ``fpir`` in this gallery.

    Args:
        open_set: :func:`impostor_distribution`'s dict (the bundle's ``metadata.open_set``).
        n_faces, n_people: enrolled faces and people (searched under the current model).
        fpir: target probability that a stranger is named as someone (default: the dict's
            ``default_fpir``).
        scoring: the person scoring identification uses (``"nearest"`` or ``"mean3"``).
        count: how comparisons are counted (see :func:`effective_count`).
    Returns:
        ``(threshold, expected_fpir)``: the distance threshold, and the FPIR predicted for it here:
        the target, unless the data cannot promise it (pooled model clamped at its resolved limit),
        or 0 for an empty gallery (whose threshold is the one for a single comparison).
    """
    validate(open_set)
    fpir = float(open_set.get("default_fpir", DEFAULT_FPIR) if fpir is None else fpir)
    if not 0 < fpir < 1:
        raise ValueError(f"fpir must be in (0, 1), got {fpir}")
    n_eff = effective_count(open_set, n_faces, n_people, count, scoring)
    thr = _solve(open_set, max(n_eff, 1.0), fpir)
    if n_eff <= 0:
        return thr, 0.0
    return thr, expected_fpir(open_set, thr, n_faces, n_people, scoring, count)


def duplicate_threshold(open_set: dict[str, Any], n_faces: int, n_people: int,
                        far: float | None = None, max_refusal: float = DUPLICATE_MAX_REFUSAL) -> tuple[float, float]:
    """Threshold of the enrolment duplicate gate: a new face nearer than it to someone is refused.

    The pooled per-comparison false-accept rate is at most ``far`` (default: the dict's
    ``duplicate_far``, 1e-6), and the threshold is lowered further in large galleries so that the
    chance that one face of a distinct new person is refused stays at most ``max_refusal``
    (predicted as :func:`expected_fpir`).

    Returns ``(threshold, refusal probability per face of a distinct person)``.
    """
    validate(open_set)
    far = float(open_set.get("duplicate_far", DUPLICATE_FAR) if far is None else far)
    n_eff = max(effective_count(open_set, n_faces, n_people), 1.0)
    thr = min(distance_at_far(open_set, far), _solve(open_set, n_eff, max_refusal))
    return thr, expected_fpir(open_set, thr, max(n_faces, 1), max(n_people, 1))


# ==============================================================================================
# Synthetic identities (tests and benchmarks)
# ==============================================================================================
