"""Calibration of a model bundle: τ on labelled pairs, the open-set identification threshold.

The one place τ is chosen (``facever train``, ``facever train --init``, ``facever calibrate`` and
the default model's build all call :func:`set_threshold`): :class:`facever.matching.ThresholdCalibrator`
(the largest τ whose FAR ≤ the target, or the τ of best accuracy) and a logistic "same person" head
on the same pairs, written into the bundle's metadata. Distances are Euclidean between unit
embeddings, in [0, 2]; a pair is "same" when its distance ≤ τ.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal, Sequence

import numpy as np

from facever.bundle import BundleMetadata, Threshold
from facever.matching import ThresholdCalibrator, VerificationHead
from facever.training.metrics import open_set_identification


def calibration_pairs(labels: np.ndarray, max_genuine: int = 5000, n_impostor: int = 20000,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` and ``same`` flags: all genuine pairs (capped) and random impostor pairs
    (all of them when the set has fewer than ``2 · n_impostor``, at most ``n_impostor``)."""
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(int(lab), []).append(i)
    genuine = [p for idx in by_label.values() for p in itertools.combinations(idx, 2)]
    if len(genuine) > max_genuine:
        genuine = [genuine[i] for i in rng.choice(len(genuine), max_genuine, replace=False)]
    n = len(labels)
    counts = np.bincount(np.unique(labels, return_inverse=True)[1])
    possible = n * (n - 1) // 2 - int((counts * (counts - 1) // 2).sum())
    impostor: set[tuple[int, int]] = set()
    if possible <= 2 * n_impostor:  # small set: take every impostor pair (random draws would stall)
        impostor = {(i, j) for i in range(n) for j in range(i + 1, n) if labels[i] != labels[j]}
        if len(impostor) > n_impostor:
            impostor = set(map(tuple, rng.permutation(sorted(impostor))[:n_impostor].tolist()))
    while len(impostor) < min(n_impostor, possible):
        i, j = rng.integers(0, n, 2)
        if labels[i] != labels[j]:
            impostor.add((min(i, j), max(i, j)))
    pairs = np.array(genuine + sorted(impostor), np.int64)
    same = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    return pairs[:, 0], pairs[:, 1], same


def set_threshold(metadata: BundleMetadata, emb_a: np.ndarray, emb_b: np.ndarray, same: np.ndarray,
                  target: Literal["far", "accuracy"] = "far", target_far: float = 1e-3,
                  description: str = "") -> ThresholdCalibrator:
    """Choose τ on pairs of embeddings and write it, with its FAR/FRR and the logistic head, into ``metadata``.

    Args:
        metadata: the bundle's metadata (``threshold`` and ``verification_head`` replaced in place).
        emb_a, emb_b: ``(M, D)`` unit embeddings of the two sides of each pair.
        same: ``(M,)`` bool, True for genuine pairs (both kinds needed).
        target: ``"far"``: the largest τ whose FAR ≤ ``target_far``; ``"accuracy"``: best accuracy.
        description: who the pairs are (stored as ``threshold.calibration_set``).

    Returns:
        The fitted :class:`~facever.matching.ThresholdCalibrator` (``threshold_``, ``far_``, ``frr_``, ``accuracy_``).
    """
    same = np.asarray(same).astype(bool)
    d = np.linalg.norm(np.asarray(emb_a) - np.asarray(emb_b), axis=1)
    cal = ThresholdCalibrator(target, target_far).fit(d, same)
    metadata.threshold = Threshold(value=float(cal.threshold_), far=float(cal.far_), frr=float(cal.frr_),
                                   target=f"far={target_far:g}" if target == "far" else "best_accuracy",
                                   calibration_set=description, n_genuine=int(same.sum()),
                                   n_impostor=int((~same).sum()))
    metadata.verification_head = VerificationHead().fit(emb_a, emb_b, same).to_json()
    return cal


