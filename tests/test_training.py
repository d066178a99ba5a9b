"""Training on a synthetic identity dataset (CI-sized): the loss falls, held-out verification rises,
checkpoints resume, distillation and every mining strategy run.

Each synthetic "person" is a procedural pattern: a few coloured ellipses and lines at
identity-specific places on a 32×32 canvas. Every image of a person redraws it with nuisances (a
shift of up to 2 px, background level, white balance, contrast, brightness, pixel noise), so telling
people apart on *unseen* identities needs features that ignore those nuisances, which the training
has to learn (a random network scores a held-out ROC AUC of about 0.7, a trained one above 0.9).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facever.training.scratch import EpochLog, Trainer, TrainConfig  # noqa: E402

pytestmark = pytest.mark.slow

SIZE = 32
SHIFT = 2.0
N_PEOPLE, N_TRAIN, PER_PERSON = 40, 30, 6


def _pattern(person: int) -> list[tuple]:
    rng = np.random.default_rng(1000 + person)
    shapes = []
    for _ in range(4):
        colour = tuple(int(c) for c in rng.integers(30, 256, 3))
        if rng.integers(0, 2) == 0:
            shapes.append(("ellipse", rng.uniform(6, 26, 2), rng.uniform(2, 7, 2), float(rng.uniform(0, 180)), colour))
        else:
            shapes.append(("line", rng.uniform(2, 30, 2), rng.uniform(2, 30, 2), 0.0, colour))
    return shapes


def draw_person(person: int, rng: np.random.Generator) -> np.ndarray:
    """One ``(32, 32, 3)`` uint8 image of ``person`` with random nuisances."""
    img = np.full((SIZE, SIZE, 3), int(rng.integers(20, 90)), np.uint8)
    shift = rng.uniform(-SHIFT, SHIFT, 2)
    fixed = lambda v: tuple(int(round(c * 4)) for c in v)  # noqa: E731  (cv2 sub-pixel, shift=2)
    for kind, a, b, angle, colour in _pattern(person):
        if kind == "ellipse":
            cv2.ellipse(img, fixed(a + shift), fixed(b), angle, 0, 360, colour, -1, cv2.LINE_AA, shift=2)
        else:
            cv2.line(img, fixed(a + shift), fixed(b + shift), colour, 2, cv2.LINE_AA, shift=2)
    x = img.astype(np.float32) * rng.uniform(0.8, 1.2, 3)
    x = (x - x.mean()) * rng.uniform(0.6, 1.4) + x.mean() + rng.uniform(-60, 60)
    x += rng.normal(0, 12, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def make_data(seed: int = 0) -> dict:
    """Crops/labels of the training people and validation pairs over the held-out people."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_PEOPLE), PER_PERSON)
    crops = np.stack([draw_person(int(p), rng) for p in labels])
    train = labels < N_TRAIN
    held = np.flatnonzero(~train)
    i, j = np.triu_indices(len(held), 1)
    a, b = held[i], held[j]
    same = labels[a] == labels[b]
    keep = np.concatenate([np.flatnonzero(same), rng.choice(np.flatnonzero(~same), 300, replace=False)])
    a, b, same = a[keep], b[keep], same[keep]
    return {"crops": crops[train], "labels": labels[train], "validation": (crops[a], crops[b], same),
            "held_crops": crops[held], "held_labels": labels[held]}


@pytest.fixture(scope="module")
def data():
    return make_data()


MAIN = TrainConfig(input_size=SIZE, width=8, dropout=0.0, epochs=6, steps_per_epoch=30, p=8, k=4,
                   extra_singletons=0, mining="batch_hard", soft_margin=True, lr=5e-3, warmup_steps=5,
                   augment=True, seed=0)


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """The main run, interrupted after epoch 2 and resumed by a new Trainer to the last epoch."""
    out = tmp_path_factory.mktemp("run")
    first = Trainer(MAIN, data["crops"], data["labels"], out_dir=out, validation=data["validation"])
    before = first.validate()

    def stop_after_two(log: EpochLog) -> None:
        if log.epoch == 2:
            raise _Stop

    with pytest.raises(_Stop):
        first.fit(on_epoch=stop_after_two, resume=True)  # resume without a checkpoint: a fresh start
    interrupted = {"history": list(first.history), "epoch": first.epoch,
                   "emb": first.embed(data["held_crops"][:8]), "iterations": int(first.optimizer.iterations)}

    second = Trainer(MAIN, data["crops"], data["labels"], out_dir=out, validation=data["validation"])
    loaded = second.load_checkpoint()
    resumed = {"loaded": loaded, "epoch": second.epoch, "emb": second.embed(data["held_crops"][:8]),
               "iterations": int(second.optimizer.iterations), "history": list(second.history)}
    epochs_run, steps = [], []
    second.fit(on_epoch=lambda log: epochs_run.append(log.epoch),
               on_step=lambda s, total, vals: steps.append(vals), resume=True)
    return {"out": out, "before": before, "interrupted": interrupted, "resumed": resumed,
            "trainer": second, "epochs_run": epochs_run, "steps": steps}


