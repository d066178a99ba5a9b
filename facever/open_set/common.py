"""Constants and numerical helpers shared by calibration and thresholds (NumPy only)."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np


#: Target FPIR written into new open-set dicts (probability that a stranger is named as someone).
DEFAULT_FPIR = 0.01

#: Per-comparison false-accept rate of the enrolment duplicate gate (see :func:`duplicate_threshold`).
DUPLICATE_FAR = 1e-6

#: Cap on the probability that one face of a distinct new person is refused as a duplicate, at any
#: gallery size (the per-comparison rate shrinks below :data:`DUPLICATE_FAR` for large galleries).
DUPLICATE_MAX_REFUSAL = 1e-3

#: Fewest impostor pairs at or below a distance for its empirical rate to be trusted.
MIN_TAIL_PAIRS = 20

#: A probe's own rate is measured down to its PROBE_K[1]-th nearest impostor face; below, its probit
#: tail is anchored at the mean of its PROBE_K[0]-th .. PROBE_K[1]-th nearest (rate, distance).
#: Chosen on held-out real embeddings (LFW DevTest + pins/bollywood test people, dlib ResNet) and
#: synthetic ones: anchors near the nearest impostor kept real FPIRs at 0.8-1.1% of a 1% target but
#: let synthetic ones sink to 0.3%; anchors at the 10th nearest did the opposite (real up to 1.4%).
PROBE_K = (2, 6)

#: Calibration faces kept per person (random): a few people with ~100 photos (pins, bollywood)
#: must not outweigh thousands with one or two, and a gallery holds a few faces per person.
MAX_PER_PERSON = 10

#: Format version of the open-set dict.
OPEN_SET_VERSION = 1

Count = Literal["effective", "faces", "people"]

_BINS = 1 << 17                 # similarity histogram bins over [-1, 1] (width 1.5e-5)
_BLOCK_ELEMENTS = 1 << 24       # similarities computed at once (64 MiB of float32)
_TAIL_FIT_MAX = 1e-2            # highest rate the tail models are fitted on
_TAIL_FIT_DECADES = 2.0         # width of the fitted range of rates, decades above the resolved limit
_THIN = 16                      # thinning factor of the tail validation
_MAX_PROBES = 20000             # calibration faces used as probes of the hub model


# ==============================================================================================
# Normal distribution helpers (no SciPy)
# ==============================================================================================
def _erfc(x: np.ndarray) -> np.ndarray:
    """Complementary error function, vectorised (Numerical Recipes' erfcc: relative error < 1.2e-7)."""
    x = np.asarray(x, np.float64)
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    r = t * np.exp(poly)
    return np.where(x >= 0, r, 2.0 - r)


def _norm_cdf(z: np.ndarray | float) -> np.ndarray:
    return 0.5 * _erfc(-np.asarray(z, np.float64) / math.sqrt(2.0))


def _norm_ppf(p: np.ndarray | float) -> np.ndarray:
    """Inverse standard normal CDF (Acklam's approximation refined by one Halley step)."""
    p = np.clip(np.asarray(p, np.float64), 1e-300, 1 - 1e-16)
    a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
         -3.066479806614716e+01, 2.506628277459239e+00]
    b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
         -1.328068155288572e+01]
    c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
         4.374664141464968e+00, 2.938163982698783e+00]
    d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
    lo, hi = 0.02425, 1 - 0.02425
    x = np.empty_like(p)
    m = p < lo
    q = np.sqrt(-2 * np.log(p[m]))
    x[m] = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    m = (p >= lo) & (p <= hi)
    q = p[m] - 0.5
    r = q * q
    x[m] = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / \
           (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
    m = p > hi
    q = np.sqrt(-2 * np.log1p(-p[m]))
    x[m] = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / \
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    e = _norm_cdf(x) - p                                   # one Halley step
    u = e * math.sqrt(2 * math.pi) * np.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def _sim_to_dist(s: np.ndarray | float) -> np.ndarray:
    return np.sqrt(np.clip(2.0 - 2.0 * np.asarray(s, np.float64), 0.0, 4.0))


def _dist_to_sim(d: np.ndarray | float) -> np.ndarray:
    return 1.0 - np.asarray(d, np.float64) ** 2 / 2.0


def _at_least_one(rate: np.ndarray, n: float) -> np.ndarray:
    """``1 - (1 - rate) ** n``, accurate for tiny rates."""
    rate = np.minimum(np.asarray(rate, np.float64), 1.0 - 1e-16)
    return -np.expm1(n * np.log1p(-rate))


# ==============================================================================================
# Calibration
# ==============================================================================================
def default_far_grid() -> np.ndarray:
    """The per-comparison false-accept rates the distribution is stored at: 1e-9 .. 0.5, 8 per decade."""
    return np.unique(np.concatenate([10.0 ** np.arange(-9.0, -0.3 + 1e-9, 0.125), [0.5]]))


def _tail_far(tail: dict[str, Any], d: np.ndarray | float) -> np.ndarray:
    return _norm_cdf(tail["a"] + tail["b"] * np.asarray(d, np.float64))


def _tail_distance(tail: dict[str, Any], far: np.ndarray | float) -> np.ndarray:
    return np.clip((_norm_ppf(far) - tail["a"]) / tail["b"], 0.0, 2.0)


def _mixture_curve(probes: dict[str, Any], n_eff: float) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, FPIR)`` of the mixture at its grid for ``n_eff`` comparisons."""
    rates = np.asarray(probes["rates"], np.float64)          # (T, bins)
    weights = np.asarray(probes["bin_weights"], np.float64)
    return np.asarray(probes["distance"], np.float64), _at_least_one(rates, n_eff) @ weights


def _probe_fpir(probes: dict[str, Any], t: float, n_eff: float) -> float:
    """FPIR at distance ``t``: log-linear between grid distances, extrapolated below the first two."""
    grid, fpir = _mixture_curve(probes, n_eff)
    logf = np.log(np.maximum(fpir, 1e-300))
    if t <= grid[0]:
        slope = (logf[1] - logf[0]) / max(grid[1] - grid[0], 1e-12)
        return float(math.exp(logf[0] + slope * (t - grid[0])))
    if t >= grid[-1]:
        return float(fpir[-1])
    return float(math.exp(np.interp(t, grid, logf)))