def calibrate_bundle(bundle, emb: np.ndarray, labels: np.ndarray, description: str,
                     target_far: float = 1e-3, seed: int = 0, target_fpir: float = 0.01) -> dict:
    """Set τ (for ``target_far``), its FAR/FRR and the logistic head from calibration embeddings, and
    measure the identification threshold for ``target_fpir`` (the false positive identification rate)
    as a calibration figure (identification itself uses the open-set data, else τ).

    Args:
        bundle: a :class:`~facever.training.bundle.TrainableBundle` (metadata updated in place).
        emb: ``(N, D)`` unit embeddings of the calibration images; labels ``(N,)`` identities.
    Returns the calibration figures (also stored under ``metadata.figures["calibration"]``).
    """
    i, j, same = calibration_pairs(labels, seed=seed)
    far_cal = set_threshold(bundle.metadata, emb[i], emb[j], same, "far", target_far, description)
    d = np.linalg.norm(emb[i] - emb[j], axis=1)
    acc_cal = ThresholdCalibrator("accuracy").fit(d, same)
    meta = bundle.metadata
    figures = {"tau_far": far_cal.threshold_, "far": far_cal.far_, "frr": far_cal.frr_,
               "tau_best_accuracy": acc_cal.threshold_, "best_accuracy": acc_cal.accuracy_,
               "far_at_best_accuracy": acc_cal.far_, "frr_at_best_accuracy": acc_cal.frr_,
               "n_genuine": int(same.sum()), "n_impostor": int((~same).sum()), "set": description}
    try:
        ident = calibrate_identify_threshold(emb, labels, target_fpir=target_fpir, description=description, seed=seed)
    except ValueError as exc:  # too few held-out people to resolve the FPIR
        figures["identify_threshold"] = None
        figures["identify_note"] = str(exc)
    else:
        figures.update({"identify_threshold": ident.value, "identify_fpir": ident.far, "identify_fnir": ident.frr,
                        "identify_n_known_probes": ident.n_genuine, "identify_n_unknown_probes": ident.n_impostor})
    meta.figures["calibration"] = figures
    return figures


