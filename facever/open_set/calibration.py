"""Build the impostor distance distribution of a model from held-out people (calibration time)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from facever.open_set.common import (
    DEFAULT_FPIR, DUPLICATE_FAR, MAX_PER_PERSON, MIN_TAIL_PAIRS, OPEN_SET_VERSION, PROBE_K, _BINS,
    _BLOCK_ELEMENTS, _MAX_PROBES, _TAIL_FIT_DECADES, _TAIL_FIT_MAX, _THIN, _dist_to_sim, _norm_cdf,
    _norm_ppf, _sim_to_dist, _tail_distance, _tail_far, default_far_grid
)
from facever.open_set.thresholds import threshold_for_gallery

def _clean(embeddings: np.ndarray, labels: np.ndarray, max_per_person: int | None = None,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Valid rows, at most ``max_per_person`` random ones per person, grouped by person code 0..P-1."""
    x = np.asarray(embeddings, np.float32)
    y = np.asarray(labels).ravel()
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError("embeddings must be (N, D) with one label per row")
    ok = np.isfinite(x).all(axis=1)
    x, y = x[ok], y[ok]
    _, codes = np.unique(y, return_inverse=True)
    order = np.argsort(codes, kind="stable")
    x, codes = x[order], codes[order].astype(np.int64)
    if max_per_person and len(codes):
        rng = np.random.default_rng(seed + 3)
        groups = np.split(np.arange(len(codes)), np.cumsum(np.bincount(codes))[:-1])
        keep = np.sort(np.concatenate([g if len(g) <= max_per_person else rng.choice(g, max_per_person, replace=False)
                                       for g in groups]))
        x, codes = x[keep], codes[keep]
    return np.ascontiguousarray(x), codes


