"""The from-scratch training recipe used by ``facever train``: data → crops → split → fit → bundle.

1. Identity datasets: LFW without ``peopleDevTest`` (so P1–P3 stay clean) and/or identity folders.
2. Aligned crops through the inference pipeline (:func:`facever.training.datasets.aligned_crops`:
   MTCNN on onnxruntime, the model's template and input size), kept in the on-disk
   :class:`~facever.training.datasets.CropCache` (detection runs once per image and geometry). The
   fine-tuning recipe (:mod:`facever.training.finetune_recipe`) uses the same function.
3. A calibration split *by identity*: people in neither training nor DevTest, whose pairs choose τ
   (and give per-epoch validation figures).
4. :class:`~facever.training.scratch.Trainer`, optionally with precomputed teacher embeddings.
5. A bundle with τ, its FAR/FRR on the calibration pairs, a logistic "same person" head
   (:mod:`facever.training.calibration`), the training configuration and the data it saw.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from facever.training.datasets import CropCache, IdentityDataset, aligned_crops, concat, from_folders, from_lfw, lfw_annotations
from facever.training.scratch import Trainer


@dataclass
class PreparedData:
    """Training and calibration sets with their aligned crops ``(N, S, S, 3)`` uint8 and teacher targets."""

    train: IdentityDataset
    train_crops: np.ndarray
    calib: IdentityDataset
    calib_crops: np.ndarray
    teacher: np.ndarray | None


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


def prepare_data(lfw_root: str | None, folders: Sequence[str], cache_dir: str | os.PathLike[str], size: int,
                 template: str, exclude_people_file: str | None = "default", holdout_people: int = 150,
                 holdout_singletons: int = 300, teacher_file: str | None = None, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> PreparedData:
    """Assemble datasets, ``size`` px crops aligned to ``template``, and the identity-disjoint calibration split.

    Images where no face is found use LFW's annotated landmarks when they exist, else are dropped.
    """
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
    cache = CropCache(cache_dir, size, template)
    crops, ok = aligned_crops(data, size, template, cache=cache, fallback_landmarks=fallback, progress=progress)
    data, crops = data.subset(ok), crops[ok]
    train, calib = data.split_people(holdout_people, seed=seed)
    if holdout_singletons:
        train, calib = train.add_singletons_to(calib, holdout_singletons, seed=seed)
    index = {p: i for i, p in enumerate(data.paths)}
    train_crops = crops[[index[p] for p in train.paths]]
    calib_crops = crops[[index[p] for p in calib.paths]]
    teacher = load_teacher(teacher_file, train) if teacher_file else None
    return PreparedData(train, train_crops, calib, calib_crops, teacher)


def build_bundle(trainer: Trainer, prepared: PreparedData, extra: dict | None = None):
    """Wrap a trained model into a :class:`TrainableBundle` with provenance (not yet saved)."""
    from facever.training.bundle import BundleMetadata, TrainableBundle

    cfg = trainer.config
    counts = np.bincount(prepared.train.labels)
    meta = BundleMetadata(
        architecture=cfg.architecture, input_size=cfg.input_size, embedding_dim=cfg.embedding_dim,
        alignment=cfg.alignment, created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
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
