"""Training and inference throughput (images/s) of encoder candidates on this CPU.

Usage: python benchmarks/encoder_speed.py [--steps 8] [--batch 128] [--candidates resnet_s:96:32,mobile_s:96:32]
Training: one full triplet-loss step (forward, batch-hard loss, backward, AdamW) per batch on random
data; inference: forward pass, batch 64, and single-image latency. Prints one line per candidate.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def measure(arch: str, size: int, width: int, steps: int, batch: int) -> dict:
    import keras
    import tensorflow as tf

    from facever.training.losses import batch_hard_triplet_loss
    from facever.training.network import build_encoder

    model = build_encoder(arch, size, 128, width)
    opt = keras.optimizers.AdamW(1e-3)
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    y = tf.constant(np.repeat(np.arange(batch // 4), 4))

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = batch_hard_triplet_loss(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    step(x, y)  # trace
    t0 = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    train_ips = steps * batch / (time.perf_counter() - t0)
    infer = tf.function(lambda v: model(v, training=False))
    xb = x[:64]
    infer(xb)
    t0 = time.perf_counter()
    for _ in range(steps):
        infer(xb)
    infer_ips = steps * 64 / (time.perf_counter() - t0)
    one = x[:1]
    infer(one)
    t0 = time.perf_counter()
    for _ in range(50):
        infer(one)
    single_ms = (time.perf_counter() - t0) / 50 * 1000
    return {"candidate": f"{arch}@{size}w{width}", "params_M": model.count_params() / 1e6,
            "train_img_s": train_ips, "infer_img_s": infer_ips, "single_ms": single_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--candidates", default="resnet_s:96:32,resnet_s:80:32,resnet_s:64:32,mobile_s:96:32")
    args = ap.parse_args()
    print(f"{'candidate':<20} {'params(M)':>9} {'train img/s':>11} {'infer img/s':>11} {'1 img ms':>9}")
    for spec in args.candidates.split(","):
        arch, size, width = spec.split(":")
        r = measure(arch, int(size), int(width), args.steps, args.batch)
        print(f"{r['candidate']:<20} {r['params_M']:>9.2f} {r['train_img_s']:>11.1f} {r['infer_img_s']:>11.1f} {r['single_ms']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
