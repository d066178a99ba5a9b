"""The learning-rate schedule of every training run: linear warm-up, then cosine decay to a floor.

One schedule for the from-scratch trainer (:mod:`facever.training.scratch`) and fine-tuning
(:mod:`facever.training.finetune`), evaluated in TensorFlow on the optimizer's step counter.
"""

from __future__ import annotations

import numpy as np


def warmup_cosine(step, base: float, warmup: int, total: int, min_ratio: float):
    """Learning rate at optimizer step ``step`` (0-based), a float32 scalar tensor.

    ``base · min(1, (step + 1) / warmup)`` during the warm-up, then a cosine from ``base`` down to
    ``min_ratio · base`` at step ``total``, constant after it.

    Args:
        step: the step counter (an int tensor or variable, or a number).
        base: peak learning rate.
        warmup: warm-up steps (at least 1 is used).
        total: steps of the whole run (warm-up included).
        min_ratio: final learning rate as a fraction of ``base``, in [0, 1].
    """
    import tensorflow as tf

    warm = max(1, warmup)
    step = tf.cast(step, tf.float32)
    w = tf.minimum(1.0, (step + 1.0) / warm)
    progress = tf.clip_by_value((step - warm) / max(1.0, total - warm), 0.0, 1.0)
    return base * w * (min_ratio + (1 - min_ratio) * 0.5 * (1.0 + tf.cos(np.pi * progress)))


def keras_schedule(base: float, warmup: int, total: int, min_ratio: float):
    """:func:`warmup_cosine` as a ``keras.optimizers.schedules.LearningRateSchedule`` (pass it as an
    optimizer's ``learning_rate``)."""
    import keras

    class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return warmup_cosine(step, base, warmup, total, min_ratio)

        def get_config(self) -> dict:
            return {"base": base, "warmup": warmup, "total": total, "min_ratio": min_ratio}

    return WarmupCosine()
