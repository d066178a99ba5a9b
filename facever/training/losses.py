"""Triplet losses with online mining inside a batch, vectorised with masks.

Every function takes ``labels`` of shape ``(B,)`` (any integer dtype; ``(B, 1)`` is flattened) and
``embeddings`` of shape ``(B, D)`` in any float dtype (float16/bfloat16 under mixed precision are
cast to float32 first) and returns a float32 scalar. Only TensorFlow ops are used, so the functions
run eagerly, inside ``tf.function`` and in Keras 3 on the TensorFlow backend; the argument order
``(labels, embeddings)`` matches Keras' ``(y_true, y_pred)``.

Terms: for an anchor ``a`` a *positive* is another sample ``p != a`` with the same label and a
*negative* is a sample ``n`` with a different label. ``d`` is the Euclidean distance (or its square
with ``squared=True``). The hinge loss of a triplet is ``max(d_ap - d_an + margin, 0)``; with
``soft=True`` it is ``softplus(d_ap - d_an)`` and ``margin`` is ignored.

The mined variants cost ``O(B^2 D)`` memory for the distances and ``O(B^3)`` for ``semi_hard`` and
``batch_all`` (a ``B = 160`` batch is a few tens of MB).
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

__all__ = [
    "TRIPLET_LOSSES",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "get_triplet_loss",
    "pairwise_distances",
    "semi_hard_triplet_loss",
    "triplet_stats",
]

TripletLoss = Callable[..., tf.Tensor]


def _prepare(labels, embeddings) -> tuple[tf.Tensor, tf.Tensor]:
    """Flatten labels to ``(B,)`` and cast embeddings ``(B, D)`` to float32."""
    labels = tf.reshape(tf.convert_to_tensor(labels), [-1])
    embeddings = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
    return labels, embeddings


def pairwise_distances(embeddings, squared: bool = False) -> tf.Tensor:
    """All pairwise distances of a batch.

    Args:
        embeddings: ``(B, D)`` float tensor (cast to float32).
        squared: return squared Euclidean distances instead of Euclidean ones.

    Returns:
        ``(B, B)`` float32 tensor; the diagonal (and any pair of identical rows) is exactly 0.

    Distances come from explicit differences rather than the ``|x|^2 - 2xy + |y|^2`` expansion, so
    duplicated embeddings give exact zeros and exact ties. For the non-squared case the square root
    is only taken where the squared distance is non-zero (double ``tf.where``), so the gradient at
    zero distance is 0 instead of NaN.
    """
    e = tf.cast(tf.convert_to_tensor(embeddings), tf.float32)
    diff = tf.expand_dims(e, 1) - tf.expand_dims(e, 0)  # (B, B, D)
    d2 = tf.reduce_sum(tf.square(diff), axis=-1)  # (B, B)
    if squared:
        return d2
    zero = tf.equal(d2, 0.0)
    safe = tf.where(zero, tf.ones_like(d2), d2)
    return tf.where(zero, tf.zeros_like(d2), tf.sqrt(safe))


def _masks(labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(B, B)`` boolean masks: positive pairs (same label, ``i != j``) and negative pairs."""
    same = tf.equal(tf.expand_dims(labels, 0), tf.expand_dims(labels, 1))
    not_eye = tf.logical_not(tf.cast(tf.eye(tf.shape(labels)[0]), tf.bool))
    return tf.logical_and(same, not_eye), tf.logical_not(same)


def _triplet_value(d_ap: tf.Tensor, d_an: tf.Tensor, margin: float, soft: bool) -> tf.Tensor:
    """Element-wise triplet loss: hinge with ``margin`` or, with ``soft``, ``softplus(d_ap - d_an)``."""
    if soft:
        return tf.nn.softplus(d_ap - d_an)
    return tf.maximum(d_ap - d_an + margin, 0.0)


