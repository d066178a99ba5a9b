"""The LFW protocols P1–P4 and facever's own pipeline on LFW images (detection figures included).

Conventions: see :mod:`facever.training.evaluation`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from facever.training import lfw
from facever.training.metrics import (EmbedFn, FARS, FPIRS, MAX_DISTANCE, PROTOCOLS, ProgressFn, accuracy_at_threshold, all_pairs_distances, kfold_accuracy, landmark_error, open_set_identification, pair_distances, verification_metrics)
from facever.training.plots import save_plots
from facever.matching import rates_at

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


def evaluate_identity_pairs(embeddings: np.ndarray, labels: np.ndarray, fars: Sequence[float] = FARS,
                            folds: int = 10, seed: int = 0, threshold: float | None = None) -> dict[str, Any]:
    """Every genuine and impostor pair among a labelled set of images (e.g. a folder per person).

    Args:
        embeddings: ``(N, D)`` unit vectors, NaN rows for images without a face (failed pairs).
        labels: ``(N,)`` identities.
    Returns:
        ``n_people``, ``n_images``, ``failed_images``, pair counts, ``roc_auc``, ``eer``,
        ``tar_at_far`` (see :func:`verification_metrics`) and ``pair_accuracy``: the 10-fold
        cross-validated accuracy on a balanced set (every genuine pair and as many random impostor
        pairs, ``seed``), with its ``pair_accuracy_stderr``; with ``threshold``, ``at_threshold``:
        its ``far`` and ``frr`` over all the pairs.
    """
    emb = np.asarray(embeddings, np.float32)
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    res = all_pairs_distances(emb, codes)
    gen, imp = res["genuine"], res["impostor"]
    if len(gen) == 0 or len(imp) == 0:
        raise ValueError("need at least one genuine and one impostor pair (two people, one with two images)")
    d = np.concatenate([gen, imp])
    same = np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
    m = verification_metrics(d, same, fars=fars)
    pick = np.random.default_rng(seed).choice(len(imp), size=min(len(gen), len(imp)), replace=False)
    balanced = kfold_accuracy(np.r_[gen, imp[pick]], np.r_[np.ones(len(gen), bool), np.zeros(len(pick), bool)],
                              folds=min(folds, len(gen)), seed=seed)
    result = {"n_people": int(codes.max()) + 1, "n_images": len(emb), "failed_images": int((~np.isfinite(emb).all(1)).sum()),
              "n_genuine": len(gen), "n_impostor": len(imp), "roc_auc": m["roc_auc"], "eer": m["eer"],
              "tar_at_far": m["tar_at_far"], "pair_accuracy": balanced["mean"], "pair_accuracy_stderr": balanced["stderr"]}
    if threshold is not None:
        far, frr = rates_at(threshold, d, same)
        result["at_threshold"] = {"threshold": float(threshold), "far": far, "frr": frr}
    return result


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


def embed_lfw_images(verifier: Any, root: str | os.PathLike[str], paths: Sequence[str],
                     progress: ProgressFn | None = None, batch_size: int = 32,
                     crop_cache: Any = None) -> LFWEmbeddings:
    """Detect, align and embed LFW images with facever's pipeline.

    Detection runs in batches (``detector.detect_batch``, ``batch_size`` images); when an image
    holds several faces the one whose box centre is nearest the image centre is used (LFW images are
    centred on their subject); crops are embedded in the embedder's batches.

    Args:
        verifier: a :class:`facever.api.FaceVerifier` (or a :class:`facever.embedding.FaceEmbedder`).
        root: the image root, or an LFW root (see :func:`facever.training.lfw.image_root`).
        paths: image paths relative to the image root.
        progress: ``callback(done, total)`` after each batch.
        crop_cache: optional :class:`facever.training.datasets.CropCache` made by the same detection
            and alignment pipeline (same ``PIPELINE_VERSION``); images whose content hash it holds
            skip detection (entries made from fallback landmarks count as "no face"). Cached crops
            of another geometry than the model's are re-warped to it
            (:func:`facever.alignment.convert_crop`), so every crop embedded together has one size.

    Returns:
        :class:`LFWEmbeddings` (NaN embedding rows for images without a face or undecodable).

    Raises:
        FileNotFoundError: an image file is missing (a broken dataset is not a model failure).
    """
    from facever.detection import central_face
    from facever.embedding import align_faces, detect_padded
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
            idx, images = _take_cached(crop_cache, base, paths, idx, images, crops, rows, found, landmarks,
                                       embedder.input_size, embedder.template_name)
        for i, image, faces in zip(idx, images, embedder.detector.detect_batch(images) if images else []):
            if not faces:  # the inference pipeline's second pass, on a padded copy (tight crops)
                faces = detect_padded(embedder.detector, image)
            n_faces[i] = len(faces)
            if not faces:
                continue
            face = central_face(faces, image.shape)
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
                 crops: list[np.ndarray], rows: list[int], found: np.ndarray, landmarks: np.ndarray,
                 size: int, template_name: str):
    """Move images that the crop cache holds from (idx, images) to (crops, rows); return the rest.

    Cached crops are brought to the model's geometry (``template_name`` at ``size`` px) first: a
    cache of another geometry (e.g. 112 px ArcFace crops for a 150 px dlib model) must not end up
    beside freshly aligned crops in one batch of another size.
    """
    from facever.alignment import convert_crop
    from facever.training.datasets import file_sha256

    rest_idx, rest_images = [], []
    for i, image in zip(idx, images):
        key = file_sha256(base / paths[i])
        hit = cache.get(key)
        if hit is None:
            rest_idx.append(i)
            rest_images.append(image)
        elif hit[1]:  # detected (not a fallback crop)
            crops.append(convert_crop(hit[0], cache.template, size, template_name))
            rows.append(i)
            found[i] = True
            landmarks[i] = cache.landmarks(key)
    return rest_idx, rest_images


def detection_figures(result: LFWEmbeddings, annotations: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Share of images with a face found and, against ``annotations`` (e.g.
    :func:`facever.training.lfw.read_landmarks`), the :func:`landmark_error` of the chosen faces."""
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




def merge_lfw_embeddings(parts: Sequence[LFWEmbeddings]) -> LFWEmbeddings:
    """One :class:`LFWEmbeddings` from several (e.g. the chunks :func:`evaluate_all` embedded), rows in order."""
    if not parts:
        return LFWEmbeddings([], np.zeros((0, 0), np.float32), np.zeros(0, bool), np.zeros(0, np.int64),
                             np.zeros((0, 5, 2), np.float32), {})
    return LFWEmbeddings(
        paths=[p for d in parts for p in d.paths],
        embeddings=np.concatenate([d.embeddings for d in parts]),
        found=np.concatenate([d.found for d in parts]),
        n_faces=np.concatenate([d.n_faces for d in parts]),
        landmarks=np.concatenate([d.landmarks for d in parts]),
        errors={k: v for d in parts for k, v in d.errors.items()},
    )


def evaluate_detection(result: LFWEmbeddings, annotations_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """:func:`detection_figures` with the landmarks of ``annotations_file`` (LFW's
    ``annotations/lfw_landmark_5pt_original250.txt``) when that file exists."""
    path = Path(annotations_file) if annotations_file is not None else None
    annotations = lfw.read_landmarks(path) if path is not None and path.is_file() else None
    return detection_figures(result, annotations)
