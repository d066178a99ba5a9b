"""The from-scratch trainer: triplet loss with online mining over P×K batches, optional distillation.

The objective per batch is

    L = triplet(labels, f(x); mining, margin α)                      (always)
      + λ_e · mean_i ||f(x_i) − t_i||²                               (if a teacher is given)
      + λ_d · mean_ij (d(f(x_i), f(x_j)) − d(t_i, t_j))²             (if a teacher is given)

where t_i is a teacher's unit embedding of the same image (precomputed; the teacher is never
needed at run time). Checkpoints (model, optimizer state, epoch, history) are written every epoch
and a run can resume from them. The library never prints: progress goes to a callback.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facever.training.sampling import PKSampler
from facever.training.schedule import keras_schedule


@dataclass
class TrainConfig:
    """Every setting of a training run (recorded in the bundle).

    ``alignment`` is the crop template (:data:`facever.alignment.TEMPLATES`) the crops are aligned to
    at ``input_size`` px, as inference will align them (dlib's chip, like the fine-tuned models).
    ``lr``, ``warmup_steps`` and ``min_lr_ratio`` set :func:`facever.training.schedule.warmup_cosine`.
    """

    architecture: str = "resnet_s"
    input_size: int = 96
    alignment: str = "dlib"
    width: int = 32
    embedding_dim: int = 128
    dropout: float = 0.2
    epochs: int = 30
    steps_per_epoch: int | None = None
    p: int = 32
    k: int = 4
    extra_singletons: int = 32
    mining: str = "batch_hard"
    margin: float = 0.2
    soft_margin: bool = False
    squared: bool = False
    lr: float = 1e-3
    warmup_steps: int = 200
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-4
    distill_weight: float = 0.0
    distill_pair_weight: float = 0.0
    teacher_centre: bool = True
    augment: bool = True
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EpochLog:
    """Figures of one epoch: mean loss parts, triplet health, validation metrics, throughput."""

    epoch: int
    loss: float
    triplet: float
    distill: float
    active_fraction: float
    mean_pos_dist: float
    mean_neg_dist: float
    images_per_s: float
    seconds: float
    val: dict[str, float] = field(default_factory=dict)


def _pairwise(x):
    import tensorflow as tf

    sq = tf.reduce_sum(x * x, axis=1)
    d2 = sq[:, None] - 2.0 * tf.matmul(x, x, transpose_b=True) + sq[None, :]
    d2 = tf.maximum(d2, 0.0)
    zero = tf.cast(tf.equal(d2, 0.0), x.dtype)
    return tf.sqrt(d2 + zero * 1e-12) * (1.0 - zero)


class Trainer:
    """Fits an encoder on in-memory aligned crops.

    Args:
        config: the run's settings.
        crops: ``(N, S, S, 3)`` uint8 RGB aligned crops at ``config.input_size``.
        labels: ``(N,)`` int identity labels.
        teacher: optional ``(N, D)`` float32 teacher embeddings (rows of NaN = no target); rows are
            L2-normalised here, after subtracting the mean unit teacher vector when
            ``config.teacher_centre`` (the default).
        validation: optional pairs to score after each epoch: ``(crops_a, crops_b, same)``, or
            ``(crops, i, j, same)`` with index arrays into ``crops`` (each image embedded once, which
            is much cheaper when images recur across pairs).
        out_dir: where checkpoints go (``out_dir/checkpoint``).
    """

    def __init__(self, config: TrainConfig, crops: np.ndarray, labels: np.ndarray, out_dir: str | os.PathLike[str],
                 teacher: np.ndarray | None = None,
                 validation: tuple[np.ndarray, ...] | None = None) -> None:
        if crops.ndim != 4 or crops.shape[1] != config.input_size or crops.shape[2] != config.input_size:
            raise ValueError(f"crops must be (N, {config.input_size}, {config.input_size}, 3), got {crops.shape}")
        if len(crops) != len(labels):
            raise ValueError("crops and labels differ in length")
        self.config = config
        self.crops = crops
        self.labels = np.asarray(labels, np.int64)
        self.out_dir = Path(out_dir)
        if validation is not None and len(validation) == 3:  # (crops_a, crops_b, same) → indexed form
            a, b, same = validation
            validation = (np.concatenate([a, b]), np.arange(len(a)), len(a) + np.arange(len(b)), same)
        self.validation = validation
        self.teacher = None
        if teacher is not None:
            t = np.asarray(teacher, np.float32)
            mask = np.isfinite(t).all(axis=1)
            t = np.where(mask[:, None], t, 0.0)
            t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
            if config.teacher_centre and mask.any():
                # Teachers such as dlib's ResNet put every face inside a narrow cone (|mean unit
                # vector| ≈ 0.9): matching the mean direction is then a cheap collapsed solution.
                # Centred targets spread over the sphere (impostor distance ≈ √2).
                t = np.where(mask[:, None], t - t[mask].mean(axis=0), 0.0)
                t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
            self.teacher, self.teacher_mask = t.astype(np.float32), mask.astype(np.float32)
        self.sampler = PKSampler(self.labels, config.p, config.k, seed=config.seed,
                                 extra_singletons=config.extra_singletons)
        self.batch_size = config.p * config.k + config.extra_singletons
        self.steps_per_epoch = config.steps_per_epoch or max(1, int(np.ceil(len(crops) / self.batch_size)))
        self.history: list[EpochLog] = []
        self.epoch = 0
        self._build()

    # -- setup --------------------------------------------------------------------------------
    def _build(self) -> None:
        import keras
        import tensorflow as tf

        from facever.training.losses import get_triplet_loss, triplet_stats
        from facever.training.network import build_encoder

        cfg = self.config
        keras.utils.set_random_seed(cfg.seed)
        self.model = build_encoder(cfg.architecture, cfg.input_size, cfg.embedding_dim, cfg.width, cfg.dropout)
        total = cfg.epochs * self.steps_per_epoch
        schedule = keras_schedule(cfg.lr, cfg.warmup_steps, total, cfg.min_lr_ratio)
        self.optimizer = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay, clipnorm=5.0)
        self.optimizer.build(self.model.trainable_variables)
        triplet = get_triplet_loss(cfg.mining)
        crops = tf.constant(self.crops)
        labels = tf.constant(self.labels)
        teacher = tf.constant(self.teacher) if self.teacher is not None else None
        tmask = tf.constant(self.teacher_mask) if self.teacher is not None else None
        model, optimizer = self.model, self.optimizer

        def step(idx):
            x = tf.cast(tf.gather(crops, idx), tf.float32)
            if cfg.augment:
                from facever.training.datasets import augment_batch

                x = augment_batch(x)
            y = tf.gather(labels, idx)
            with tf.GradientTape() as tape:
                emb = model(x, training=True)
                t_loss = triplet(y, emb, margin=cfg.margin, squared=cfg.squared, soft=cfg.soft_margin)
                d_loss = tf.constant(0.0)
                if teacher is not None:
                    t = tf.gather(teacher, idx)
                    m = tf.gather(tmask, idx)
                    per = tf.reduce_sum(tf.square(emb - t), axis=1)
                    d_loss = cfg.distill_weight * tf.reduce_sum(per * m) / tf.maximum(tf.reduce_sum(m), 1.0)
                    if cfg.distill_pair_weight > 0:
                        pm = m[:, None] * m[None, :]
                        diff = tf.square(_pairwise(emb) - _pairwise(t)) * pm
                        d_loss += cfg.distill_pair_weight * tf.reduce_sum(diff) / tf.maximum(tf.reduce_sum(pm), 1.0)
                loss = t_loss + d_loss + tf.add_n(model.losses) if model.losses else t_loss + d_loss
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            stats = triplet_stats(y, emb, margin=cfg.margin, squared=cfg.squared)
            return loss, t_loss, d_loss, stats["active_fraction"], stats["mean_pos_dist"], stats["mean_neg_dist"]

        self._step = tf.function(step, reduce_retracing=True)
        self._embed = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    # -- checkpoints --------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoint"

    def save_checkpoint(self) -> None:
        """Write model weights, optimizer variables and progress atomically-ish (state.json last)."""
        ck = self.checkpoint_dir
        ck.mkdir(parents=True, exist_ok=True)
        self.model.save_weights(ck / "model.weights.h5")
        np.savez(ck / "optimizer.npz", *[np.asarray(v) for v in self.optimizer.variables])
        rng_state = self.sampler.rng.bit_generator.state if hasattr(self.sampler, "rng") else None
        state = {"epoch": self.epoch, "config": self.config.to_json(),
                 "history": [asdict(h) for h in self.history], "sampler_rng": rng_state}
        tmp = ck / "state.json.tmp"
        tmp.write_text(json.dumps(state, default=str))
        os.replace(tmp, ck / "state.json")

    def load_checkpoint(self) -> bool:
        """Resume from ``checkpoint_dir`` if present; returns whether a checkpoint was loaded."""
        ck = self.checkpoint_dir
        if not (ck / "state.json").is_file():
            return False
        state = json.loads((ck / "state.json").read_text())
        if state["config"] != self.config.to_json():
            raise ValueError("checkpoint was written with different settings; use the same options to resume")
        self.model.load_weights(ck / "model.weights.h5")
        with np.load(ck / "optimizer.npz") as data:
            values = [data[f"arr_{i}"] for i in range(len(data.files))]
        for var, val in zip(self.optimizer.variables, values):
            var.assign(val)
        self.epoch = int(state["epoch"])
        self.history = [EpochLog(**h) for h in state["history"]]
        if state.get("sampler_rng") and hasattr(self.sampler, "rng"):
            self.sampler.rng.bit_generator.state = state["sampler_rng"]
        return True

    # -- running ------------------------------------------------------------------------------
    def embed(self, crops: np.ndarray, batch: int = 256) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 → ``(N, D)`` unit embeddings: the mean over the crop and its mirror
        (:func:`facever.alignment.crop_views`, the views of the bundles this trainer writes)."""
        from facever.alignment import crop_views

        out = []
        for s in range(0, len(crops), batch):
            e = sum(np.asarray(self._embed(v.astype(np.float32))) for v in crop_views(crops[s:s + batch]))
            out.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
        return np.concatenate(out) if out else np.zeros((0, self.config.embedding_dim), np.float32)

    def validate(self) -> dict[str, float]:
        """Accuracy (best τ), ROC AUC and TAR at FAR 1e-3 on the validation pairs."""
        if self.validation is None:
            return {}
        from sklearn.metrics import roc_auc_score

        from facever.matching import best_accuracy_threshold, threshold_at_rate

        crops, i, j, same = self.validation
        emb = self.embed(crops)
        same = np.asarray(same).astype(bool)  # 0/1 ints would index d[same] by position
        d = np.linalg.norm(emb[np.asarray(i)] - emb[np.asarray(j)], axis=1)
        tau = best_accuracy_threshold(d, same)
        tau_far = threshold_at_rate(d[~same], 1e-3)
        return {"accuracy": float(((d <= tau) == same).mean()), "threshold": float(tau),
                "roc_auc": float(roc_auc_score(same, -d)), "tar_at_far_1e-3": float((d[same] <= tau_far).mean()),
                "mean_genuine": float(d[same].mean()), "mean_impostor": float(d[~same].mean())}

    def fit(self, on_step: Callable[[int, int, dict], None] | None = None,
            on_epoch: Callable[[EpochLog], None] | None = None, resume: bool = False) -> list[EpochLog]:
        """Train for the remaining epochs; checkpoint after each. Returns the epoch history."""
        import tensorflow as tf

        if resume:
            self.load_checkpoint()
        while self.epoch < self.config.epochs:
            t0 = time.perf_counter()
            sums = np.zeros(6)
            for s in range(self.steps_per_epoch):
                idx = tf.constant(self.sampler.sample_batch())
                vals = [float(v) for v in self._step(idx)]
                sums += vals
                if on_step:
                    on_step(s + 1, self.steps_per_epoch, dict(zip(
                        ("loss", "triplet", "distill", "active", "d_ap", "d_an"), vals)))
            secs = time.perf_counter() - t0
            mean = sums / self.steps_per_epoch
            self.epoch += 1
            log = EpochLog(self.epoch, *[float(v) for v in mean],
                           images_per_s=self.steps_per_epoch * self.batch_size / secs, seconds=secs,
                           val=self.validate())
            self.history.append(log)
            self.save_checkpoint()
            if on_epoch:
                on_epoch(log)
        return self.history
