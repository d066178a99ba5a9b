"""Distances, decisions and threshold calibration.

Embeddings are unit vectors, so the Euclidean distance lies in [0, 2] (0 = identical). A pair is
"same" when its distance ≤ τ. Calibration follows scikit-learn conventions: ``__init__`` stores
parameters, ``fit`` returns ``self``, learned values end in ``_``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

#: The largest distance between unit vectors; NaN distances (no face) count as this.
MAX_DISTANCE = 2.0

# scikit-learn is imported inside the fitting code only: deciding (inference) needs NumPy alone, and
# importing scikit-learn costs about a second.


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between rows of ``a`` and ``b`` (broadcast), in [0, 2] for unit vectors."""
    return np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=-1)


def distance_matrix(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """``(Q, D)`` × ``(G, D)`` unit vectors → ``(Q, G)`` Euclidean distances (via dot products)."""
    sim = np.asarray(queries, np.float32) @ np.asarray(gallery, np.float32).T
    return np.sqrt(np.clip(2.0 - 2.0 * sim, 0.0, 4.0))


def rates_at(threshold: float, distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """``(FAR, FRR)`` of the rule distance ≤ threshold on labelled pairs (same=1 genuine)."""
    distances = np.asarray(distances, np.float64)
    same = np.asarray(same).astype(bool)
    accept = distances <= threshold
    far = float(accept[~same].mean()) if (~same).any() else float("nan")
    frr = float((~accept[same]).mean()) if same.any() else float("nan")
    return far, frr


class ThresholdCalibrator:
    """Choose τ on labelled pairs.

    Args:
        target: ``"far"`` picks the largest τ whose FAR ≤ ``target_far``; ``"accuracy"`` picks the
            τ of best accuracy (midpoint between neighbouring distances).
        target_far: the false accept rate aimed at, in (0, 1).

    Learned: ``threshold_``, ``far_``, ``frr_``, ``accuracy_``.
    """

    def __init__(self, target: Literal["far", "accuracy"] = "far", target_far: float = 1e-3) -> None:
        self.target = target
        self.target_far = target_far

    def fit(self, distances: np.ndarray, same: np.ndarray) -> "ThresholdCalibrator":
        distances = np.asarray(distances, np.float64)
        same = np.asarray(same).astype(bool)
        if distances.shape != same.shape or distances.ndim != 1:
            raise ValueError("distances and same must be 1-D arrays of equal length")
        if not same.any() or same.all():
            raise ValueError("calibration needs both genuine and impostor pairs")
        if self.target == "far":
            # the largest observed distance at or below the threshold at the target rate, so τ is
            # one of the calibration distances (below every one when even the nearest is too many)
            limit = threshold_at_rate(distances[~same], self.target_far)
            below = distances[distances <= limit]
            tau = float(below.max()) if below.size else float(distances.min()) - 1e-6
            tau = min(tau, MAX_DISTANCE)
        elif self.target == "accuracy":
            tau = best_accuracy_threshold(distances, same)
        else:
            raise ValueError(f"unknown target {self.target!r}")
        self.threshold_ = tau
        self.far_, self.frr_ = rates_at(tau, distances, same)
        self.accuracy_ = float(((distances <= tau) == same).mean())
        return self


def threshold_at_rate(negatives: np.ndarray, rate: float) -> float:
    """Largest τ such that the fraction of ``negatives`` with distance ≤ τ is ≤ ``rate``.

    The one rule for "the threshold at a target rate" (FAR on impostor pairs, FPIR on unknown
    probes' best distances), used by :class:`ThresholdCalibrator`, the evaluation metrics and the
    open-set calibration.

    Args:
        negatives: ``(M,)`` distances that should be rejected; NaN counts as :data:`MAX_DISTANCE`.
        rate: target rate in [0, 1].

    Returns:
        τ in distance units: just below the ``(k+1)``-th smallest negative, ``k = ⌊rate·M⌋``
        (``numpy.nextafter`` of it, so ``d ≤ τ`` ⇔ ``d <`` that value); :data:`MAX_DISTANCE` when
        ``k ≥ M`` (every negative may be accepted).

    Raises:
        ValueError: no negatives, or a rate outside [0, 1].
    """
    neg = np.asarray(negatives, np.float64).ravel()
    if neg.size == 0:
        raise ValueError("threshold_at_rate needs at least one negative distance")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    neg = np.where(np.isfinite(neg), neg, MAX_DISTANCE)
    k = int(math.floor(rate * neg.size + 1e-9))
    if k >= neg.size:
        return MAX_DISTANCE
    kth = np.partition(neg, k)[k]
    return float(np.nextafter(kth, -np.inf))


def best_accuracy_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """τ maximising accuracy of ``distance ≤ τ`` on labelled pairs (ties: the smallest such τ)."""
    d = np.asarray(distances, np.float64)
    s = np.asarray(same).astype(bool)
    order = np.argsort(d)
    d_sorted, s_sorted = d[order], s[order]
    # accepting the first i pairs: correct = genuine among them + impostors after them
    tp = np.concatenate([[0], np.cumsum(s_sorted)])
    tn = (~s).sum() - np.concatenate([[0], np.cumsum(~s_sorted)])
    acc = tp + tn
    # only split between distinct values
    valid = np.ones(len(d) + 1, bool)
    valid[1:-1] = d_sorted[1:] > d_sorted[:-1]
    i = int(np.argmax(np.where(valid, acc, -1)))
    if i == 0:
        return float(d_sorted[0]) - 1e-6
    if i == len(d):
        return float(d_sorted[-1])
    return float((d_sorted[i - 1] + d_sorted[i]) / 2)


class VerificationHead:
    """P(same person) from ``|f(x1) − f(x2)|`` per dimension, a scikit-learn logistic regression.

    Stored in the bundle as JSON numbers (``to_json`` / ``from_json``), never pickled.
    """

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def fit(self, emb1: np.ndarray, emb2: np.ndarray, same: np.ndarray) -> "VerificationHead":
        from sklearn.linear_model import LogisticRegression

        x = np.abs(np.asarray(emb1) - np.asarray(emb2))
        model = LogisticRegression(C=self.C, max_iter=2000).fit(x, np.asarray(same).astype(int))
        self.coef_ = np.asarray(model.coef_[0], np.float64)
        self.intercept_ = float(model.intercept_[0])
        return self

    def predict_proba(self, emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
        """Probability in [0, 1] that each pair shows one person; ``(N,)`` or a scalar for 1-D input.

        The logistic function of the fitted linear score, in NumPy (scikit-learn's formula)."""
        e1, e2 = np.atleast_2d(emb1), np.atleast_2d(emb2)
        z = np.abs(e1 - e2).astype(np.float64) @ self.coef_ + self.intercept_
        p = 1.0 / (1.0 + np.exp(-z))
        return p if np.ndim(emb1) > 1 else float(p[0])

    def to_json(self) -> dict[str, Any]:
        return {"kind": "logistic_abs_diff", "coef": self.coef_.tolist(),
                "intercept": float(self.intercept_), "C": self.C}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "VerificationHead":
        head = cls(C=data.get("C", 1.0))
        head.coef_ = np.asarray(data["coef"], np.float64)
        head.intercept_ = float(data["intercept"])
        return head
