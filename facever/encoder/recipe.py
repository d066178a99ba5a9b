"""The end-to-end training recipe used by ``facever train``: data → crops → split → fit → bundle.

1. Identity datasets: LFW without ``peopleDevTest`` (so P1–P3 stay clean) and/or identity folders.
2. Canonical crops from the on-disk :class:`~facever.encoder.datasets.CropCache` (detection runs
   once per image and pipeline version).
3. A calibration split *by identity*: people in neither training nor DevTest, whose pairs choose τ
   (and give per-epoch validation figures).
4. :class:`~facever.encoder.training.Trainer`, optionally with precomputed teacher embeddings.
5. A bundle with τ, its FAR/FRR on the calibration pairs, a logistic "same person" head, the
   training configuration and the data it saw.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from facever.encoder.datasets import (
    CropCache,
    IdentityDataset,
    aligned_crops,
    concat,
    from_folders,
    from_lfw,
    lfw_annotations,
)
from facever.encoder.training import Trainer, TrainConfig


@dataclass
class PreparedData:
    """Training and calibration sets with their crops (112×112 uint8) and teacher targets."""

    train: IdentityDataset
    train_crops: np.ndarray
    calib: IdentityDataset
    calib_crops: np.ndarray
    teacher: np.ndarray | None


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


def load_teacher(path: str | os.PathLike[str], dataset: IdentityDataset) -> np.ndarray:
    """Teacher embeddings for ``dataset`` from an ``.npz`` with ``names`` (relative paths) and ``emb``.

    Rows for images the file lacks are NaN (no distillation target for them).
    """
    with np.load(path) as data:
        index = {str(n): i for i, n in enumerate(data["names"])}
        emb = data["emb"].astype(np.float32)
    out = np.full((len(dataset), emb.shape[1]), np.nan, np.float32)
    for row, p in enumerate(dataset.paths):
        i = index.get(p)
        if i is not None:
            out[row] = emb[i]
    return out


def prepare_data(lfw_root: str | None, folders: Sequence[str], cache_dir: str | os.PathLike[str],
                 exclude_people_file: str | None = "default", holdout_people: int = 150,
                 holdout_singletons: int = 300, teacher_file: str | None = None, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> PreparedData:
    """Assemble datasets, crops and the identity-disjoint calibration split."""
    parts = []
    fallback = {}
    if lfw_root:
        parts.append(from_lfw(lfw_root, exclude_people_file))
        fallback = lfw_annotations(lfw_root)
    for folder in folders:
        parts.append(from_folders(folder))
    if not parts:
        raise ValueError("no training data: give an LFW root and/or identity folders")
    data = concat(parts) if len(parts) > 1 else parts[0]
    cache = CropCache(cache_dir)
    crops, ok = aligned_crops(data, cache, fallback_landmarks=fallback, progress=progress)
    data, crops = data.subset(ok), crops[ok]
    train, calib = data.split_people(holdout_people, seed=seed)
    if holdout_singletons:
        train, calib = train.add_singletons_to(calib, holdout_singletons, seed=seed)
    index = {p: i for i, p in enumerate(data.paths)}
    train_crops = crops[[index[p] for p in train.paths]]
    calib_crops = crops[[index[p] for p in calib.paths]]
    teacher = load_teacher(teacher_file, train) if teacher_file else None
    return PreparedData(train, train_crops, calib, calib_crops, teacher)


def resize_to(crops: np.ndarray, size: int) -> np.ndarray:
    """Training crops (ArcFace template) resized to the encoder input (same interpolation as inference)."""
    from facever.embedding import to_model_crops

    return to_model_crops(crops, size, "arcface")


def calibrate_bundle(bundle, emb: np.ndarray, labels: np.ndarray, description: str,
                     target_far: float = 1e-3, seed: int = 0, target_fpir: float = 0.01) -> dict:
    """Set τ (for ``target_far``), its FAR/FRR, the logistic head and the open-set identification
    threshold (for ``target_fpir``, the false positive identification rate) from calibration embeddings.

    Args:
        bundle: a :class:`~facever.encoder.bundle.ModelBundle` (metadata updated in place).
        emb: ``(N, D)`` unit embeddings of the calibration images; labels ``(N,)`` identities.
    Returns the calibration figures (also stored under ``metadata.figures["calibration"]``).
    """
    from facever.encoder.bundle import Threshold
    from facever.matching import ThresholdCalibrator, VerificationHead

    i, j, same = calibration_pairs(labels, seed=seed)
    d = np.linalg.norm(emb[i] - emb[j], axis=1)
    far_cal = ThresholdCalibrator("far", target_far).fit(d, same)
    acc_cal = ThresholdCalibrator("accuracy").fit(d, same)
    head = VerificationHead().fit(emb[i], emb[j], same)
    meta = bundle.metadata
    meta.threshold = Threshold(value=far_cal.threshold_, far=far_cal.far_, frr=far_cal.frr_,
                               target=f"far={target_far:g}", calibration_set=description,
                               n_genuine=int(same.sum()), n_impostor=int((~same).sum()))
    meta.verification_head = head.to_json()
    figures = {"tau_far": far_cal.threshold_, "far": far_cal.far_, "frr": far_cal.frr_,
               "tau_best_accuracy": acc_cal.threshold_, "best_accuracy": acc_cal.accuracy_,
               "far_at_best_accuracy": acc_cal.far_, "frr_at_best_accuracy": acc_cal.frr_,
               "n_genuine": int(same.sum()), "n_impostor": int((~same).sum()), "set": description}
    try:
        ident = calibrate_identify_threshold(emb, labels, target_fpir=target_fpir, description=description, seed=seed)
    except ValueError as exc:  # too few held-out people to resolve the FPIR: keep τ as the fallback
        meta.identify_threshold = None
        figures["identify_threshold"] = None
        figures["identify_note"] = str(exc)
    else:
        meta.identify_threshold = ident
        figures.update({"identify_threshold": ident.value, "identify_fpir": ident.far, "identify_fnir": ident.frr,
                        "identify_n_known_probes": ident.n_genuine, "identify_n_unknown_probes": ident.n_impostor})
    meta.figures["calibration"] = figures
    return figures


def calibrate_identify_threshold(emb: np.ndarray, labels: np.ndarray, target_fpir: float = 0.01,
                                 description: str = "", seed: int = 0):
    """The open-set identification threshold for a target false positive identification rate.

    The P3 design on calibration people: one random image of every person with ≥ 2 images is
    enrolled, their other images are known probes, one-image people are unknown probes (when there
    are too few of them to resolve the FPIR, 30 % of the other people are never enrolled and all
    their images probe as unknowns); scored by
    :func:`facever.evaluation.open_set_identification` with the gallery's default ``nearest``
    scoring.

    Returns a :class:`~facever.encoder.bundle.Threshold` whose ``far`` is the FPIR and ``frr`` the
    FNIR (1 − DIR: known probes not identified as the right person) at that threshold.

    Raises:
        ValueError: too few unknown probes to resolve ``target_fpir``, or no known probes.
    """
    from facever.encoder.bundle import Threshold
    from facever.evaluation import open_set_identification

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


def build_bundle(trainer: Trainer, prepared: PreparedData, extra: dict | None = None):
    """Wrap a trained model into a :class:`TrainableBundle` with provenance (not yet saved)."""
    from facever.encoder.bundle import BundleMetadata, TrainableBundle

    cfg = trainer.config
    counts = np.bincount(prepared.train.labels)
    meta = BundleMetadata(
        architecture=cfg.architecture, input_size=cfg.input_size, embedding_dim=cfg.embedding_dim,
        alignment="arcface", created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        training={
            "config": cfg.to_json(),
            "data": {"source": prepared.train.source, "n_excluded_people": len(prepared.train.excluded),
                     "train_people": len(prepared.train.people), "train_images": len(prepared.train),
                     "train_people_with_2plus": int((counts >= 2).sum()),
                     "calibration_people": len(prepared.calib.people), "calibration_images": len(prepared.calib),
                     "teacher": bool(prepared.teacher is not None),
                     "people": sorted(prepared.train.people)},
            "history": [h.__dict__ for h in trainer.history],
            **(extra or {}),
        },
    )
    return TrainableBundle(trainer.model, meta)
