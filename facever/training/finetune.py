"""Fine-tuning a pretrained encoder with triplet loss and online hard mining (transfer learning).

The network is cut in two at a layer (``cut``): the *trunk* below stays frozen, the *head* above is
trained. The trunk's features of every training crop (and of its mirror image, the augmentation
that survives precomputation) are computed once, so each training step runs only the head: on two
CPU cores that is what makes fine-tuning the last stages of the 5.6 M-parameter dlib ResNet take
minutes instead of hours. The head shares its layers with the full model, so training it updates
the full model in place.

Loss per P×K batch: ``triplet(labels, e) + distill · mean(1 − cos(e, e₀))``, where ``e`` are the
head's unit embeddings and ``e₀`` those of the model before fine-tuning (the teacher). The triplet
term is one of :data:`facever.training.losses.TRIPLET_LOSSES` (semi-hard, batch-hard, batch-all; hinge
margin α or soft margin). The distillation term keeps the embedding near the imported one: the
imported vectors lie in a narrow cone, and without it a fixed margin is met by spreading the cone,
not by better ranking. Frozen batch-norm (dlib ``affine_``) layers stay in inference mode.

After every epoch the head embeds the validation people (held out by identity) and the epoch with
the best validation score (mean TAR at FAR 1e-2 and 1e-3 over all their pairs) is kept.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from facever.training.metrics import all_pairs_distances, verification_metrics
from facever.training.sampling import PKSampler
from facever.training.schedule import keras_schedule

#: Final learning rate of the cosine decay, as a fraction of ``FinetuneConfig.lr``.
MIN_LR_RATIO = 0.05


@dataclass
class FinetuneConfig:
    """Settings of one fine-tuning run.

    Attributes:
        cut: name of the last frozen layer; everything after it is trained (``"s2b2_out"``: dlib's
            last two stages and the fc layer, 4.6 M of 5.6 M parameters).
        loss: ``"semi_hard"``, ``"batch_hard"`` or ``"batch_all"``.
        margin: hinge margin α on Euclidean distances between unit vectors (in [0, 2]).
        soft: softplus instead of the hinge (``margin`` ignored).
        distill: weight of the cosine distillation term towards the model before fine-tuning.
        lr: peak Adam learning rate; linear warm-up over ``warmup_steps``, cosine decay to 5 %
            (:func:`facever.training.schedule.warmup_cosine`, the from-scratch trainer's schedule too).
        epochs: passes over the training images (an epoch = N / (P·K) batches).
        p, k: identities per batch, images per identity.
        seed: sampler and initialisation seed.
        cosface: weight of an auxiliary CosFace identity term over the training people (0: off):
            cross-entropy of ``scale · (cos(e, w_y) − margin_c)`` against the other ``cos(e, w_j)``,
            class vectors ``w`` initialised at each person's mean teacher embedding and trained.
        cosface_scale, cosface_margin: CosFace's scale s and additive cosine margin m.
        focus_fraction: share of batches drawn only from the ``focus`` samples (for example the
            people of the target domain), the rest from everyone.
        freeze_until: also keep the head's layers up to and including this one frozen (for example
            ``"pool"``: only the final fc projection is trained); ``""``: train the whole head.
    """

    cut: str = "s2b2_out"
    loss: str = "semi_hard"
    margin: float = 0.1
    soft: bool = False
    distill: float = 1.0
    lr: float = 3e-5
    epochs: int = 6
    p: int = 32
    k: int = 4
    warmup_steps: int = 50
    seed: int = 0
    weight_decay: float = 0.0
    cosface: float = 0.0
    cosface_scale: float = 30.0
    cosface_margin: float = 0.2
    focus_fraction: float = 0.0
    freeze_until: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EpochResult:
    """Figures of one epoch: training loss terms and validation metrics (see :func:`val_score`)."""

    epoch: int
    seconds: float
    loss: float
    triplet: float
    distill: float
    active: float
    val: dict[str, float] = field(default_factory=dict)


def split_model(model, cut: str):
    """``(trunk, head)`` Keras models: input → ``cut`` output, and ``cut`` output → embedding.

    The head reuses the model's own layers (training it trains ``model``). Raises ``ValueError`` for
    an unknown layer name.
    """
    import keras

    try:
        cut_out = model.get_layer(cut).output
    except ValueError as exc:
        raise ValueError(f"no layer {cut!r} in {model.name}") from exc
    trunk = keras.Model(model.input, cut_out, name=f"{model.name}_trunk")
    head_in = keras.Input(tuple(cut_out.shape[1:]), name="features")
    # rebuild the graph above the cut on a new input, layer by layer, sharing the layers
    values = {id(cut_out): head_in}
    for layer in _layers_after(model, cut):
        node_inputs = layer._inbound_nodes[0].input_tensors
        args = [values[id(t)] for t in node_inputs]
        out = layer(args if len(args) > 1 else args[0])
        values[id(layer.output)] = out
    head = keras.Model(head_in, values[id(model.output)], name=f"{model.name}_head")
    return trunk, head


def _layers_after(model, cut: str) -> list:
    names = [l.name for l in model.layers]
    return model.layers[names.index(cut) + 1:]


def precompute(trunk, crops: np.ndarray, flip: bool = True, batch: int = 64,
               progress: Callable[[int, int], None] | None = None, zooms: Sequence[float] = (1.0,)) -> np.ndarray:
    """Trunk features of ``(N, S, S, 3)`` uint8 crops → ``(N, F, h, w, c)`` float16.

    The second axis holds the crop's test-time views (:func:`facever.alignment.crop_views`: each of
    ``zooms``, and its mirror with ``flip``), so F = len(zooms) × (2 if flip else 1). Training samples
    one view per step (augmentation); :func:`embed_features` averages them (as inference does).
    """
    import tensorflow as tf

    from facever.alignment import crop_views

    fn = tf.function(lambda x: trunk(x, training=False), reduce_retracing=True)
    out = None
    for s in range(0, len(crops), batch):
        views = crop_views(crops[s:s + batch], zooms, flip=flip)
        f = np.stack([np.asarray(fn(v.astype(np.float32))) for v in views], 1).astype(np.float16)
        if out is None:
            out = np.empty((len(crops),) + f.shape[1:], np.float16)
        out[s:s + len(f)] = f
        if progress:
            progress(min(s + batch, len(crops)), len(crops))
    return out


def embed_features(head, features: np.ndarray, batch: int = 512) -> np.ndarray:
    """Head embeddings of precomputed features ``(N, F, h, w, c)``: the mean over the F views, unit rows."""
    import tensorflow as tf

    fn = tf.function(lambda x: head(x, training=False), reduce_retracing=True)
    out = []
    for s in range(0, len(features), batch):
        f = features[s:s + batch]
        e = sum(np.asarray(fn(f[:, j].astype(np.float32))) for j in range(f.shape[1]))
        out.append(e / np.linalg.norm(e, axis=1, keepdims=True))
    return np.concatenate(out)


def val_score(emb: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Verification figures over every pair of ``emb``: AUC, EER, TAR at FAR 1e-2/1e-3 (NaN when too few
    impostor pairs resolve that FAR) and ``score``, their mean: what checkpoints are chosen on."""
    res = all_pairs_distances(emb, labels)
    d = np.concatenate([res["genuine"], res["impostor"]])
    same = np.r_[np.ones(len(res["genuine"]), bool), np.zeros(len(res["impostor"]), bool)]
    m = verification_metrics(d, same, fars=(1e-2, 1e-3))
    # a FAR too small for the number of impostor pairs is unresolvable (None): it is left out of
    # the score, which falls back to the AUC when neither can be measured
    tars = [m["tar_at_far"][k]["tar"] for k in ("0.01", "0.001")]
    tar2, tar3 = (float("nan") if t is None else float(t) for t in tars)
    known = [t for t in (tar2, tar3) if np.isfinite(t)]
    score = float(np.mean(known)) if known else float(m["roc_auc"])
    return {"auc": float(m["roc_auc"]), "eer": float(m["eer"]), "tar_far1e-2": tar2,
            "tar_far1e-3": tar3, "score": score,
            "genuine_mean": float(res["genuine"].mean()), "impostor_mean": float(res["impostor"].mean())}


