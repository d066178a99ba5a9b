"""Evaluation: verification metrics, LFW protocols P1–P4, plots, detection figures.

Conventions. Embeddings are ``(N, D)`` float unit vectors; the distance between two is Euclidean, in
[0, 2]; a pair is accepted ("same person") when its distance ≤ τ. Labels ``same`` are booleans (True =
genuine pair). An embedding row of NaN means no face was found in that image: every pair or probe that
involves it is a *failure*, counted in ``n_failed`` and scored with the maximum distance
:data:`MAX_DISTANCE` (2.0), so it counts against the model (a genuine pair is rejected at any τ < 2).

Rates: FAR (false accept rate) = accepted impostor pairs / impostor pairs; TAR = accepted genuine pairs
/ genuine pairs; FRR = 1 − TAR. Thresholds "at a rate" are the largest τ whose observed rate is ≤ the
target (no interpolation); a target below one impostor (``rate × n < 1``) is reported as not resolvable.

Protocol runners take ``embed(paths) -> (len(paths), D)`` where ``paths`` are relative to the LFW image
root (see :mod:`facever.lfw`); :func:`embed_lfw_images` is that function for facever's own pipeline.
Every function returns JSON-ready dicts (plain floats, ints, lists, None).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from sklearn.metrics import auc as _auc
from sklearn.metrics import roc_curve
from sklearn.model_selection import KFold, StratifiedKFold

from facever import lfw
from facever.matching import best_accuracy_threshold, rates_at

#: Distance given to failed pairs/probes (no face): the largest possible between unit vectors.
MAX_DISTANCE = 2.0
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


def threshold_at_rate(negatives: np.ndarray, rate: float) -> float:
    """Largest τ such that the fraction of ``negatives`` with distance ≤ τ is ≤ ``rate``.

    Args:
        negatives: ``(M,)`` distances that should be rejected (impostor pairs, unknown probes'
            best distances); NaN counts as :data:`MAX_DISTANCE`.
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
                     variant: str = "nearest", chunk_elements: int = 8_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Distance of each probe to each enrolled person.

    Args:
        probes: ``(Q, D)`` unit vectors (NaN rows give 2.0 everywhere).
        gallery: ``(G, D)`` enrolled unit vectors. NaN rows (no face) count as not enrolled; a person
            with no valid enrolled vector is at distance 2.0 from every probe.
        gallery_labels: ``(G,)`` person of each enrolled vector.
        variant: ``"nearest"`` (distance to the person's nearest enrolled face) or ``"mean3"`` (mean
            distance to the person's nearest up to 3 enrolled faces).
        chunk_elements: bound on the temporary array size (elements).

    Returns:
        ``(Q, P)`` float32 distances and the ``(P,)`` sorted unique person labels of the columns.
    """
    if variant not in ("nearest", "mean3"):
        raise ValueError(f"unknown variant {variant!r}: use 'nearest' or 'mean3'")
    q = np.asarray(probes, np.float32)
    gal = np.asarray(gallery, np.float32)
    people, codes, counts = np.unique(np.asarray(gallery_labels).ravel(), return_inverse=True, return_counts=True)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    gal = gal[order]
    q_bad = ~np.isfinite(q).all(axis=1)
    g_bad = ~np.isfinite(gal).all(axis=1)
    q = np.where(q_bad[:, None], 0.0, q).astype(np.float32)
    gal = np.where(g_bad[:, None], 0.0, gal).astype(np.float32)
    kmax = int(counts.max()) if counts.size else 0
    out = np.empty((q.shape[0], people.size), np.float32)
    if variant == "mean3":
        pad = np.full((people.size, kmax), -1, np.int64)
        for p, (st, c) in enumerate(zip(starts, counts)):
            idx = np.arange(st, st + c)
            idx = idx[~g_bad[idx]]  # failed enrolment images count as not enrolled
            pad[p, :idx.size] = idx
        m = np.minimum((pad >= 0).sum(axis=1), 3)
    rows = max(1, chunk_elements // max(1, gal.shape[0] + people.size * kmax))
    for a in range(0, q.shape[0], rows):
        b = min(a + rows, q.shape[0])
        sim = q[a:b] @ gal.T
        dist = np.sqrt(np.maximum(2.0 - 2.0 * sim, 0.0, dtype=np.float32))
        dist[:, g_bad] = MAX_DISTANCE
        dist[q_bad[a:b], :] = MAX_DISTANCE
        if variant == "nearest":
            out[a:b] = np.minimum.reduceat(dist, starts, axis=1)
        else:
            gathered = np.where(pad >= 0, dist[:, np.maximum(pad, 0)], np.inf)  # (b-a, P, kmax)
            gathered = np.sort(gathered, axis=2)[:, :, :3]
            keep = np.arange(gathered.shape[2])[None, :] < m[:, None]  # (P, ≤3)
            total = np.where(keep[None], gathered, 0.0).sum(axis=2)
            out[a:b] = np.where(m[None, :] > 0, total / np.maximum(m, 1)[None, :], MAX_DISTANCE)
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


# ----------------------------------------------------------------------------------------------
# Protocol runners
# ----------------------------------------------------------------------------------------------


def _embed_checked(embed: EmbedFn, paths: list[str]) -> np.ndarray:
    emb = np.asarray(embed(list(paths)), np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(paths):
        raise ValueError(f"embed returned shape {emb.shape} for {len(paths)} paths; expected ({len(paths)}, D)")
    return emb


def _embed_pairs(pairs: list[lfw.Pair], embed: EmbedFn) -> tuple[np.ndarray, np.ndarray]:
    paths = sorted({p.path1 for p in pairs} | {p.path2 for p in pairs})
    index = {p: i for i, p in enumerate(paths)}
    emb = _embed_checked(embed, paths)
    i1 = np.fromiter((index[p.path1] for p in pairs), np.int64, len(pairs))
    i2 = np.fromiter((index[p.path2] for p in pairs), np.int64, len(pairs))
    same = np.fromiter((p.same for p in pairs), bool, len(pairs))
    return pair_distances(emb[i1], emb[i2]), same


def _overlap(people: Iterable[str], trained_people: set[str] | None) -> dict[str, Any]:
    names = set(people)
    if trained_people is None:
        return {"contaminated": None, "n_people": len(names), "n_people_in_training": None}
    seen = names & set(trained_people)
    return {"contaminated": bool(seen), "n_people": len(names), "n_people_in_training": len(seen)}


def _maybe_plots(result: dict[str, Any], distances: np.ndarray, same: np.ndarray,
                 plots_dir: str | os.PathLike[str] | None, label: str) -> None:
    if plots_dir is not None:
        result["plots"] = save_plots(distances, same, plots_dir, label)


def evaluate_view1(lfw_root: str | os.PathLike[str], embed: EmbedFn, threshold: float | None = None,
                   folds: int = 10, seed: int = 0, trained_people: set[str] | None = None,
                   plots_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """P1, LFW View 1: the 1,000 pairs of ``protocol/pairsDevTest.txt``.

    Args:
        lfw_root: LFW root (``protocol/`` inside).
        embed: ``paths -> (len(paths), D)`` unit vectors (NaN rows: no face).
        threshold: also report accuracy/FAR/FRR at this τ (e.g. the model's calibrated one).
        folds, seed: random stratified folds of the 10-fold cross-validated accuracy.
        trained_people: names the model trained on (to flag contamination), if known.
        plots_dir: write ROC and histogram PNGs there.

    Returns:
        ``kfold`` (see :func:`kfold_accuracy`), ``accuracy`` (its mean), ``stderr``, ``roc_auc``,
        ``eer``, the full ``metrics`` (:func:`verification_metrics`), ``at_threshold`` (or None),
        ``n_failed`` pairs, contamination figures.
    """
    pairs = lfw.read_pairs(lfw.protocol_file(lfw_root, "pairsDevTest.txt"))
    d, s = _embed_pairs(pairs, embed)
    metrics = verification_metrics(d, s)
    kf = kfold_accuracy(d, s, folds=folds, seed=seed)
    at = None
    if threshold is not None:
        far, frr = rates_at(threshold, np.where(np.isfinite(d), d, MAX_DISTANCE), s)
        at = {"threshold": float(threshold), "accuracy": accuracy_at_threshold(d, s, threshold), "far": far, "frr": frr}
    result = {"protocol": "p1", "name": "LFW View 1 (pairsDevTest, 10-fold CV threshold)",
              "n_pairs": len(pairs), "n_failed": metrics["n_failed"], "accuracy": kf["mean"], "stderr": kf["stderr"],
              "roc_auc": metrics["roc_auc"], "eer": metrics["eer"], "kfold": kf, "at_threshold": at,
              "metrics": metrics,
              **_overlap({p.name1 for p in pairs} | {p.name2 for p in pairs}, trained_people)}
    _maybe_plots(result, d, s, plots_dir, "p1_view1")
    return result


def _devtest_images(lfw_root: str | os.PathLike[str]) -> tuple[dict[str, int], list[str], np.ndarray]:
    counts = lfw.read_people(lfw.protocol_file(lfw_root, "peopleDevTest.txt"))
    paths = lfw.people_images(None, counts)
    labels = np.repeat(np.arange(len(counts)), list(counts.values()))
    return counts, paths, labels


def evaluate_devtest_all_pairs(lfw_root: str | os.PathLike[str], embed: EmbedFn, fars: Sequence[float] = FARS,
                               trained_people: set[str] | None = None,
                               plots_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """P2: every genuine and impostor pair among the DevTest images (``peopleDevTest.txt``).

    Full LFW: 3,708 images, about 6.9 M pairs; distances are computed blockwise in float32
    (:func:`all_pairs_distances`; about 30 MB for the distances, < 1 GB peak with the ROC).

    Returns:
        ``n_images``, ``n_failed_images``, ``n_failed`` (pairs), ``tar_at_far``, ``eer``, ``roc_auc``,
        and the full ``metrics`` (:func:`verification_metrics`), contamination figures.
    """
    counts, paths, labels = _devtest_images(lfw_root)
    emb = _embed_checked(embed, paths)
    pairs = all_pairs_distances(emb, labels)
    d = np.concatenate([pairs["genuine"], pairs["impostor"]])
    s = np.zeros(d.size, bool)
    s[:pairs["genuine"].size] = True
    metrics = verification_metrics(d, s, fars=fars)
    metrics["n_failed"] = pairs["n_failed_pairs"]  # scored 2.0 already, so not NaN in ``d``
    result = {"protocol": "p2", "name": "LFW DevTest all pairs", "n_images": len(paths),
              "n_failed_images": int((~np.isfinite(emb).all(axis=1)).sum()), "n_failed": metrics["n_failed"],
              "n_genuine": metrics["n_genuine"], "n_impostor": metrics["n_impostor"],
              "tar_at_far": metrics["tar_at_far"], "eer": metrics["eer"], "eer_threshold": metrics["eer_threshold"],
              "roc_auc": metrics["roc_auc"], "metrics": metrics, **_overlap(counts, trained_people)}
    _maybe_plots(result, d, s, plots_dir, "p2_devtest_all_pairs")
    return result


def evaluate_open_set(lfw_root: str | os.PathLike[str], embed: EmbedFn, enroll_counts: Sequence[int] = (1, 3),
                      seed: int = 0, fpirs: Sequence[float] = FPIRS, variants: Sequence[str] = ("nearest", "mean3"),
                      trained_people: set[str] | None = None) -> dict[str, Any]:
    """P3: open-set identification among the DevTest people.

    People with n ≥ 2 images are enrolled with ``min(k, n − 1)`` randomly chosen images for each
    ``k`` in ``enroll_counts`` (the galleries are nested: the same random order per person), their
    other images are known probes; people with one image are never enrolled and probe as unknowns.

    Returns:
        ``enroll``: ``{"1": {...}, "3": {...}}`` with :func:`open_set_identification` figures
        (rank-1, DIR at FPIR per scoring variant), plus ``n_images``, ``n_failed_images``,
        contamination figures.
    """
    counts, paths, labels = _devtest_images(lfw_root)
    emb = _embed_checked(embed, paths)
    rng = np.random.default_rng(seed)
    starts = np.concatenate([[0], np.cumsum(list(counts.values()))[:-1]]).astype(np.int64)
    order = {}
    for p, n in enumerate(counts.values()):
        if n >= 2:
            order[p] = starts[p] + rng.permutation(n)
    unknown_idx = np.asarray([starts[p] for p, n in enumerate(counts.values()) if n == 1], np.int64)
    by_k: dict[str, Any] = {}
    for k in enroll_counts:
        if k < 1:
            raise ValueError(f"enroll counts must be ≥ 1, got {k}")
        g_idx, p_idx = [], []
        for p, perm in order.items():
            m = min(int(k), perm.size - 1)
            g_idx.append(perm[:m])
            p_idx.append(perm[m:])
        g = np.concatenate(g_idx) if g_idx else np.zeros(0, np.int64)
        known = np.concatenate(p_idx) if p_idx else np.zeros(0, np.int64)
        probes = np.concatenate([known, unknown_idx])
        probe_labels = np.concatenate([labels[known], np.full(unknown_idx.size, -1)])
        res = open_set_identification(emb[probes], probe_labels, emb[g], labels[g], fpirs=fpirs, variants=variants)
        res["enroll_per_person"] = int(k)
        by_k[str(k)] = res
    return {"protocol": "p3", "name": "LFW DevTest open-set identification", "n_images": len(paths),
            "n_failed_images": int((~np.isfinite(emb).all(axis=1)).sum()), "seed": seed, "enroll": by_k,
            **_overlap(counts, trained_people)}


def evaluate_view2(lfw_root: str | os.PathLike[str], embed: EmbedFn, trained_people: set[str] | None = None,
                   plots_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """P4, LFW View 2: ``protocol/pairs.txt``, 10 official folds, τ from the other 9 folds.

    Args:
        trained_people: names the model trained on. ``contaminated`` is True when any View-2 person
            is among them, False when none is, None when ``trained_people`` is None (unknown).

    Returns:
        ``accuracy`` (mean over folds), ``stderr``, ``kfold`` details, ``roc_auc``, ``eer``,
        ``metrics``, ``n_failed``, ``contaminated``, ``n_people``, ``n_people_in_training``.
    """
    pairs = lfw.read_pairs(lfw.protocol_file(lfw_root, "pairs.txt"))
    d, s = _embed_pairs(pairs, embed)
    fold_ids = np.fromiter((p.fold for p in pairs), np.int64, len(pairs))
    kf = kfold_accuracy(d, s, folds=fold_ids)
    metrics = verification_metrics(d, s)
    result = {"protocol": "p4", "name": "LFW View 2 (pairs.txt, official 10 folds)", "n_pairs": len(pairs),
              "n_failed": metrics["n_failed"], "accuracy": kf["mean"], "stderr": kf["stderr"],
              "roc_auc": metrics["roc_auc"], "eer": metrics["eer"], "kfold": kf, "metrics": metrics,
              **_overlap({p.name1 for p in pairs} | {p.name2 for p in pairs}, trained_people)}
    _maybe_plots(result, d, s, plots_dir, "p4_view2")
    return result


def protocol_paths(lfw_root: str | os.PathLike[str], protocol: str) -> list[str]:
    """Relative image paths a protocol embeds (sorted, unique)."""
    if protocol in ("p1", "p4"):
        name = "pairsDevTest.txt" if protocol == "p1" else "pairs.txt"
        pairs = lfw.read_pairs(lfw.protocol_file(lfw_root, name))
        return sorted({p.path1 for p in pairs} | {p.path2 for p in pairs})
    if protocol in ("p2", "p3"):
        return sorted(_devtest_images(lfw_root)[1])
    raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def evaluate_all(lfw_root: str | os.PathLike[str], embed: EmbedFn, protocols: Sequence[str] = PROTOCOLS,
                 trained_people: set[str] | None = None, progress: ProgressFn | None = None,
                 threshold: float | None = None, plots_dir: str | os.PathLike[str] | None = None,
                 chunk_size: int = 256, seed: int = 0) -> dict[str, Any]:
    """Run several LFW protocols, embedding each needed image once.

    Args:
        lfw_root: LFW root folder.
        embed: ``paths -> (len(paths), D)`` unit vectors, NaN rows for images without a face; called
            on chunks of ``chunk_size`` paths of the union of the protocols' images.
        protocols: any of ``"p1"``, ``"p2"``, ``"p3"``, ``"p4"``.
        trained_people: names the model trained on (contamination flags), None if unknown.
        progress: ``callback(done, total)`` after each chunk (images).
        threshold: τ to also report P1 accuracy at (e.g. the model's calibrated τ).
        plots_dir: write ROC/histogram PNGs of P1, P2, P4 there (needs matplotlib).
        seed: seed of P1's random folds and P3's enrolment choice.

    Returns:
        JSON-ready ``{"lfw_root", "protocols", "images": {n, n_failed, embedding_dim}, "p1": ..., ...}``.
    """
    wanted = [p.strip().lower() for p in protocols if p.strip()]
    for p in wanted:
        if p not in PROTOCOLS:
            raise ValueError(f"unknown protocol {p!r}; choose from {', '.join(PROTOCOLS)}")
    if not wanted:
        raise ValueError("no protocol selected")
    paths = sorted(set().union(*(protocol_paths(lfw_root, p) for p in wanted)))
    chunks = []
    if progress is not None:
        progress(0, len(paths))
    for start in range(0, len(paths), chunk_size):
        chunks.append(_embed_checked(embed, paths[start:start + chunk_size]))
        if progress is not None:
            progress(min(start + chunk_size, len(paths)), len(paths))
    emb = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    index = {p: i for i, p in enumerate(paths)}

    def cached(batch: list[str]) -> np.ndarray:
        return emb[[index[p] for p in batch]]

    result: dict[str, Any] = {
        "lfw_root": str(lfw_root), "protocols": wanted,
        "images": {"n": len(paths), "n_failed": int((~np.isfinite(emb).all(axis=1)).sum()) if emb.size else 0,
                   "embedding_dim": int(emb.shape[1]) if emb.ndim == 2 else 0},
    }
    for p in wanted:
        if p == "p1":
            result[p] = evaluate_view1(lfw_root, cached, threshold=threshold, seed=seed,
                                       trained_people=trained_people, plots_dir=plots_dir)
        elif p == "p2":
            result[p] = evaluate_devtest_all_pairs(lfw_root, cached, trained_people=trained_people, plots_dir=plots_dir)
        elif p == "p3":
            result[p] = evaluate_open_set(lfw_root, cached, seed=seed, trained_people=trained_people)
        else:
            result[p] = evaluate_view2(lfw_root, cached, trained_people=trained_people, plots_dir=plots_dir)
    return result


# ----------------------------------------------------------------------------------------------
# facever's pipeline on LFW images
# ----------------------------------------------------------------------------------------------


@dataclass
class LFWEmbeddings:
    """Output of :func:`embed_lfw_images`, one row per input path.

    Attributes:
        paths: the relative paths given.
        embeddings: ``(N, D)`` float32 unit vectors; NaN rows where no face was found.
        found: ``(N,)`` bool, a face was detected.
        n_faces: ``(N,)`` number of faces detected.
        landmarks: ``(N, 5, 2)`` float32 pixels of the chosen face; NaN where none.
        errors: ``{path: message}`` for images that could not be decoded (their rows are NaN).
    """

    paths: list[str]
    embeddings: np.ndarray
    found: np.ndarray
    n_faces: np.ndarray
    landmarks: np.ndarray
    errors: dict[str, str]


def _central_face(faces: list, shape: tuple[int, ...]):
    cx, cy = shape[1] / 2.0, shape[0] / 2.0
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)


def embed_lfw_images(verifier: Any, root: str | os.PathLike[str], paths: Sequence[str],
                     progress: ProgressFn | None = None, batch_size: int = 32,
                     crop_cache: Any = None) -> LFWEmbeddings:
    """Detect, align and embed LFW images with facever's pipeline.

    Detection runs in batches (``detector.detect_batch``, ``batch_size`` images); when an image
    holds several faces the one whose box centre is nearest the image centre is used (LFW images are
    centred on their subject); crops are embedded in the embedder's batches.

    Args:
        verifier: a :class:`facever.api.FaceVerifier` (or a :class:`facever.embedding.FaceEmbedder`).
        root: the image root, or an LFW root (see :func:`facever.lfw.image_root`).
        paths: image paths relative to the image root.
        progress: ``callback(done, total)`` after each batch.
        crop_cache: optional :class:`facever.encoder.datasets.CropCache` made by the same detection
            and alignment pipeline (same ``PIPELINE_VERSION``); images whose content hash it holds
            skip detection (entries made from fallback landmarks count as "no face").

    Returns:
        :class:`LFWEmbeddings` (NaN embedding rows for images without a face or undecodable).

    Raises:
        FileNotFoundError: an image file is missing (a broken dataset is not a model failure).
    """
    from facever.embedding import align_faces
    from facever.errors import FaceverError
    from facever.imaging import load_image

    embedder = getattr(verifier, "embedder", verifier)
    base = lfw.image_root(root)
    paths = list(paths)
    n = len(paths)
    dim = int(embedder.bundle.metadata.embedding_dim)
    emb = np.full((n, dim), np.nan, np.float32)
    found = np.zeros(n, bool)
    n_faces = np.zeros(n, np.int64)
    landmarks = np.full((n, 5, 2), np.nan, np.float32)
    errors: dict[str, str] = {}
    for start in range(0, n, batch_size):
        idx, images = [], []
        for i in range(start, min(start + batch_size, n)):
            full = base / paths[i]
            if not full.is_file():
                raise FileNotFoundError(f"LFW image not found: {full}")
            try:
                images.append(load_image(full))
                idx.append(i)
            except FaceverError as exc:
                errors[paths[i]] = str(exc)
        crops, rows = [], []
        if crop_cache is not None:
            idx, images = _take_cached(crop_cache, base, paths, idx, images, crops, rows, found, landmarks)
        for i, image, faces in zip(idx, images, embedder.detector.detect_batch(images) if images else []):
            n_faces[i] = len(faces)
            if not faces:
                continue
            face = _central_face(faces, image.shape)
            crops.append(align_faces(image, [face], embedder.input_size, embedder.template_name)[0].crop)
            rows.append(i)
            found[i] = True
            landmarks[i] = face.landmarks
        if crops:
            emb[rows] = embedder.embed_crops(np.stack(crops))
        if progress is not None:
            progress(min(start + batch_size, n), n)
    return LFWEmbeddings(paths, emb, found, n_faces, landmarks, errors)


def _take_cached(cache: Any, base: Path, paths: Sequence[str], idx: list[int], images: list[np.ndarray],
                 crops: list[np.ndarray], rows: list[int], found: np.ndarray, landmarks: np.ndarray):
    """Move images that the crop cache holds from (idx, images) to (crops, rows); return the rest."""
    from facever.encoder.datasets import file_sha256

    rest_idx, rest_images = [], []
    for i, image in zip(idx, images):
        hit = cache.get(file_sha256(base / paths[i]))
        if hit is None:
            rest_idx.append(i)
            rest_images.append(image)
        elif hit[1]:  # detected (not a fallback crop)
            crops.append(hit[0])
            rows.append(i)
            found[i] = True
            landmarks[i] = cache.landmarks(file_sha256(base / paths[i]))
    return rest_idx, rest_images


def detection_figures(result: LFWEmbeddings, annotations: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Share of images with a face found and, against ``annotations`` (e.g.
    :func:`facever.lfw.read_landmarks`), the :func:`landmark_error` of the chosen faces."""
    n = len(result.paths)
    figures: dict[str, Any] = {"n_images": n, "n_found": int(result.found.sum()),
                               "found_rate": float(result.found.mean()) if n else None,
                               "n_multiple_faces": int((result.n_faces > 1).sum()), "n_errors": len(result.errors)}
    if annotations:
        keep = [i for i, p in enumerate(result.paths) if result.found[i] and p in annotations]
        truth = np.stack([annotations[result.paths[i]] for i in keep]) if keep else np.zeros((0, 5, 2))
        pred = result.landmarks[keep] if keep else np.zeros((0, 5, 2))
        figures["landmark_error"] = landmark_error(pred, truth)
    return figures


# ----------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------


def save_plots(distances: np.ndarray, same: np.ndarray, out_dir: str | os.PathLike[str], label: str) -> list[str]:
    """Write a ROC curve (TAR vs FAR, log FAR axis) and a genuine/impostor distance histogram.

    Args:
        distances, same: labelled pairs (NaN distances count as 2.0).
        out_dir: folder (created) for ``{label}_roc.png`` and ``{label}_hist.png``.
        label: title and file name stem.

    Returns:
        The paths written.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'facever[plots]'``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'facever[plots]'") from exc
    d, s, _ = _prepare(distances, same)
    _require_both(s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "plot"
    fpr, tpr, _ = roc_curve(s, -d)
    floor = 1.0 / max(int((~s).sum()), 1)
    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(np.maximum(fpr, floor), tpr, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title(f"{label}: ROC (AUC {_auc(fpr, tpr):.4f})")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    roc_path = out / f"{stem}_roc.png"
    fig.savefig(roc_path)
    fig = Figure(figsize=(5, 4), dpi=100)
    ax = fig.add_subplot()
    bins = np.linspace(0.0, MAX_DISTANCE, 101)
    ax.hist(d[s], bins=bins, density=True, alpha=0.6, label=f"genuine ({int(s.sum())})")
    ax.hist(d[~s], bins=bins, density=True, alpha=0.6, label=f"impostor ({int((~s).sum())})")
    ax.set_xlabel("distance")
    ax.set_ylabel("density")
    ax.set_title(f"{label}: distances")
    ax.legend()
    fig.tight_layout()
    hist_path = out / f"{stem}_hist.png"
    fig.savefig(hist_path)
    return [str(roc_path), str(hist_path)]