def _impostor_histogram(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Counts of the similarities of every different-person pair (each pair once) in :data:`_BINS` bins."""
    n = len(x)
    hist = np.zeros(_BINS, np.int64)
    rows = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for lo in range(0, n, rows):
        hi = min(n, lo + rows)
        sims = x[lo:hi] @ x[lo:].T                                   # rows i, columns j ≥ lo
        keep = (codes[lo:hi, None] != codes[None, lo:]) & (np.arange(lo, hi)[:, None] < np.arange(lo, n)[None, :])
        s = sims[keep]
        idx = np.clip(((s + 1.0) * (_BINS / 2.0)).astype(np.int64), 0, _BINS - 1)
        hist += np.bincount(idx, minlength=_BINS)
    return hist


def _tail_rates(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(s, f)``: at each bin's lower similarity edge ``s``, the fraction ``f`` of pairs with similarity ≥ s."""
    total = hist.sum()
    at_or_above = np.cumsum(hist[::-1])[::-1]
    edges = np.arange(_BINS) * (2.0 / _BINS) - 1.0
    return edges, at_or_above / max(total, 1)


def _fit_tail(hist: np.ndarray, min_pairs: int) -> dict[str, Any] | None:
    """Least-squares line ``Φ⁻¹(f) = a + b·d`` over the lowest resolved rates (two decades above the limit)."""
    n = int(hist.sum())
    if n == 0:
        return None
    s, f = _tail_rates(hist)
    f_lo = min_pairs / n
    f_hi = min(_TAIL_FIT_MAX, f_lo * 10 ** _TAIL_FIT_DECADES)
    if f_hi < f_lo * 10:
        return None
    sel = (f >= f_lo) & (f <= f_hi)
    # one point per distinct rate (bins with no pair repeat the rate of the next one)
    fs, first = np.unique(f[sel], return_index=True)
    ds = _sim_to_dist(s[sel][first])
    # equal weight per part of a decade: average the points in 20 log-rate bins
    logf = np.log10(fs)
    edges = np.linspace(logf.min(), logf.max() + 1e-12, 21)
    which = np.digitize(logf, edges)
    zs = np.array([np.mean(_norm_ppf(fs[which == k])) for k in np.unique(which)])
    xs = np.array([np.mean(ds[which == k]) for k in np.unique(which)])
    if len(xs) < 3:
        return None
    b, a = np.polyfit(xs, zs, 1)
    if not b > 0:
        return None
    resid = zs - (a + b * xs)
    return {"model": "probit_linear_in_distance", "a": float(a), "b": float(b),
            "fit_far": [float(f_lo), float(f_hi)], "rms_residual_z": float(np.sqrt(np.mean(resid ** 2)))}


def _empirical_distance(hist: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Largest distance whose empirical rate (pairs at or below it) is ≤ ``far``, per grid rate."""
    s, f = _tail_rates(hist)
    # f decreases with s; find for each rate the smallest similarity edge whose rate ≤ far
    f_rev = f[::-1]                                        # increasing
    pos = np.searchsorted(f_rev, far, side="right") - 1    # last index with f_rev ≤ far
    pos = np.clip(pos, 0, _BINS - 1)
    return _sim_to_dist(s[::-1][pos])


def _validate_tail(hist: np.ndarray, tail: dict[str, Any], min_pairs: int, seed: int) -> dict[str, Any] | None:
    """Refit on a 1/16 thinning and compare its predictions with the full set's resolved rates."""
    n = int(hist.sum())
    rng = np.random.default_rng(seed)
    thin = rng.binomial(hist, 1.0 / _THIN)
    sub = _fit_tail(thin, min_pairs)
    if sub is None:
        return None
    f_full_lo = min_pairs / n
    f_sub_lo = min_pairs / max(int(thin.sum()), 1)
    if f_sub_lo <= f_full_lo * 1.5:
        return None
    checked = np.geomspace(f_full_lo, f_sub_lo, 6)
    d = _empirical_distance(hist, checked)
    s_edges, f_all = _tail_rates(hist)
    observed = np.interp(-_dist_to_sim(d), -s_edges[::-1], f_all[::-1])
    predicted = _tail_far(sub, d)
    err = np.abs(np.log10(np.maximum(predicted, 1e-300) / np.maximum(observed, 1e-300)))
    return {"thinning": _THIN, "checked_far": [float(v) for v in observed],
            "predicted_far": [float(v) for v in predicted], "max_abs_log10_error": float(err.max()),
            "full_fit_max_abs_log10_error": float(np.abs(np.log10(_tail_far(tail, d) / observed)).max())}


def _face_exponent(x: np.ndarray, codes: np.ndarray, seed: int, max_probes: int = 3000,
                   max_people: int = 2000) -> dict[str, Any]:
    """Measure how many independent chances a person enrolled with ``m`` faces gives a stranger.

    For ``m`` = 2 and 3 (people with at least ``m`` faces, ``m`` random faces each) and probes of
    other people, compare the rate at which the nearest of a person's ``m`` faces is within ``t``
    (``F_m``) with the per-face rate (``F_1``) at the two rarest rates in 1e-4, 3e-4, ... 1e-2
    that at least 100 per-face pairs resolve (the rare rates are the ones identification uses):
    ``m_eff = log(1 - F_m) / log(1 - F_1)`` and ``exponent = log(m_eff) / log(m)``, averaged.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    points: list[dict[str, float]] = []
    for m in (2, 3):
        people = np.flatnonzero(counts >= m)
        if len(people) < 20:
            continue
        if len(people) > max_people:
            people = rng.choice(people, max_people, replace=False)
        rows = np.stack([starts[p] + rng.choice(counts[p], m, replace=False) for p in people])  # (P, m)
        probes = np.arange(len(x)) if len(x) <= max_probes else rng.choice(len(x), max_probes, replace=False)
        per_face, per_person = [], []
        for lo in range(0, len(probes), 256):
            pr = probes[lo:lo + 256]
            d = _sim_to_dist(x[pr] @ x[rows.ravel()].T).reshape(len(pr), len(people), m)
            other = codes[pr][:, None] != people[None, :]                                 # (q, P)
            per_face.append(d[other].ravel())
            per_person.append(d.min(axis=2)[other])
        faces = np.sort(np.concatenate(per_face))
        persons = np.sort(np.concatenate(per_person))
        done = 0
        for f1 in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2):
            k = int(f1 * len(faces))
            if k < 100 or done == 2:  # the two rarest rates resolved by ≥ 100 pairs
                continue
            done += 1
            t = faces[k - 1]
            fm = np.searchsorted(persons, t, side="right") / len(persons)
            if fm <= 0 or fm >= 1:
                continue
            m_eff = math.log1p(-fm) / math.log1p(-f1)
            points.append({"m": m, "far_one_face": f1, "far_nearest_of_m": float(fm), "m_eff": float(m_eff),
                           "exponent": float(math.log(max(m_eff, 1e-9)) / math.log(m))})
    if not points:
        return {"face_exponent": 1.0, "measured": False,
                "note": "fewer than 20 calibration people with 2+ faces: counting every face (conservative)",
                "points": []}
    exponent = float(np.clip(np.mean([p["exponent"] for p in points]), 0.0, 1.0))
    return {"face_exponent": exponent, "measured": True, "points": points}


def _probe_rates(x: np.ndarray, codes: np.ndarray, t: np.ndarray, ks: tuple[int, int], seed: int,
                 max_probes: int = _MAX_PROBES) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per probe face: its impostor count ``M``; its anchor, the mean over ``k`` in ``ks`` (inclusive)
    of ``Φ⁻¹(k / M)`` (``z``) and of the distance to its ``k``-th nearest impostor face (``d``); and
    ``counts[:, j]``, its impostor faces at distance ≤ ``t[j]``. Faces with ``M < 10·ks[1]`` are
    skipped; at most ``max_probes`` random faces are used."""
    k_lo, k_hi = ks
    k = k_hi
    n = len(x)
    impostors = n - np.bincount(codes)[codes]
    probes = np.flatnonzero(impostors >= 10 * k)
    if len(probes) > max_probes:
        probes = np.sort(np.random.default_rng(seed).choice(probes, max_probes, replace=False))
    sim_thr = np.sort(_dist_to_sim(t))                       # ascending similarities
    n_t = len(sim_thr)
    kth = np.empty((len(probes), k_hi - k_lo + 1), np.float64)
    counts = np.zeros((len(probes), n_t), np.int64)
    rows = max(1, (_BLOCK_ELEMENTS // 4) // max(n, 1))
    for lo in range(0, len(probes), rows):
        pr = probes[lo:lo + rows]
        sims = x[pr] @ x.T
        sims[codes[pr][:, None] == codes[None, :]] = -np.inf
        top = np.sort(np.partition(-sims, k - 1, axis=1)[:, :k], axis=1)   # -similarity, nearest first
        kth[lo:lo + len(pr)] = -top[:, k_lo - 1:k_hi]
        level = np.searchsorted(sim_thr, sims, side="right")  # thresholds at or below each similarity
        per_row = np.bincount((level + (n_t + 1) * np.arange(len(pr))[:, None]).ravel(),
                              minlength=(n_t + 1) * len(pr)).reshape(len(pr), n_t + 1)
        at_least = np.cumsum(per_row[:, ::-1], axis=1)[:, ::-1]  # at_least[:, m] = #{level ≥ m}
        counts[lo:lo + len(pr)] = at_least[:, 1:][:, ::-1]     # similarity ≥ sim_thr[m], in t order
    m_imp = impostors[probes].astype(np.float64)
    z = _norm_ppf(np.arange(k_lo, k_hi + 1)[None, :] / m_imp[:, None]).mean(axis=1)
    return m_imp, z, _sim_to_dist(kth).mean(axis=1), counts


def _window_points(hist: np.ndarray, min_pairs: int, n_points: int = 20) -> tuple[np.ndarray, np.ndarray] | None:
    """``(distances, rates)`` of the pooled tail at ``n_points`` log-spaced rates of the fitting window."""
    n = int(hist.sum())
    f_lo = min_pairs / max(n, 1)
    f_hi = min(_TAIL_FIT_MAX, f_lo * 10 ** _TAIL_FIT_DECADES)
    if f_hi < f_lo * 10:
        return None
    s, f = _tail_rates(hist)
    f_rev = f[::-1]                                             # increasing with distance
    idx = np.unique(np.searchsorted(f_rev, np.geomspace(f_lo, f_hi, n_points)))
    idx = idx[(idx < len(f_rev)) & (f_rev[np.minimum(idx, len(f_rev) - 1)] > 0)]
    if len(idx) < 3:
        return None
    return _sim_to_dist(s[::-1][idx]), f_rev[idx]


def _fit_probe_slope(hist: np.ndarray, z: np.ndarray, d: np.ndarray, min_pairs: int) -> tuple[float, float] | None:
    """The common slope β of ``f_i(t) = Φ(z_i + β (t - d_i))`` that makes ``mean_i f_i`` match the
    pooled tail (least squares on log rates, golden-section search over log β); and its rms log10 error."""
    pts = _window_points(hist, min_pairs)
    if pts is None or len(z) < 50:
        return None
    t, rate = pts

    def loss(log_beta: float) -> float:
        pred = _norm_cdf(z[None, :] + math.exp(log_beta) * (t[:, None] - d[None, :])).mean(axis=1)
        return float(np.sum((np.log(np.maximum(pred, 1e-300)) - np.log(rate)) ** 2))

    lo, hi = math.log(0.5), math.log(500.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = loss(b)
    log_beta = (lo + hi) / 2
    return math.exp(log_beta), math.sqrt(loss(log_beta) / len(t)) / math.log(10)


def _rank_bins(n: int) -> np.ndarray:
    """Start ranks of probe bins, finest at the top (1, 1, 1, 1, 2, 2, 3, 4, 6, ... probes): bin ``b``
    holds the probes ranked ``[edge[b], edge[b+1])`` by rate, highest first."""
    edges = np.unique(np.round(2.0 ** (np.arange(0, 2 * math.log2(max(n, 2)) + 2) / 2)).astype(np.int64) - 1)
    edges = edges[edges < n]
    return np.unique(np.concatenate([[0], edges]))


def _probe_model(x: np.ndarray, codes: np.ndarray, hist: np.ndarray, t_grid: np.ndarray, min_pairs: int,
                 seed: int) -> dict[str, Any] | None:
    """The per-probe mixture: each calibration face's own impostor rate at every grid distance
    (empirical down to its ``PROBE_K[1]``-th nearest impostor, probit tail with the common slope
    below), summarised per distance by the mean rate of probes in rank bins (finest for the
    highest rates, which dominate the FPIR of large galleries)."""
    t = np.unique(np.asarray(t_grid, np.float64))
    m_imp, z, d, counts = _probe_rates(x, codes, t, PROBE_K, seed)
    fit = _fit_probe_slope(hist, z, d, min_pairs)
    if fit is None:
        return None
    beta, rms = fit
    empirical = counts / m_imp[:, None]
    modelled = _norm_cdf(z[:, None] + beta * (t[None, :] - d[:, None]))
    k_hi = PROBE_K[1]
    rates = np.where(counts >= k_hi, empirical, np.minimum(modelled, k_hi / m_imp[:, None]))
    rates = -np.sort(-rates, axis=0)                          # per distance, highest rate first
    edges = _rank_bins(len(rates))
    sizes = np.diff(np.append(edges, len(rates)))
    means = np.add.reduceat(rates, edges, axis=0) / sizes[:, None]   # (bins, T)
    return {"model": "per_probe_mixture", "k": list(PROBE_K), "beta": round(beta, 5), "rms_log10_error": round(rms, 4),
            "n_probes": int(len(rates)), "distance": [round(float(v), 6) for v in t],
            "bin_weights": [float(f"{w:.6g}") for w in sizes / len(rates)],
            "rates": [[float(f"{v:.4g}") for v in row] for row in means.T]}


def _validate_galleries(x: np.ndarray, codes: np.ndarray, open_set: dict[str, Any], seed: int,
                        max_probes: int = 3000) -> list[dict[str, Any]]:
    """FPIR measured on random galleries of the calibration people (up to 3 faces each) at the
    threshold computed for them; strangers are the faces of everyone else."""
    rng = np.random.default_rng(seed + 7)
    n_people = int(codes.max()) + 1
    rows_of = np.split(np.arange(len(codes)), np.cumsum(np.bincount(codes))[:-1])
    target = float(open_set["default_fpir"])
    out = []
    for size, repeats in ((10, 20), (100, 5), (1000, 2)):
        if size > n_people // 2:
            break
        accepted = total = faces = 0
        for _ in range(repeats):
            chosen = rng.choice(n_people, size, replace=False)
            gallery = np.concatenate([rng.permutation(rows_of[p])[:3] for p in chosen])
            strangers = np.flatnonzero(~np.isin(codes, chosen))
            if len(strangers) > max_probes:
                strangers = rng.choice(strangers, max_probes, replace=False)
            thr, _ = threshold_for_gallery(open_set, len(gallery), size)
            best = np.full(len(strangers), -1.0)
            for lo in range(0, len(strangers), 1024):
                best[lo:lo + 1024] = (x[strangers[lo:lo + 1024]] @ x[gallery].T).max(axis=1)
            accepted += int((_sim_to_dist(best) <= thr).sum())
            total += len(strangers)
            faces += len(gallery)
        out.append({"people": size, "faces": round(faces / repeats, 1), "fpir_target": target,
                    "fpir_measured": round(accepted / max(total, 1), 5), "stranger_probes": total})
    return out


def impostor_distribution(embeddings: np.ndarray, labels: np.ndarray, *, description: str = "",
                          default_fpir: float = DEFAULT_FPIR, far_grid: np.ndarray | None = None,
                          min_tail_pairs: int = MIN_TAIL_PAIRS, max_per_person: int | None = MAX_PER_PERSON,
                          seed: int = 0) -> dict[str, Any]:
    """Calibrate the open-set policy of a model on held-out people (never enrolled, never trained on).

    Args:
        embeddings: ``(N, D)`` unit vectors; NaN rows (no face) are ignored.
        labels: ``(N,)`` person of each row (any hashable values).
        description: who the people are (stored, shown to users).
        default_fpir: the target FPIR identification uses unless told otherwise.
        far_grid: per-comparison rates to store the distance at (default :func:`default_far_grid`).
        min_tail_pairs: fewest pairs at or below a distance for its empirical rate to be trusted.
        max_per_person: use at most this many random faces of each person (None: all).
        seed: for the subsamples (faces per person, tail validation, probes, face exponent, validation).

    Returns:
        A JSON-ready dict (store it as the bundle's ``metadata.open_set``)::

            kind, version, description, default_fpir, duplicate_far
            n_people, n_faces, n_impostor          # calibration size (faces used)
            far: [...], distance: [...]            # one impostor comparison falls at or below
                                                   # distance with probability far (increasing)
            extrapolated: [...]                    # True where the tail model, not data, gave it
            min_resolved_far                       # min_tail_pairs / n_impostor
            tail: {model, a, b, fit_far, rms_residual_z, validation} | None
            probes: {model, k, beta, rms_log10_error, n_probes,   # hub model: per distance,
                     distance, bin_weights, rates} | None   # the mean rate of probes in rank bins
            face_exponent, face_exponent_detail    # N_eff = people · (faces/people) ** exponent
            validation: [{people, faces, fpir_target, fpir_measured, stranger_probes}, ...]

        Sizes: about 20 KB of JSON.

    Raises:
        ValueError: fewer than 2 people or no impostor pair.
    """
    if not 0 < default_fpir < 1:
        raise ValueError("default_fpir must be in (0, 1)")
    x, codes = _clean(embeddings, labels, max_per_person, seed)
    n_people = int(codes.max()) + 1 if len(codes) else 0
    if n_people < 2:
        raise ValueError("need faces of at least 2 people to measure impostor distances")
    hist = _impostor_histogram(x, codes)
    n_imp = int(hist.sum())
    if n_imp == 0:
        raise ValueError("no impostor pair")
    grid = default_far_grid() if far_grid is None else np.unique(np.asarray(far_grid, np.float64))
    if grid.min() <= 0 or grid.max() >= 1:
        raise ValueError("far_grid values must be in (0, 1)")
    f_resolved = min(1.0, min_tail_pairs / n_imp)
    tail = _fit_tail(hist, min_tail_pairs)
    if tail is not None:
        tail["validation"] = _validate_tail(hist, tail, min_tail_pairs, seed)
    dist = _empirical_distance(hist, grid)
    extrapolated = grid < f_resolved
    if tail is not None:
        dist = np.where(extrapolated, _tail_distance(tail, grid), dist)
    else:  # clamp at the resolved limit
        dist = np.where(extrapolated, _empirical_distance(hist, np.array([f_resolved]))[0], dist)
    dist = np.maximum.accumulate(dist)             # monotone in the rate
    probes = _probe_model(x, codes, hist, dist, min_tail_pairs, seed)
    exponent = _face_exponent(x, codes, seed)
    out = {
        "kind": "impostor_distribution", "version": OPEN_SET_VERSION,
        "description": description or f"{n_people} held-out people, {len(x)} faces",
        "default_fpir": float(default_fpir), "duplicate_far": DUPLICATE_FAR,
        "n_people": n_people, "n_faces": int(len(x)), "max_per_person": max_per_person, "n_impostor": n_imp,
        "far": [float(v) for v in grid], "distance": [round(float(v), 6) for v in dist],
        "extrapolated": [bool(v) for v in extrapolated], "min_resolved_far": float(f_resolved),
        "tail": tail, "probes": probes,
        "face_exponent": round(exponent["face_exponent"], 4), "face_exponent_detail": exponent,
    }
    out["validation"] = _validate_galleries(x, codes, out, seed)
    return out


# ==============================================================================================
# Use
# ==============================================================================================

def synthetic_embeddings(n_people: int, per_person: int | tuple[int, int] = 3, dim: int = 128, *,
                         groups: int = 8, group_weight: float = 0.45, spread: float = 1.2,
                         hub_weight: float = 0.45, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors that behave like face embeddings, for tests and benchmarks.

    People belong to ``groups`` look-alike groups (their centres share ``group_weight`` of a group
    direction); each face is its person's centre plus isotropic noise (``spread``) plus a random
    amount of one shared "hub" direction (``hub_weight``: poor photos drift towards a common point,
    so some faces are near many people, as in real embeddings). ``per_person`` is a count or a
    ``(low, high)`` range (inclusive). Returns ``(embeddings (N, dim) float32, labels (N,) int)``.
    """
    rng = np.random.default_rng(seed)

    def unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    group_dirs = unit(rng.normal(size=(groups, dim)))
    hub = unit(rng.normal(size=dim))
    group = rng.integers(0, groups, n_people)
    own = unit(rng.normal(size=(n_people, dim)))
    centres = unit(group_weight * group_dirs[group] + math.sqrt(1 - group_weight ** 2) * own)
    if isinstance(per_person, tuple):
        counts = rng.integers(per_person[0], per_person[1] + 1, n_people)
    else:
        counts = np.full(n_people, int(per_person))
    labels = np.repeat(np.arange(n_people), counts)
    n = len(labels)
    noise = rng.normal(size=(n, dim)) * (spread / math.sqrt(dim))
    hubness = np.abs(rng.normal(size=(n, 1))) * hub_weight
    x = unit(centres[labels] + noise + hubness * hub)
    return x.astype(np.float32), labels

