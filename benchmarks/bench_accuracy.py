"""Accuracy on LFW, the same protocols and images for both systems: P1 (View 1, 10-fold τ), P2
(DevTest all pairs), P3 (DevTest open-set identification, 1 and 3 images enrolled) and the share of
images where each system finds a face. Also the scoring shared with the held-out section
(:func:`score`, :func:`euclidean_all_pairs`).

Metrics are :mod:`facever.training.evaluation`'s. An image where a system finds no face fails every pair it is
in, for that system only, at distance 2.0 (facever's maximum; the peer's real distances stay below
it, checked as ``max_finite_distance``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench_common import PEER_TOLERANCE, log
from bench_embed import embed_facever_lfw, embed_peer


def p1_pairs(lfw_root: Path, limit: int | None):
    """View 1 test pairs; with ``limit`` N, the first ⌈N/2⌉ genuine and first ⌊N/2⌋ impostor pairs."""
    from facever.training import lfw

    pairs = lfw.read_pairs(lfw.protocol_file(lfw_root, "pairsDevTest.txt"))
    if limit is None:
        return pairs
    return [p for p in pairs if p.same][:(limit + 1) // 2] + [p for p in pairs if not p.same][:limit // 2]


def p2_images(lfw_root: Path, limit: int | None) -> tuple[list[str], np.ndarray]:
    """DevTest image paths (people order) and integer person labels; with ``limit`` N, the first 2N images."""
    from facever.training import lfw

    counts = lfw.read_people(lfw.protocol_file(lfw_root, "peopleDevTest.txt"))
    paths = lfw.people_images(None, counts)
    labels = np.repeat(np.arange(len(counts)), list(counts.values()))
    if limit is not None:
        paths, labels = paths[:2 * limit], labels[:2 * limit]
    return paths, labels


# ----------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------


def euclidean_all_pairs(embeddings: np.ndarray, labels: np.ndarray, block: int = 512) -> dict[str, Any]:
    """Every pair ``i < j``'s Euclidean distance, split genuine/impostor, for vectors of ANY norm.

    The output matches :func:`facever.training.evaluation.all_pairs_distances` (same order, failed images'
    pairs at ``MAX_DISTANCE``), which assumes unit vectors; dlib's encodings are not unit vectors
    (norms ≈ 1.3), so the peer's distances come from ``|a|² + |b|² − 2 a·b`` here. Also returns the
    largest real (non-failed) distance.
    """
    from facever.training.evaluation import MAX_DISTANCE

    e = np.asarray(embeddings, np.float64)
    y = np.asarray(labels).ravel()
    n = e.shape[0]
    failed = ~np.isfinite(e).all(axis=1)
    e = np.where(failed[:, None], 0.0, e)
    sq = (e * e).sum(axis=1)
    _, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    n_gen = int((counts * (counts - 1) // 2).sum())
    genuine = np.empty(n_gen, np.float32)
    impostor = np.empty(n * (n - 1) // 2 - n_gen, np.float32)
    g = m = 0
    max_real = None
    for start in range(0, n, block):
        stop = min(start + block, n)
        d2 = sq[start:stop, None] + sq[None, start:] - 2.0 * (e[start:stop] @ e[start:].T)
        dist = np.sqrt(np.maximum(d2, 0.0)).astype(np.float32)
        dist[failed[start:stop], :] = MAX_DISTANCE
        dist[:, failed[start:]] = MAX_DISTANCE
        rows, cols = np.triu_indices(stop - start, k=1, m=n - start)
        d_up = dist[rows, cols]
        real = ~(failed[start + rows] | failed[start + cols])
        if real.any():
            max_real = max(max_real or 0.0, float(d_up[real].max()))
        same = codes[start + rows] == codes[start + cols]
        ng, ni = int(same.sum()), int((~same).sum())
        genuine[g:g + ng], impostor[m:m + ni] = d_up[same], d_up[~same]
        g, m = g + ng, m + ni
    ok = int(n - failed.sum())
    return {"genuine": genuine, "impostor": impostor, "n_failed_pairs": int(n * (n - 1) // 2 - ok * (ok - 1) // 2),
            "max_real_distance": max_real}


def system_all_pairs(system: str, embeddings: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """All-pairs distances: facever's own function for its unit vectors, :func:`euclidean_all_pairs` for the peer."""
    from facever.training.evaluation import all_pairs_distances

    if system == "facever":
        return all_pairs_distances(embeddings, labels)
    return euclidean_all_pairs(embeddings, labels)