def _masked_mean(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of ``values`` where ``mask`` holds; 0 (with zero gradient) when the mask is empty."""
    mask_f = tf.cast(mask, tf.float32)
    total = tf.reduce_sum(tf.where(mask, values, tf.zeros_like(values)))
    return total / tf.maximum(tf.reduce_sum(mask_f), 1.0)


def _masked_min(values: tf.Tensor, mask: tf.Tensor, axis: int) -> tf.Tensor:
    """Minimum of ``values`` over ``axis`` where ``mask`` holds (``+inf`` on empty rows)."""
    inf = tf.fill(tf.shape(values), tf.constant(float("inf"), values.dtype))
    return tf.reduce_min(tf.where(mask, values, inf), axis=axis)


def batch_hard_triplet_loss(labels, embeddings, margin: float = 0.2, squared: bool = False,
                            soft: bool = False) -> tf.Tensor:
    """Batch-hard triplet loss (Hermans et al., 2017).

    For each anchor take the hardest positive (largest ``d_ap``) and the hardest negative (smallest
    ``d_an``). Anchors lacking a positive or a negative are left out of the mean; when no anchor
    qualifies the loss is 0 (still connected to ``embeddings`` for the gradient).

    Args:
        labels: ``(B,)`` identity labels.
        embeddings: ``(B, D)`` embeddings.
        margin: hinge margin (ignored when ``soft``).
        squared: use squared Euclidean distances.
        soft: use ``softplus(d_ap - d_an)`` instead of the hinge.

    Returns:
        float32 scalar.
    """
    labels, embeddings = _prepare(labels, embeddings)
    d = pairwise_distances(embeddings, squared=squared)
    pos, neg = _masks(labels)
    hardest_pos = tf.reduce_max(tf.where(pos, d, tf.zeros_like(d)), axis=1)  # d >= 0
    hardest_neg = _masked_min(d, neg, axis=1)
    valid = tf.logical_and(tf.reduce_any(pos, axis=1), tf.reduce_any(neg, axis=1))
    hardest_neg = tf.where(valid, hardest_neg, tf.zeros_like(hardest_neg))  # no inf downstream
    return _masked_mean(_triplet_value(hardest_pos, hardest_neg, margin, soft), valid)


def semi_hard_triplet_loss(labels, embeddings, margin: float = 0.2, squared: bool = False,
                           soft: bool = False) -> tf.Tensor:
    """Semi-hard triplet loss (FaceNet, Schroff et al., 2015).

    For every positive pair ``(a, p)`` whose anchor has at least one negative, the negative is the
    closest one farther than the positive (smallest ``d_an`` with ``d_an > d_ap``); when there is
    none, the hardest negative (smallest ``d_an``) is used. Unlike TF-Addons, which falls back to the
    *farthest* negative, this falls back to the hardest. The loss is the mean over those pairs
    (0 when there are none).

    Args:
        labels: ``(B,)`` identity labels.
        embeddings: ``(B, D)`` embeddings.
        margin: hinge margin (ignored when ``soft``).
        squared: use squared Euclidean distances.
        soft: use ``softplus(d_ap - d_an)`` instead of the hinge.

    Returns:
        float32 scalar.
    """
    labels, embeddings = _prepare(labels, embeddings)
    d = pairwise_distances(embeddings, squared=squared)
    pos, neg = _masks(labels)
    d_an_all = tf.expand_dims(d, 1)  # (B, 1, B): [a, ., n]
    d_ap = tf.expand_dims(d, 2)  # (B, B, 1): [a, p, .]
    semi = tf.logical_and(tf.expand_dims(neg, 1), d_an_all > d_ap)  # (B, B, B): [a, p, n]
    has_semi = tf.reduce_any(semi, axis=2)  # (B, B)
    semi_neg = _masked_min(tf.broadcast_to(d_an_all, tf.shape(semi)), semi, axis=2)
    hardest_neg = tf.expand_dims(_masked_min(d, neg, axis=1), 1)  # (B, 1)
    has_neg = tf.reduce_any(neg, axis=1, keepdims=True)  # (B, 1)
    valid = tf.logical_and(pos, has_neg)  # (B, B)
    d_an = tf.where(has_semi, semi_neg, tf.broadcast_to(hardest_neg, tf.shape(d)))
    d_an = tf.where(valid, d_an, tf.zeros_like(d_an))  # no inf downstream
    return _masked_mean(_triplet_value(d, d_an, margin, soft), valid)


def _triplet_grid(labels: tf.Tensor, d: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(B, B, B)`` margins ``d_ap - d_an`` indexed ``[a, p, n]`` and the mask of valid triplets."""
    pos, neg = _masks(labels)
    diff = tf.expand_dims(d, 2) - tf.expand_dims(d, 1)
    valid = tf.logical_and(tf.expand_dims(pos, 2), tf.expand_dims(neg, 1))
    return diff, valid


def batch_all_triplet_loss(labels, embeddings, margin: float = 0.2, squared: bool = False,
                           soft: bool = False) -> tf.Tensor:
    """Batch-all triplet loss over every valid triplet ``(a, p, n)``.

    With the hinge, the positive triplet losses are summed and divided by the number of *active*
    triplets (those with a positive loss), so easy triplets do not dilute the loss; 0 when none is
    active. With ``soft`` the loss is the mean of ``softplus(d_ap - d_an)`` over all valid triplets.

    Args:
        labels: ``(B,)`` identity labels.
        embeddings: ``(B, D)`` embeddings.
        margin: hinge margin (ignored when ``soft``).
        squared: use squared Euclidean distances.
        soft: use the soft-margin variant.

    Returns:
        float32 scalar.
    """
    labels, embeddings = _prepare(labels, embeddings)
    diff, valid = _triplet_grid(labels, pairwise_distances(embeddings, squared=squared))
    if soft:
        return _masked_mean(tf.nn.softplus(diff), valid)
    per = tf.maximum(diff + margin, 0.0)
    return _masked_mean(per, tf.logical_and(valid, per > 0.0))


def triplet_stats(labels, embeddings, margin: float = 0.2, squared: bool = False) -> dict[str, tf.Tensor]:
    """Batch health figures for logging (no gradient flows through them).

    Args:
        labels: ``(B,)`` identity labels.
        embeddings: ``(B, D)`` embeddings.
        margin: hinge margin used to call a triplet active.
        squared: use squared Euclidean distances.

    Returns:
        float32 scalars: ``active_fraction`` (share of valid triplets with
        ``d_ap - d_an + margin > 0``), ``mean_pos_dist`` (mean distance over positive pairs) and
        ``mean_neg_dist`` (mean distance over negative pairs); each is 0 when its set is empty.
    """
    labels, embeddings = _prepare(labels, tf.stop_gradient(embeddings))
    d = pairwise_distances(embeddings, squared=squared)
    pos, neg = _masks(labels)
    diff, valid = _triplet_grid(labels, d)
    active = tf.cast(tf.logical_and(valid, diff + margin > 0.0), tf.float32)
    return {
        "active_fraction": tf.reduce_sum(active) / tf.maximum(tf.reduce_sum(tf.cast(valid, tf.float32)), 1.0),
        "mean_pos_dist": _masked_mean(d, pos),
        "mean_neg_dist": _masked_mean(d, neg),
    }


TRIPLET_LOSSES: dict[str, TripletLoss] = {
    "batch_hard": batch_hard_triplet_loss,
    "semi_hard": semi_hard_triplet_loss,
    "batch_all": batch_all_triplet_loss,
}


def get_triplet_loss(name: str) -> TripletLoss:
    """The triplet loss registered under ``name`` (``batch_hard``, ``semi_hard`` or ``batch_all``).

    Raises:
        ValueError: for an unknown name.
    """
    try:
        return TRIPLET_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown triplet loss {name!r}; choose from {sorted(TRIPLET_LOSSES)}") from None
