"""Verification and open-set identification metrics on distances between unit embeddings.

NumPy + scikit-learn (training/evaluation side). Conventions: see :mod:`facever.training.evaluation`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.metrics import auc as _auc
from sklearn.metrics import roc_curve
from sklearn.model_selection import KFold, StratifiedKFold

from facever.gallery.search import person_distances as _person_distances
from facever.matching import MAX_DISTANCE, best_accuracy_threshold, threshold_at_rate

__all__ = [
    "MAX_DISTANCE", "FARS", "FPIRS", "PROTOCOLS", "EmbedFn", "ProgressFn", "threshold_at_rate", "open_set_threshold",
    "accuracy_at_threshold", "verification_metrics", "kfold_accuracy", "pair_distances", "all_pairs_distances",
    "person_distances", "open_set_identification", "landmark_error",
]

#: False accept rates reported by default.
FARS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
#: False positive identification rates reported by default (open set).
FPIRS: tuple[float, ...] = (0.01, 0.1)
#: Protocol names understood by :func:`evaluate_all`.
PROTOCOLS: tuple[str, ...] = ("p1", "p2", "p3", "p4")

EmbedFn = Callable[[list[str]], np.ndarray]
ProgressFn = Callable[[int, int], None]

# ----------------------------------------------------------------------------------------------
# Pure metrics on distances
# ----------------------------------------------------------------------------------------------


def _prepare(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """float64 distances with NaN → MAX_DISTANCE, bool labels, number of NaNs."""
    d = np.asarray(distances, np.float64).ravel()
    s = np.asarray(same).astype(bool).ravel()
    if d.shape != s.shape:
        raise ValueError(f"distances and same must have the same length, got {d.shape[0]} and {s.shape[0]}")
    bad = ~np.isfinite(d)
    n_failed = int(bad.sum())
    if n_failed:
        d = np.where(bad, MAX_DISTANCE, d)
    return d, s, n_failed


def _require_both(same: np.ndarray) -> None:
    if not same.any() or same.all():
        raise ValueError("need both genuine (same) and impostor (different) pairs")


def _rate_key(rate: float) -> str:
    return f"{rate:g}"


def open_set_threshold(unknown_best_distances: np.ndarray, fpir: float) -> float:
    """Open-set identify threshold for a target false positive identification rate.

    Args:
        unknown_best_distances: ``(U,)`` distance of each unknown probe (a person not enrolled) to
            its best gallery match; NaN (no face) counts as :data:`MAX_DISTANCE`.
        fpir: target FPIR in [0, 1]: the fraction of unknown probes accepted (best distance ≤ τ).

    Returns:
        The largest τ whose FPIR on these probes is ≤ ``fpir`` (see :func:`threshold_at_rate`). When
        ``fpir · U < 1`` this τ accepts no unknown probe at all and the target is not resolved by
        the data.
    """
    return threshold_at_rate(unknown_best_distances, fpir)


def accuracy_at_threshold(distances: np.ndarray, same: np.ndarray, tau: float) -> float:
    """Fraction of pairs decided correctly by ``distance ≤ tau`` (NaN distances count as 2.0)."""
    d, s, _ = _prepare(distances, same)
    if d.size == 0:
        raise ValueError("no pairs")
    return float(((d <= tau) == s).mean())


def _eer(fpr: np.ndarray, tpr: np.ndarray, thr: np.ndarray, d_min: float) -> tuple[float, float]:
    """EER (FAR = FRR, linear between neighbouring ROC points) and the distance τ nearest to it."""
    diff = (1.0 - tpr) - fpr  # FRR − FAR: non-increasing from 1 to −1
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0 or i == 0:
        eer, j = float(fpr[i]), i
    else:
        x = diff[i - 1] / (diff[i - 1] - diff[i])
        eer = float(fpr[i - 1] + x * (fpr[i] - fpr[i - 1]))
        j = i if abs(diff[i]) <= abs(diff[i - 1]) else i - 1
    tau = -float(thr[j])
    if not np.isfinite(tau):  # sklearn's first point: accept nothing
        tau = float(np.nextafter(d_min, -np.inf))
    return eer, tau


def verification_metrics(distances: np.ndarray, same: np.ndarray, fars: Sequence[float] = FARS) -> dict[str, Any]:
    """ROC AUC, EER, TAR at fixed FARs and best accuracy of labelled pairs.

    Args:
        distances: ``(N,)`` pair distances in [0, 2]; NaN = failed pair (scored 2.0).
        same: ``(N,)`` True for genuine pairs.
        fars: FAR targets for ``tar_at_far``.

    Returns:
        ``n_pairs``, ``n_genuine``, ``n_impostor``, ``n_failed``; ``roc_auc``; ``eer`` and
        ``eer_threshold``; ``best_accuracy`` and ``best_accuracy_threshold`` (τ chosen on these same
        pairs: optimistic); ``tar_at_far``: ``{"0.01": {far_target, tar, far, threshold,
        resolvable}, ...}``, where ``threshold`` is the largest τ with FAR ≤ target, ``far`` the FAR
        measured at it, and ``tar``/``threshold``/``far`` are None when ``resolvable`` is False
        (fewer than ``1/far_target`` impostor pairs).

    Raises:
        ValueError: mismatched lengths, or no genuine or no impostor pair.
    """
    d, s, n_failed = _prepare(distances, same)
    _require_both(s)
    fpr, tpr, thr = roc_curve(s, -d, drop_intermediate=False)
    roc_auc = float(_auc(fpr, tpr))
    eer, eer_tau = _eer(fpr, tpr, thr, float(d.min()))
    del fpr, tpr, thr
    genuine, impostor = d[s], d[~s]
    tar_at_far: dict[str, Any] = {}
    for far in fars:
        entry: dict[str, Any] = {"far_target": float(far), "tar": None, "far": None, "threshold": None,
                                 "resolvable": bool(far * impostor.size >= 1 - 1e-9)}
        if entry["resolvable"]:
            tau = threshold_at_rate(impostor, far)
            entry.update(tar=float((genuine <= tau).mean()), far=float((impostor <= tau).mean()), threshold=tau)
        tar_at_far[_rate_key(far)] = entry
    best_tau = best_accuracy_threshold(d, s)
    return {
        "n_pairs": int(d.size), "n_genuine": int(genuine.size), "n_impostor": int(impostor.size),
        "n_failed": n_failed, "roc_auc": roc_auc, "eer": eer, "eer_threshold": eer_tau,
        "tar_at_far": tar_at_far,
        "best_accuracy": float(((d <= best_tau) == s).mean()), "best_accuracy_threshold": best_tau,
    }


def kfold_accuracy(distances: np.ndarray, same: np.ndarray, folds: int | Sequence[int] | np.ndarray = 10,
                   seed: int = 0) -> dict[str, Any]:
    """Cross-validated accuracy: τ chosen on the other folds, accuracy measured on the held-out one.

    For each fold, τ is the best-accuracy threshold (:func:`facever.matching.best_accuracy_threshold`)
    of the pairs *outside* the fold; the fold's pairs never influence their own threshold (the LFW
    "unrestricted threshold" rule).

    Args:
        distances: ``(N,)`` pair distances; NaN = failed pair (scored 2.0).
        same: ``(N,)`` True for genuine pairs.
        folds: a number of folds (random, stratified by label, seeded) or ``(N,)`` explicit fold ids
            (e.g. LFW View 2's official folds).
        seed: random seed when ``folds`` is a number.

    Returns:
        ``mean``, ``std`` (sample standard deviation over folds, ddof=1 as in the LFW README),
        ``stderr`` (= std/√folds), ``accuracies`` and ``thresholds`` per fold, ``n_folds``,
        ``n_failed``.
    """
    d, s, n_failed = _prepare(distances, same)
    if np.ndim(folds) == 0:
        n_splits = int(folds)  # type: ignore[arg-type]
        if n_splits < 2:
            raise ValueError(f"need at least 2 folds, got {n_splits}")
        counts = np.bincount(s.astype(int), minlength=2)
        splitter = (StratifiedKFold(n_splits, shuffle=True, random_state=seed) if counts.min() >= n_splits
                    else KFold(n_splits, shuffle=True, random_state=seed))
        fold_ids = np.empty(d.size, np.int64)
        for k, (_, test) in enumerate(splitter.split(d, s)):
            fold_ids[test] = k
    else:
        fold_ids = np.asarray(folds).ravel()
        if fold_ids.shape != d.shape:
            raise ValueError(f"fold ids must have one entry per pair ({d.size}), got {fold_ids.size}")
    accuracies, thresholds = [], []
    for fold in np.unique(fold_ids):
        test = fold_ids == fold
        train = ~test
        if not train.any():
            raise ValueError("a fold holds every pair: nothing left to choose the threshold on")
        tau = best_accuracy_threshold(d[train], s[train])
        thresholds.append(float(tau))
        accuracies.append(float(((d[test] <= tau) == s[test]).mean()))
    acc = np.asarray(accuracies)
    std = float(acc.std(ddof=1)) if acc.size > 1 else 0.0
    return {"mean": float(acc.mean()), "std": std, "stderr": std / math.sqrt(acc.size), "n_folds": int(acc.size),
            "accuracies": accuracies, "thresholds": thresholds, "n_failed": n_failed}


def pair_distances(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean distances ``(N,)`` of two ``(N, D)`` embedding arrays; NaN where either row
    is NaN (a failure, scored 2.0 by the metric functions)."""
    e1, e2 = np.asarray(emb1, np.float32), np.asarray(emb2, np.float32)
    return np.linalg.norm(e1 - e2, axis=1)


def all_pairs_distances(embeddings: np.ndarray, labels: np.ndarray, block: int = 1024) -> dict[str, Any]:
    """Distances of every unordered pair ``i < j`` of a set of images, split by genuine/impostor.

    Computed blockwise from dot products (unit vectors: ``d = sqrt(max(2 − 2·s, 0))``) in float32,
    upper triangle only, so memory is ``O(block · N)`` plus the outputs (4 bytes per pair).

    Args:
        embeddings: ``(N, D)`` unit vectors; NaN rows = failed images (their pairs get 2.0).
        labels: ``(N,)`` identity of each image.
        block: rows per block.

    Returns:
        ``genuine`` and ``impostor``: float32 distance arrays (row-major order of ``(i, j)``);
        ``n_failed_pairs``: pairs involving a failed image.
    """
    e = np.asarray(embeddings, np.float32)
    y = np.asarray(labels).ravel()
    n = e.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"labels must have one entry per embedding ({n}), got {y.shape[0]}")
    failed = ~np.isfinite(e).all(axis=1)
    e = np.where(failed[:, None], 0.0, e).astype(np.float32)
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_gen = int((counts * (counts - 1) // 2).sum())
    n_imp = n * (n - 1) // 2 - n_gen
    genuine = np.empty(n_gen, np.float32)
    impostor = np.empty(n_imp, np.float32)
    g = m = 0
    for start in range(0, n, block):
        stop = min(start + block, n)
        sim = e[start:stop] @ e[start:].T  # (b, n - start)
        dist = np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0, dtype=np.float32))
        dist[failed[start:stop], :] = MAX_DISTANCE
        dist[:, failed[start:]] = MAX_DISTANCE
        rows, cols = np.triu_indices(stop - start, k=1, m=n - start)
        d_up = dist[rows, cols]
        same = codes[start + rows] == codes[start + cols]
        ng, ni = int(same.sum()), int((~same).sum())
        genuine[g:g + ng] = d_up[same]
        impostor[m:m + ni] = d_up[~same]
        g, m = g + ng, m + ni
    n_failed_pairs = int(n * (n - 1) // 2 - (n - failed.sum()) * (n - failed.sum() - 1) // 2)
    return {"genuine": genuine, "impostor": impostor, "n_failed_pairs": n_failed_pairs}


# ----------------------------------------------------------------------------------------------
# Open-set identification
# ----------------------------------------------------------------------------------------------


def person_distances(probes: np.ndarray, gallery: np.ndarray, gallery_labels: np.ndarray,
                     variant: str = "nearest") -> tuple[np.ndarray, np.ndarray]:
    """Distance of each probe to each enrolled person, with failures (the gallery's own scoring).

    The scoring is :func:`facever.gallery.search.person_distances` (what ``identify`` runs); this
    adds evaluation's bookkeeping: labels in any order, and NaN rows for images without a face.

    Args:
        probes: ``(Q, D)`` unit vectors (NaN rows give :data:`MAX_DISTANCE` everywhere).
        gallery: ``(G, D)`` enrolled unit vectors. NaN rows (no face) count as not enrolled; a person
            with no valid enrolled vector is at :data:`MAX_DISTANCE` from every probe.
        gallery_labels: ``(G,)`` person of each enrolled vector.
        variant: ``"nearest"`` (distance to the person's nearest enrolled face) or ``"mean3"`` (mean
            distance to the person's nearest up to 3 enrolled faces).

    Returns:
        ``(Q, P)`` float32 distances in [0, 2] and the ``(P,)`` sorted unique person labels of the columns.
    """
    if variant not in ("nearest", "mean3"):
        raise ValueError(f"unknown variant {variant!r}: use 'nearest' or 'mean3'")
    q = np.asarray(probes, np.float32)
    gal = np.asarray(gallery, np.float32)
    labels = np.asarray(gallery_labels).ravel()
    people = np.unique(labels)
    out = np.full((q.shape[0], people.size), MAX_DISTANCE, np.float32)
    q_ok = np.isfinite(q).all(axis=1)
    g_ok = np.isfinite(gal).all(axis=1)
    if not q_ok.any() or not g_ok.any():
        return out, people
    # valid enrolled rows grouped by person (stable: each person's rows keep their order)
    codes = np.searchsorted(people, labels[g_ok])
    order = np.argsort(codes, kind="stable")
    present, starts = np.unique(codes[order], return_index=True)
    dist = _person_distances(q[q_ok], gal[g_ok][order], starts, variant)
    out[np.ix_(np.flatnonzero(q_ok), present)] = dist
    return out, people


def open_set_identification(probes: np.ndarray, probe_labels: np.ndarray, gallery: np.ndarray,
                            gallery_labels: np.ndarray, fpirs: Sequence[float] = FPIRS,
                            variants: Sequence[str] = ("nearest", "mean3")) -> dict[str, Any]:
    """Rank-1 and DIR at fixed FPIR of probes against an enrolled gallery.

    Args:
        probes: ``(Q, D)`` unit vectors; NaN rows are failed probes (never correct, best distance 2.0).
        probe_labels: ``(Q,)`` int person of each probe, ``-1`` for unknown people (not enrolled).
        gallery, gallery_labels: ``(G, D)`` enrolled vectors and their ``(G,)`` int persons (≥ 0).
        fpirs: FPIR targets.
        variants: person scoring, see :func:`person_distances`.

    Returns:
        Counts (``n_known_probes``, ``n_unknown_probes``, ``n_failed_probes``, ``n_people``,
        ``n_gallery``, ``n_failed_gallery``) and per variant: ``rank1`` (fraction of known probes whose
        best person is right) and ``dir_at_fpir``: ``{"0.01": {fpir_target, dir, fpir, threshold,
        resolvable}}``: τ = :func:`open_set_threshold` of the unknown probes' best distances, DIR =
        fraction of known probes whose best person is right *and* best distance ≤ τ, ``fpir`` = the
        fraction of unknown probes accepted at τ; None values when the target is not resolvable
        (fewer than ``1/fpir`` unknown probes).

    Raises:
        ValueError: a known probe's person is not in the gallery, or mismatched lengths.
    """
    q = np.asarray(probes, np.float32)
    y = np.asarray(probe_labels).astype(np.int64).ravel()
    gy = np.asarray(gallery_labels).astype(np.int64).ravel()
    if y.size != q.shape[0] or gy.size != np.asarray(gallery).shape[0]:
        raise ValueError("one label per probe and per gallery vector is required")
    if gy.size == 0:
        raise ValueError("the gallery is empty")
    if (gy < 0).any():
        raise ValueError("gallery labels must be ≥ 0 (-1 marks unknown probes)")
    known = y >= 0
    missing = np.setdiff1d(y[known], gy)
    if missing.size:
        raise ValueError(f"{missing.size} known probe people are not enrolled (e.g. label {int(missing[0])})")
    q_bad = ~np.isfinite(q).all(axis=1)
    g_bad = ~np.isfinite(np.asarray(gallery, np.float32)).all(axis=1)
    result: dict[str, Any] = {
        "n_known_probes": int(known.sum()), "n_unknown_probes": int((~known).sum()),
        "n_failed_probes": int(q_bad.sum()), "n_people": int(np.unique(gy).size),
        "n_gallery": int(gy.size), "n_failed_gallery": int(g_bad.sum()),
    }
    for variant in variants:
        dist, people = person_distances(q, gallery, gy, variant)
        best = dist.argmin(axis=1)
        best_d = dist[np.arange(dist.shape[0]), best].astype(np.float64)
        correct = (people[best] == y) & known & ~q_bad
        entry: dict[str, Any] = {"rank1": float(correct[known].mean()) if known.any() else None}
        unknown_best = best_d[~known]
        dirs: dict[str, Any] = {}
        for fpir in fpirs:
            item: dict[str, Any] = {"fpir_target": float(fpir), "dir": None, "fpir": None, "threshold": None,
                                    "resolvable": bool(fpir * unknown_best.size >= 1 - 1e-9)}
            if item["resolvable"]:
                tau = open_set_threshold(unknown_best, fpir)
                item.update(threshold=tau, fpir=float((unknown_best <= tau).mean()),
                            dir=float((correct[known] & (best_d[known] <= tau)).mean()) if known.any() else None)
            dirs[_rate_key(fpir)] = item
        entry["dir_at_fpir"] = dirs
        result[variant] = entry
    return result


def landmark_error(pred: np.ndarray, truth: np.ndarray, failure_threshold: float = 0.1) -> dict[str, Any]:
    """Normalised landmark error of 5-point predictions.

    Args:
        pred, truth: ``(N, 5, 2)`` pixel coordinates (left eye, right eye, nose, mouth corners).
        failure_threshold: an image whose normalised error exceeds this is a failure (usual: 0.1).

    Returns:
        ``n``; ``mean`` and ``median`` of the per-image error (mean point-to-point distance divided
        by the true inter-ocular distance, i.e. between points 0 and 1: unitless);
        ``failure_rate`` (fraction of images above ``failure_threshold``); ``per_point_mean`` (5).
    """
    p = np.asarray(pred, np.float64)
    t = np.asarray(truth, np.float64)
    if p.shape != t.shape or p.ndim != 3 or p.shape[1:] != (5, 2):
        raise ValueError(f"pred and truth must both be (N, 5, 2), got {p.shape} and {t.shape}")
    if p.shape[0] == 0:
        return {"n": 0, "mean": None, "median": None, "failure_rate": None, "per_point_mean": None,
                "failure_threshold": failure_threshold}
    iod = np.linalg.norm(t[:, 0] - t[:, 1], axis=1)
    if (iod <= 0).any():
        raise ValueError("true inter-ocular distance must be positive")
    per_point = np.linalg.norm(p - t, axis=2) / iod[:, None]  # (N, 5)
    err = per_point.mean(axis=1)
    return {"n": int(err.size), "mean": float(err.mean()), "median": float(np.median(err)),
            "failure_rate": float((err > failure_threshold).mean()), "failure_threshold": failure_threshold,
            "per_point_mean": [float(v) for v in per_point.mean(axis=0)]}