def test_loss_falls_and_heldout_auc_rises(run):
    hist = run["trainer"].history
    assert [h.epoch for h in hist] == list(range(1, MAIN.epochs + 1))
    assert all(np.isfinite([h.loss, h.triplet, h.distill]).all() for h in hist)
    assert hist[-1].loss < 0.9 * hist[0].loss
    assert hist[-1].triplet == pytest.approx(hist[-1].loss, abs=1e-6) and hist[-1].distill == 0.0
    before, after = run["before"]["roc_auc"], hist[-1].val["roc_auc"]
    print(f"held-out ROC AUC {before:.3f} -> {after:.3f}; loss {hist[0].loss:.3f} -> {hist[-1].loss:.3f}")
    assert after >= 0.85, (before, [h.val["roc_auc"] for h in hist])
    assert after >= before + 0.15
    assert after == pytest.approx(run["trainer"].validate()["roc_auc"])  # validate() is deterministic


def test_heldout_auc_with_own_embeddings(run, data):
    from sklearn.metrics import roc_auc_score

    emb = run["trainer"].embed(data["held_crops"])
    assert emb.shape == (len(data["held_crops"]), MAIN.embedding_dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    i, j = np.triu_indices(len(emb), 1)
    same = data["held_labels"][i] == data["held_labels"][j]
    d = np.linalg.norm(emb[i] - emb[j], axis=1)
    assert roc_auc_score(same, -d) >= 0.85
    assert d[same].mean() < d[~same].mean()


def test_history_logs_triplet_health(run):
    hist = run["trainer"].history
    for h in hist:
        assert 0.0 <= h.active_fraction <= 1.0
        assert 0.0 <= h.mean_pos_dist <= 2.0 and 0.0 <= h.mean_neg_dist <= 2.0
        assert h.images_per_s > 0 and h.seconds > 0
        assert {"accuracy", "threshold", "roc_auc", "tar_at_far_1e-3", "mean_genuine", "mean_impostor"} <= set(h.val)
    assert hist[-1].active_fraction < hist[0].active_fraction
    assert hist[-1].mean_pos_dist < hist[0].mean_pos_dist
    assert hist[-1].mean_pos_dist < hist[-1].mean_neg_dist
    assert set(run["steps"][0]) == {"loss", "triplet", "distill", "active", "d_ap", "d_an"}
    assert len(run["steps"]) == (MAIN.epochs - 2) * MAIN.steps_per_epoch


def test_checkpoint_and_resume(run, data):
    ck = run["out"] / "checkpoint"
    assert {"model.weights.h5", "optimizer.npz", "state.json"} <= {p.name for p in ck.iterdir()}
    it, re_ = run["interrupted"], run["resumed"]
    assert it["epoch"] == 2 and it["iterations"] == 2 * MAIN.steps_per_epoch
    assert re_["loaded"] and re_["epoch"] == 2 and re_["iterations"] == it["iterations"]
    assert re_["history"] == it["history"]  # history survives the JSON round trip exactly
    np.testing.assert_allclose(re_["emb"], it["emb"], atol=1e-6)  # same weights (and BN statistics)
    assert run["epochs_run"] == list(range(3, MAIN.epochs + 1))
    trainer = run["trainer"]
    assert trainer.epoch == MAIN.epochs and trainer.history[:2] == it["history"]
    assert int(trainer.optimizer.iterations) == MAIN.epochs * MAIN.steps_per_epoch

    # the finished run reloads at its last epoch and has nothing left to do
    again = Trainer(MAIN, data["crops"], data["labels"], out_dir=run["out"])
    assert again.fit(resume=True) == trainer.history and again.epoch == MAIN.epochs

    other = dataclasses.replace(MAIN, margin=0.3)
    with pytest.raises(ValueError, match="different settings"):
        Trainer(other, data["crops"], data["labels"], out_dir=run["out"]).fit(resume=True)


def test_trainer_rejects_bad_input(data, tmp_path):
    with pytest.raises(ValueError, match="crops must be"):
        Trainer(dataclasses.replace(MAIN, input_size=48), data["crops"], data["labels"], out_dir=tmp_path)
    with pytest.raises(ValueError, match="differ in length"):
        Trainer(MAIN, data["crops"], data["labels"][:-1], out_dir=tmp_path)


# batch_hard is the main run above
@pytest.mark.parametrize("mining", ["semi_hard", "batch_all"])
def test_mining_strategies_with_distillation(mining, data, tmp_path):
    """A short run per strategy, distilling from a teacher with missing (NaN) rows: every figure
    stays finite and the distillation term falls."""
    rng = np.random.default_rng(1)
    labels = data["labels"]
    centres = rng.normal(size=(N_TRAIN, 128))
    teacher = centres[labels] + rng.normal(0, 0.1, (len(labels), 128))
    teacher[::4] = np.nan  # no target for a quarter of the images
    cfg = dataclasses.replace(MAIN, mining=mining, soft_margin=False, epochs=1, steps_per_epoch=12, lr=1e-2,
                              warmup_steps=2, augment=False, distill_weight=2.0, distill_pair_weight=0.5)
    trainer = Trainer(cfg, data["crops"], labels, out_dir=tmp_path, teacher=teacher)
    assert np.isfinite(trainer.teacher).all() and trainer.teacher_mask.sum() == len(labels) - len(labels[::4])
    steps = []
    hist = trainer.fit(on_step=lambda s, total, vals: steps.append(vals))
    assert len(steps) == 12
    for vals in steps:
        assert all(np.isfinite(v) for v in vals.values()), vals
        assert vals["loss"] == pytest.approx(vals["triplet"] + vals["distill"], rel=1e-4, abs=1e-5)
    distill = [v["distill"] for v in steps]
    assert np.mean(distill[-3:]) < 0.85 * np.mean(distill[:3])
    assert hist[0].distill > 0 and np.isfinite(hist[0].loss) and hist[0].val == {}


# ---- augmentation -----------------------------------------------------------------------------------

def test_augment_batch_keeps_shape_and_range():
    from facever.training.datasets import augment_batch

    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, SIZE, SIZE, 3)).astype(np.float32)
    y = augment_batch(tf.constant(x)).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= 0.0 and y.max() <= 255.0
    assert np.abs(y - x).mean() > 5.0
    # extremes are clipped into range
    z = augment_batch(tf.constant(np.full((4, SIZE, SIZE, 3), 255.0, np.float32)), colour=0.9).numpy()
    assert z.min() >= 0.0 and z.max() <= 255.0