class Finetuner:
    """Trains ``head`` on precomputed features.

    Args:
        head: the trainable part (from :func:`split_model`).
        features: ``(N, F, h, w, c)`` float16 trunk features of F test-time views (:func:`precompute`).
        labels: ``(N,)`` integer identities.
        config: :class:`FinetuneConfig`.
        val: optional ``(features, labels)`` of validation people for checkpoint choice, or a list of
            such sets (for example one per domain): the checkpoint then maximises the mean of their scores.
        focus: optional ``(N,)`` bool mask of the samples ``config.focus_fraction`` of batches come from.
    """

    def __init__(self, head, features: np.ndarray, labels: np.ndarray, config: FinetuneConfig,
                 val: tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]] | None = None,
                 focus: np.ndarray | None = None) -> None:
        self.head = head
        self.features = features
        _, self.labels = np.unique(np.asarray(labels), return_inverse=True)
        self.config = config
        self.val = val
        self.focus = None if focus is None else np.flatnonzero(np.asarray(focus, bool))
        self.teacher = embed_features(head, features)  # per crop: the mean over its views
        self.history: list[EpochResult] = []
        self.best: dict[str, Any] | None = None

    def _step_fn(self):
        import keras
        import tensorflow as tf

        from facever.training.losses import get_triplet_loss, triplet_stats

        cfg = self.config
        loss_fn = get_triplet_loss(cfg.loss)
        schedule = keras_schedule(cfg.lr, cfg.warmup_steps, cfg.epochs * self.steps_per_epoch, MIN_LR_RATIO)
        self.optimizer = keras.optimizers.Adam(learning_rate=schedule, weight_decay=cfg.weight_decay or None)
        if cfg.freeze_until:
            names = [l.name for l in self.head.layers]
            if cfg.freeze_until not in names:
                raise ValueError(f"no layer {cfg.freeze_until!r} in the head")
            for layer in self.head.layers[:names.index(cfg.freeze_until) + 1]:
                layer.trainable = False
        variables = list(self.head.trainable_variables)
        if cfg.cosface > 0:
            n_classes = int(self.labels.max()) + 1
            centres = np.zeros((n_classes, self.teacher.shape[1]), np.float32)
            np.add.at(centres, self.labels, self.teacher)
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
            self.class_vectors = tf.Variable(centres, name="cosface_classes")
            variables.append(self.class_vectors)

        @tf.function(reduce_retracing=True)
        def step(x, y, t):
            with tf.GradientTape() as tape:
                e = self.head(x, training=True)
                trip = loss_fn(y, e, margin=cfg.margin, soft=cfg.soft)
                dist = tf.reduce_mean(1.0 - tf.reduce_sum(e * t, axis=1))
                loss = trip + cfg.distill * dist
                if cfg.cosface > 0:
                    w = tf.math.l2_normalize(self.class_vectors, axis=1)
                    cos = tf.matmul(e, w, transpose_b=True)
                    onehot = tf.one_hot(y, tf.shape(w)[0])
                    logits = cfg.cosface_scale * (cos - cfg.cosface_margin * onehot)
                    loss += cfg.cosface * tf.reduce_mean(
                        tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=logits))
            grads = tape.gradient(loss, variables)
            self.optimizer.apply_gradients(zip(grads, variables))
            stats = triplet_stats(y, e, margin=cfg.margin)
            return loss, trip, dist, stats["active_fraction"] if "active_fraction" in stats else tf.constant(0.0)

        return step

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: one pass over the training images in batches of about P·K."""
        return max(1, len(self.labels) // (self.config.p * self.config.k))

    def _validate(self) -> dict[str, float]:
        if self.val is None:
            return {}
        sets = self.val if isinstance(self.val, list) else [self.val]
        scores = [val_score(embed_features(self.head, feats), labels) for feats, labels in sets]
        if len(scores) == 1:
            return scores[0]
        # several validation populations (e.g. two domains): each one's figures, prefixed by its
        # index, and the mean of their scores, so that no domain is traded away for another
        out = {f"v{i}_{k}": v for i, sc in enumerate(scores) for k, v in sc.items()}
        out["score"] = float(np.mean([sc["score"] for sc in scores]))
        return out

    def fit(self, on_epoch: Callable[[EpochResult], None] | None = None,
            on_step: Callable[[int, int], None] | None = None) -> list[EpochResult]:
        """Run ``config.epochs`` epochs; restore the best validation epoch (epoch 0 = before training)."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        # a small dataset (a user's own people) may have fewer than P people: take them all, with
        # more images each, so the batch keeps about P·K images
        eligible = int((np.bincount(self.labels) >= 2).sum())
        p = min(cfg.p, eligible)
        k = min(16, max(cfg.k, (cfg.p * cfg.k) // max(p, 1)))
        sampler = PKSampler(self.labels, p, k, seed=cfg.seed)
        focus_sampler = None
        if self.focus is not None and cfg.focus_fraction > 0:
            sub = PKSampler(self.labels[self.focus], min(p, len(np.unique(self.labels[self.focus])) - 1), k,
                            seed=cfg.seed + 1)
            focus_sampler = lambda: self.focus[sub.sample_batch()]
        step = self._step_fn()
        v0 = self._validate()
        self.best = {"epoch": 0, "score": v0.get("score", -np.inf), "weights": self.head.get_weights(), "val": v0}
        self.history = [EpochResult(0, 0.0, 0.0, 0.0, 0.0, 0.0, v0)]
        if on_epoch:
            on_epoch(self.history[-1])
        n_views = self.features.shape[1]
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.time()
            sums = np.zeros(4)
            for i in range(self.steps_per_epoch):
                use_focus = focus_sampler is not None and rng.random() < cfg.focus_fraction
                idx = focus_sampler() if use_focus else sampler.sample_batch()
                view = rng.integers(0, n_views, len(idx))
                x = self.features[idx, view].astype(np.float32)
                t = self.teacher[idx]
                out = step(x, self.labels[idx].astype(np.int32), t)
                sums += [float(v) for v in out]
                if on_step:
                    on_step(i + 1, self.steps_per_epoch)
            sums /= self.steps_per_epoch
            val = self._validate()
            result = EpochResult(epoch, time.time() - t0, *sums.tolist(), val)
            self.history.append(result)
            if val and val["score"] > self.best["score"]:
                self.best = {"epoch": epoch, "score": val["score"], "weights": self.head.get_weights(), "val": val}
            if on_epoch:
                on_epoch(result)
        if self.val is not None:
            self.head.set_weights(self.best["weights"])
        return self.history