def roc_points(distances: np.ndarray, same: np.ndarray, n_points: int = 400) -> dict[str, list[float]]:
    """A compact ROC for plotting: TAR at log-spaced FARs (largest τ whose FAR ≤ each FAR; NaN → 2.0)."""
    from sklearn.metrics import roc_curve

    from facever.training.evaluation import MAX_DISTANCE

    d = np.where(np.isfinite(distances), distances, MAX_DISTANCE)
    fpr, tpr, _ = roc_curve(np.asarray(same, bool), -d)
    n_imp = int((~np.asarray(same, bool)).sum())
    grid = np.unique(np.concatenate([np.logspace(np.log10(1.0 / max(n_imp, 1)), 0.0, n_points), [1.0]]))
    idx = np.searchsorted(fpr, grid * (1 + 1e-12), side="right") - 1
    return {"far": [float(x) for x in grid], "tar": [float(tpr[max(i, 0)]) for i in idx]}


def score(distances: np.ndarray, same: np.ndarray, default_tau: float | None, kfold: bool, seed: int,
          n_failed_override: int | None = None) -> dict[str, Any]:
    """All figures of one system on one set of labelled pairs (facever.training.evaluation metrics).

    ``distances``: NaN for failed pairs (scored 2.0 by the metrics), or already 2.0 with
    ``n_failed_override`` giving their number.
    """
    from facever.training.evaluation import MAX_DISTANCE, accuracy_at_threshold, kfold_accuracy, verification_metrics
    from facever.matching import rates_at

    m = verification_metrics(distances, same)
    finite = distances[np.isfinite(distances)] if n_failed_override is None else np.zeros(0)
    out: dict[str, Any] = {
        "n_pairs": m["n_pairs"], "n_genuine": m["n_genuine"], "n_impostor": m["n_impostor"],
        "n_failed_pairs": m["n_failed"] if n_failed_override is None else n_failed_override,
        "roc_auc": m["roc_auc"], "eer": m["eer"], "eer_threshold": m["eer_threshold"], "tar_at_far": m["tar_at_far"],
        "best_accuracy": m["best_accuracy"], "best_accuracy_threshold": m["best_accuracy_threshold"],
        "max_finite_distance": float(finite.max()) if finite.size else None,
    }
    if kfold:
        kf = kfold_accuracy(distances, same, folds=10, seed=seed)
        out["kfold"] = {k: kf[k] for k in ("mean", "std", "stderr", "n_folds", "accuracies", "thresholds")}
    if default_tau is not None:
        far, frr = rates_at(default_tau, np.where(np.isfinite(distances), distances, MAX_DISTANCE), same)
        out["default_threshold"] = {"value": float(default_tau), "far": far, "frr": frr, "tar": 1.0 - frr,
                                    "accuracy": accuracy_at_threshold(distances, same, default_tau)}
    else:
        out["default_threshold"] = None
    out["roc"] = roc_points(distances, same)
    return out


def score_all_pairs(system: str, embeddings: np.ndarray, labels: np.ndarray, tau: float | None,
                    seed: int) -> dict[str, Any]:
    """:func:`score` of every genuine and impostor pair among ``embeddings`` (failed images at 2.0)."""
    pairs = system_all_pairs(system, embeddings, labels)
    d = np.concatenate([pairs["genuine"], pairs["impostor"]]).astype(np.float64)
    s = np.zeros(d.size, bool)
    s[:pairs["genuine"].size] = True
    out = score(d, s, tau, kfold=False, seed=seed, n_failed_override=pairs["n_failed_pairs"])
    # facever: unit vectors, real distances ≤ 2 by construction; the peer: its largest real distance
    out["max_finite_distance"] = pairs.get("max_real_distance")
    out["n_images_no_face"] = int((~np.isfinite(embeddings).all(axis=1)).sum())
    out["_pairs"] = pairs  # popped by callers that need the raw distances
    if (out["max_finite_distance"] or 0.0) >= 2.0:
        log(f"WARNING: {system} has real distances >= 2.0, the failure distance: failures are not ranked last")
    return out


# ----------------------------------------------------------------------------------------------
# The LFW section
# ----------------------------------------------------------------------------------------------


def _p3(lfw_root: Path, paths: list[str], embeddings: np.ndarray, unit: bool, seed: int) -> dict[str, Any]:
    """P3 (:func:`facever.training.evaluation.evaluate_open_set`, 1 and 3 images enrolled) on these embeddings;
    DevTest images not embedded (a ``--limit`` run) count as failed. ``unit``: L2-normalise first
    (the peer's dlib encodings; P3's person distances assume unit vectors)."""
    from facever.training.evaluation import evaluate_open_set

    e = np.asarray(embeddings, np.float32)
    if unit:
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
    index = {p: i for i, p in enumerate(paths)}
    dim = e.shape[1]

    def lookup(batch: list[str]) -> np.ndarray:
        return np.stack([e[index[p]] if p in index else np.full(dim, np.nan, np.float32) for p in batch])

    return evaluate_open_set(lfw_root, lookup, enroll_counts=(1, 3), seed=seed)