def test_augment_batch_with_only_flips():
    from facever.training.datasets import augment_batch

    tf.random.set_seed(1)
    x = np.random.default_rng(1).uniform(0, 255, (32, SIZE, SIZE, 3)).astype(np.float32)
    y = augment_batch(tf.constant(x), max_angle_deg=0.0, max_shift=0.0, scale_range=(1.0, 1.0), max_shear=0.0,
                      colour=0.0, grey_prob=0.0).numpy()
    same = np.abs(y - x).max(axis=(1, 2, 3)) < 1e-2
    flipped = np.abs(y - x[:, :, ::-1]).max(axis=(1, 2, 3)) < 1e-2
    assert (same | flipped).all()
    assert same.any() and flipped.any()


# ---- open-set calibration (recipe) ------------------------------------------------------------------

def test_identify_threshold_meets_its_fpir_on_synthetic_clusters():
    from facever.training.calibration import calibrate_identify_threshold

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 16))
    labels = np.concatenate([np.repeat(np.arange(40), 3), np.arange(40, 60)])  # 40 known people, 20 unknown
    emb = centres[labels] + rng.normal(0, 0.15, (len(labels), 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    t = calibrate_identify_threshold(emb, labels, target_fpir=0.05)
    assert t.n_genuine == 80 and t.n_impostor == 20 and t.target == "fpir=0.05"
    assert t.far <= 0.05 and 0.0 < t.value < 2.0
    assert 0.0 <= t.frr < 0.5  # well-separated clusters: most known probes are identified
    # a looser target accepts at least as many known probes
    assert calibrate_identify_threshold(emb, labels, target_fpir=0.5).frr <= t.frr
    # 20 one-image people cannot resolve 2%: 30% of the known people are then held out as strangers too
    strict = calibrate_identify_threshold(emb, labels, target_fpir=0.02)
    assert strict.n_impostor == 20 + 12 * 3 and strict.far <= 0.02
    with pytest.raises(ValueError, match="cannot resolve"):
        calibrate_identify_threshold(emb[:60], labels[:60], target_fpir=0.001)  # too few strangers even then


def test_indexed_validation_equals_pairwise_validation(data, tmp_path):
    """``(crops, i, j, same)`` embeds each image once and gives the same figures as crop pairs."""
    a, b, same = data["validation"]
    crops = np.concatenate([a, b])
    i, j = np.arange(len(a)), len(a) + np.arange(len(b))
    cfg = dataclasses.replace(MAIN, epochs=1, steps_per_epoch=1)
    pairwise = Trainer(cfg, data["crops"], data["labels"], out_dir=tmp_path / "a", validation=(a, b, same)).validate()
    indexed = Trainer(cfg, data["crops"], data["labels"], out_dir=tmp_path / "b", validation=(crops, i, j, same)).validate()
    assert pairwise.keys() == indexed.keys() and 0.0 <= indexed["roc_auc"] <= 1.0
    for key in pairwise:
        assert indexed[key] == pytest.approx(pairwise[key], abs=1e-5)
