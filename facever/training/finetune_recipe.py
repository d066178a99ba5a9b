"""Fine-tune a model bundle on the user's own folder-per-person photos (``facever train --init``).

The whole path a user needs to adapt a model to their population:

1. the people of the given folders are split by identity: ``val_fraction`` of those with ≥ 2 images
   are held out to choose the checkpoint and calibrate τ; the rest are trained on;
2. every photo is detected (MTCNN on onnxruntime; the face nearest the image centre; a second pass
   on a padded copy for tight crops) and aligned in the starting bundle's own geometry, by
   :func:`facever.training.datasets.aligned_crops` (the from-scratch recipe's function, with its
   crop cache when ``cache_dir`` is given);
3. :class:`facever.training.finetune.Finetuner` trains the layers above ``config.cut`` with triplet
   loss and online mining (plus distillation towards the starting model);
4. τ, the identification threshold and the open-set impostor distribution are calibrated on the
   held-out people, and a new bundle is written (the starting bundle is never modified).
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from facever.training.datasets import CropCache, IdentityDataset, aligned_crops, concat, from_folders
from facever.training.finetune import EpochResult, FinetuneConfig, Finetuner, embed_features, precompute, split_model

Progress = Callable[[str, int, int], None]


def split_by_identity(dataset: IdentityDataset, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(train, val)``: ``val_fraction`` of the people with ≥ 2 images go to val."""
    counts = np.bincount(dataset.labels, minlength=len(dataset.people))
    multi = np.flatnonzero(counts >= 2)
    n_val = max(2, int(round(val_fraction * len(multi))))
    if len(multi) - n_val < 2:
        raise ValueError(f"need at least {n_val + 2} people with two or more photos to hold {n_val} out, "
                         f"found {len(multi)}")
    val_people = set(np.random.default_rng(seed).choice(multi, n_val, replace=False).tolist())
    val = np.isin(dataset.labels, list(val_people))
    return ~val, val


def finetune_from_folders(init: str | os.PathLike[str] | None, folders: Sequence[str | os.PathLike[str]],
                          out: str | os.PathLike[str], config: FinetuneConfig | None = None,
                          val_fraction: float = 0.25, target_far: float = 1e-2, target_fpir: float = 1e-2,
                          progress: Progress | None = None,
                          on_epoch: Callable[[EpochResult], None] | None = None, detector=None,
                          cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Fine-tune the bundle ``init`` (None: the shipped default) on ``folders``; write ``out``.

    Returns a JSON-ready report: data counts, the validation figures before (epoch 0) and after
    (best epoch), the calibration, the new bundle's path and version.
    Raises ``ValueError`` for unusable data (too few people, no face found).
    """
    from facever import config as fv_config
    from facever.training.bundle import load_trainable
    from facever.training.calibration import calibrate_bundle

    config = config or FinetuneConfig()
    init_dir = Path(init) if init else fv_config.packaged_model_dir()
    start = load_trainable(init_dir)
    meta = start.metadata
    dataset = concat([from_folders(f) for f in folders])
    cache = CropCache(cache_dir, meta.input_size, meta.alignment) if cache_dir is not None else None
    crops, ok = aligned_crops(dataset, meta.input_size, meta.alignment, cache=cache, detector=detector,
                              progress=(lambda d, t: progress("detecting", d, t)) if progress else None)
    if ok.sum() < 4:
        raise ValueError(f"faces found in only {int(ok.sum())} of {len(dataset)} photos")
    dataset = dataset.subset(ok)
    crops = crops[ok]
    train_mask, val_mask = split_by_identity(dataset, val_fraction, seed=config.seed)
    trunk, head = split_model(start.model, config.cut)
    feats = precompute(trunk, crops, flip=bool(meta.flip_tta), zooms=meta.view_zooms,
                       progress=(lambda d, t: progress("features", d, t)) if progress else None)
    val = (feats[val_mask], dataset.labels[val_mask])
    tuner = Finetuner(head, feats[train_mask], dataset.labels[train_mask], config, val=val)
    history = tuner.fit(on_epoch=on_epoch)
    emb = embed_features(head, val[0])
    _, val_labels = np.unique(val[1], return_inverse=True)
    val_people = sorted({dataset.people[i] for i in np.unique(val[1])})
    meta.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    meta.training = {"method": "fine-tuned with triplet loss + online mining (facever train --init)",
                     "init": {"path": str(init_dir), "version": start.version},
                     "finetune": {"config": config.to_json(), "best_epoch": tuner.best["epoch"],
                                  "history": [h.__dict__ for h in history]},
                     "data": {"folders": [str(f) for f in folders], "images": len(dataset),
                              "train_people": int(len(np.unique(dataset.labels[train_mask]))),
                              "val_people": val_people},
                     "previous": meta.training}
    description = f"{len(val_people)} held-out people of {', '.join(str(f) for f in folders)} ({len(emb)} images)"
    figures = calibrate_bundle(start, emb, val_labels, description, target_far=target_far, target_fpir=target_fpir)
    from facever.open_set import impostor_distribution

    meta.open_set = impostor_distribution(emb, val_labels, description=description, default_fpir=target_fpir)
    version = start.save(out, half=start.half)  # compact in, compact out (the shipped model is)
    return {"bundle": str(out), "version": version, "images": len(dataset), "photos_without_face": int((~ok).sum()),
            "train_people": meta.training["data"]["train_people"], "val_people": len(val_people),
            "before": history[0].val, "after": tuner.best["val"], "best_epoch": tuner.best["epoch"],
            "calibration": figures}