def calibrate_identify_threshold(emb: np.ndarray, labels: np.ndarray, target_fpir: float = 0.01,
                                 description: str = "", seed: int = 0) -> Threshold:
    """The open-set identification threshold for a target false positive identification rate.

    The P3 design on calibration people: one random image of every person with ≥ 2 images is
    enrolled, their other images are known probes, one-image people are unknown probes (when there
    are too few of them to resolve the FPIR, 30 % of the other people are never enrolled and all
    their images probe as unknowns); scored by
    :func:`facever.training.metrics.open_set_identification` with the gallery's default ``nearest``
    scoring.

    Returns a :class:`~facever.bundle.Threshold` whose ``far`` is the FPIR and ``frr`` the
    FNIR (1 − DIR: known probes not identified as the right person) at that threshold.

    Raises:
        ValueError: too few unknown probes to resolve ``target_fpir``, or no known probes.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    multi = np.flatnonzero(counts >= 2)
    unknown = set(np.flatnonzero(counts == 1).tolist())
    if counts[list(unknown)].sum() < 1 / target_fpir:
        # too few one-image people to act as strangers: hold out 30 % of the others entirely
        unknown |= set(rng.choice(multi, int(0.3 * len(multi)), replace=False).tolist())
        multi = np.array([lab for lab in multi if lab not in unknown], np.int64)
    enrolled = [rng.choice(np.flatnonzero(labels == lab)) for lab in multi]
    probes = np.setdiff1d(np.arange(len(labels)), enrolled)
    probe_labels = np.where(np.isin(labels[probes], list(unknown)), -1, labels[probes])
    res = open_set_identification(emb[probes], probe_labels, emb[enrolled], labels[enrolled],
                                  fpirs=[target_fpir], variants=["nearest"])
    item = next(iter(res["nearest"]["dir_at_fpir"].values()))
    if not item["resolvable"] or item["dir"] is None:
        raise ValueError(f"open-set calibration cannot resolve FPIR {target_fpir:g} with "
                         f"{res['n_unknown_probes']} unknown and {res['n_known_probes']} known probes")
    return Threshold(value=item["threshold"], far=item["fpir"], frr=1.0 - item["dir"], target=f"fpir={target_fpir:g}",
                     calibration_set=description, n_genuine=res["n_known_probes"], n_impostor=res["n_unknown_probes"])


def calibrate_on_pairs(metadata: BundleMetadata, paths: Sequence[str], embeddings: np.ndarray, pairs: Sequence[Any],
                       target: Literal["far", "accuracy"] = "far", target_far: float = 1e-3,
                       set_name: str = "pairs") -> dict[str, Any]:
    """τ on a pairs file's images (``facever calibrate``): pairs with an image without a face are left out.

    Args:
        metadata: the bundle's metadata (τ, the head and ``figures["calibration"]`` replaced in place).
        paths: ``(N,)`` image paths; ``embeddings`` their ``(N, D)`` unit vectors, NaN rows where no face was found.
        pairs: objects with ``path1``, ``path2`` (in ``paths``) and ``same`` (e.g. :class:`facever.training.lfw.Pair`).
        target, target_far: see :func:`set_threshold`.
        set_name: names the pairs in the stored description, e.g. the file and image folder.

    Returns:
        JSON-ready figures: ``threshold``, ``far``, ``frr``, ``accuracy``, ``target``, ``pairs`` counts,
        ``images_total``, ``failures``, ``failed_images``, ``previous_threshold``, ``warnings``.

    Raises:
        ValueError: no usable genuine or impostor pair.
    """
    index = {p: i for i, p in enumerate(paths)}
    emb = np.asarray(embeddings)
    ok_image = np.isfinite(emb).all(axis=1)
    i = np.array([index[p.path1] for p in pairs], np.int64)
    j = np.array([index[p.path2] for p in pairs], np.int64)
    usable = ok_image[i] & ok_image[j]
    i, j = i[usable], j[usable]
    same = np.array([p.same for p in pairs], bool)[usable]
    n_gen, n_imp, n_pairs, n_used = int(same.sum()), int((~same).sum()), len(pairs), int(usable.sum())
    failed_images = [p for p, ok in zip(paths, ok_image) if not ok]
    if n_gen == 0 or n_imp == 0:
        raise ValueError(f"calibration needs genuine and impostor pairs with faces found; usable: {n_gen} genuine, "
                         f"{n_imp} impostor ({len(failed_images)} of {len(paths)} images without a face)")
    description = (f"{set_name}: {n_used} of {n_pairs} pairs ({n_gen} genuine, {n_imp} impostor); "
                   f"{len(failed_images)} of {len(paths)} images without a face, {n_pairs - n_used} pairs left out")
    previous = None if metadata.threshold is None else {
        "value": metadata.threshold.value, "far": metadata.threshold.far, "frr": metadata.threshold.frr,
        "target": metadata.threshold.target}
    cal = set_threshold(metadata, emb[i], emb[j], same, target, target_far, description)
    target_text = metadata.threshold.target
    metadata.figures["calibration"] = {
        "tau": float(cal.threshold_), "far": float(cal.far_), "frr": float(cal.frr_), "accuracy": float(cal.accuracy_),
        "target": target_text, "n_genuine": n_gen, "n_impostor": n_imp, "set": description, "by": "facever calibrate"}
    warnings = []
    if target == "far" and target_far * n_imp < 1:
        warnings.append(f"only {n_imp} impostor pairs: a FAR of {target_far:g} cannot be measured "
                        f"(needs at least {int(np.ceil(1 / target_far))}); τ is simply below every impostor distance")
    if failed_images:
        warnings.append(f"{len(failed_images)} images without a face: their {n_pairs - n_used} pairs were left out")
    return {"target": target_text, "threshold": float(cal.threshold_), "far": float(cal.far_), "frr": float(cal.frr_),
            "accuracy": float(cal.accuracy_),
            "pairs": {"total": n_pairs, "used": n_used, "genuine": n_gen, "impostor": n_imp, "left_out": n_pairs - n_used},
            "images_total": len(paths), "failures": len(failed_images), "failed_images": failed_images,
            "previous_threshold": previous, "verification_head": True, "warnings": warnings}