def accuracy_section(args, verifier, default_tau: float | None, cache: Path | None) -> dict[str, Any]:
    """Embed the protocol images with both systems; score P1, P2 and P3; count faces found."""
    from facever.training import lfw
    from facever.training.evaluation import pair_distances

    image_root = lfw.image_root(args.lfw)
    pairs = p1_pairs(args.lfw, args.limit)
    p1_paths = sorted({p.path1 for p in pairs} | {p.path2 for p in pairs})
    p2_paths, p2_labels = ([], np.zeros(0, np.int64)) if args.skip_p2 else p2_images(args.lfw, args.limit)
    paths = sorted(set(p1_paths) | set(p2_paths))
    index = {p: i for i, p in enumerate(paths)}
    log(f"accuracy: {len(pairs)} P1 pairs, {len(p2_paths)} P2 images, {len(paths)} distinct images")

    emb = {"facever": embed_facever_lfw(verifier, image_root, paths, cache, args.batch_size),
           "face_recognition": embed_peer(args.peer_python, image_root, paths, cache, args.peer_pick)}
    taus = {"facever": default_tau, "face_recognition": PEER_TOLERANCE}
    section: dict[str, Any] = {"n_images": len(paths), "images": {}, "p1": {}, "p2": None, "p3": None}
    for name, e in emb.items():
        found = np.isfinite(e["embeddings"]).all(axis=1)
        section["images"][name] = {
            "n": len(paths), "n_found": int(found.sum()), "found_rate": float(found.mean()) if len(paths) else None,
            "n_no_face": int((~found).sum() - len(e["errors"])), "n_errors": len(e["errors"]),
            "n_multiple_faces": int((np.asarray(e["n_faces"]) > 1).sum()), "embed_wall_s": e["wall_s"],
            "images_per_s": len(paths) / e["wall_s"] if e["wall_s"] > 0 else None, "cached": e["cached"],
            "no_face": [p for p, ok in zip(paths, found) if not ok][:200],
        }
        if "maxrss_mb" in e:
            section["images"][name]["process_maxrss_mb"] = e["maxrss_mb"]

    i1 = np.asarray([index[p.path1] for p in pairs])
    i2 = np.asarray([index[p.path2] for p in pairs])
    same = np.asarray([p.same for p in pairs])
    section["p1"] = {"name": "LFW View 1 (pairsDevTest.txt), 10-fold CV threshold", "n_pairs": len(pairs),
                     "n_images": len(p1_paths)}
    p1_rows = [index[p] for p in p1_paths]
    for name, e in emb.items():
        d = pair_distances(e["embeddings"][i1], e["embeddings"][i2]).astype(np.float64)  # any norm; NaN: failed
        section["p1"][name] = score(d, same, taus[name], kfold=True, seed=args.seed)
        section["p1"][name]["n_images_no_face"] = int((~np.isfinite(e["embeddings"][p1_rows]).all(axis=1)).sum())
        r = section["p1"][name]
        if (r.get("max_finite_distance") or 0.0) >= 2.0:
            log(f"WARNING: {name} has real P1 distances >= 2.0, the failure distance: failures are not ranked last")
        log(f"P1 {name}: 10-fold accuracy {r['kfold']['mean']:.4f}, AUC {r['roc_auc']:.4f}, "
            f"{r['n_failed_pairs']} failed pairs")
    if p2_paths:
        rows = np.asarray([index[p] for p in p2_paths])
        section["p2"] = {"name": "LFW DevTest, all genuine and impostor pairs", "n_images": len(p2_paths)}
        for name, e in emb.items():
            try:
                r = score_all_pairs(name, e["embeddings"][rows], p2_labels, taus[name], args.seed)
            except ValueError as exc:  # e.g. a tiny --limit subset without genuine pairs
                section["p2"][name] = {"error": str(exc)}
                continue
            r.pop("_pairs")
            section["p2"][name] = r
            log(f"P2 {name}: EER {r['eer']:.4f}, TAR@FAR=1e-3 {(r['tar_at_far'].get('0.001') or {}).get('tar')}")
        section["p3"] = {"name": "LFW DevTest open-set identification (1 or 3 images enrolled per person)",
                         "complete": args.limit is None}
        for name, e in emb.items():
            section["p3"][name] = _p3(args.lfw, paths, e["embeddings"], unit=name != "facever", seed=args.seed)
            r3 = section["p3"][name]["enroll"]["3"]["nearest"]["rank1"]
            log(f"P3 {name}: rank-1 with 3 enrolled {r3}")
    return section
