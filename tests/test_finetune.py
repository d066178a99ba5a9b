"""Fine-tuning: the trunk/head split, the trainer on precomputed features, and the whole
``facever train --init`` recipe on synthetic folder-per-person photos (tiny model, stub detector)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import StubDetector, person_image


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from facever.training.network import build_encoder

    keras.utils.set_random_seed(0)
    return build_encoder("resnet_s", input_size=32, width=8)


def test_head_after_trunk_is_the_whole_model(tiny_model):
    from facever.training.finetune import split_model

    trunk, head = split_model(tiny_model, "s2b1_out")
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(head(trunk(x))), np.asarray(tiny_model(x)), atol=1e-6)
    with pytest.raises(ValueError, match="no layer"):
        split_model(tiny_model, "nope")


def test_head_shares_the_models_layers(tiny_model):
    from facever.training.finetune import split_model

    _, head = split_model(tiny_model, "s2b1_out")
    dense = next(l for l in head.layers if l.name == "head_dense")
    assert dense is tiny_model.get_layer("head_dense")


def _clustered_features(n_people: int, per: int, seed: int, shape=(2, 2, 2, 16)):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people,) + shape[1:])
    labels = np.repeat(np.arange(n_people), per)
    feats = centres[labels][:, None] + 0.3 * rng.normal(size=(len(labels), shape[0]) + shape[1:])
    return np.maximum(feats, 0).astype(np.float16), labels


def test_finetuner_trains_keeps_the_best_epoch_and_logs_figures():
    import keras

    from facever.training.finetune import FinetuneConfig, Finetuner

    keras.utils.set_random_seed(1)
    inp = keras.Input((2, 2, 16))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(128, use_bias=False)(x)
    head = keras.Model(inp, keras.layers.UnitNormalization()(x))
    feats, labels = _clustered_features(12, 6, seed=0)
    vfeats, vlabels = _clustered_features(6, 6, seed=1)
    cfg = FinetuneConfig(epochs=3, p=4, k=3, lr=1e-3, warmup_steps=1, cosface=0.5, focus_fraction=0.5)
    focus = labels < 6
    tuner = Finetuner(head, feats, labels, cfg, val=(vfeats, vlabels), focus=focus)
    history = tuner.fit()
    assert [h.epoch for h in history] == [0, 1, 2, 3]
    assert all(np.isfinite([h.loss, h.triplet, h.distill]).all() for h in history[1:])
    assert {"auc", "eer", "tar_far1e-2", "tar_far1e-3", "score"} <= set(history[0].val)
    best = max(history, key=lambda h: h.val["score"])
    assert tuner.best["epoch"] == best.epoch
    # the head now holds the best epoch's weights
    from facever.training.finetune import embed_features, val_score

    assert val_score(embed_features(head, vfeats), vlabels)["score"] == pytest.approx(best.val["score"], abs=1e-6)


def test_several_validation_sets_choose_on_the_mean_of_their_scores():
    import keras

    from facever.training.finetune import FinetuneConfig, Finetuner, embed_features, val_score

    keras.utils.set_random_seed(2)
    inp = keras.Input((2, 2, 16))
    x = keras.layers.Dense(128, use_bias=False)(keras.layers.Flatten()(inp))
    head = keras.Model(inp, keras.layers.UnitNormalization()(x))
    feats, labels = _clustered_features(12, 6, seed=0)
    sets = [_clustered_features(6, 6, seed=1), _clustered_features(5, 4, seed=3)]
    tuner = Finetuner(head, feats, labels, FinetuneConfig(epochs=2, p=4, k=3, lr=1e-3, warmup_steps=1), val=sets)
    history = tuner.fit()
    for h in history:
        assert h.val["score"] == pytest.approx((h.val["v0_score"] + h.val["v1_score"]) / 2)
    assert tuner.best["epoch"] == max(history, key=lambda h: h.val["score"]).epoch
    got = [val_score(embed_features(head, f), l)["score"] for f, l in sets]
    assert np.mean(got) == pytest.approx(tuner.best["score"], abs=1e-6)


def test_freeze_until_trains_only_the_layers_after_it():
    import keras

    from facever.training.finetune import FinetuneConfig, Finetuner

    inp = keras.Input((2, 2, 16))
    x = keras.layers.Flatten(name="flat")(inp)
    x = keras.layers.Dense(32, name="first")(x)
    x = keras.layers.Dense(128, use_bias=False, name="last")(x)
    head = keras.Model(inp, keras.layers.UnitNormalization()(x))
    before = head.get_layer("first").get_weights()[0].copy()
    feats, labels = _clustered_features(8, 4, seed=2)
    Finetuner(head, feats, labels, FinetuneConfig(epochs=1, p=4, k=2, lr=1e-2, freeze_until="first", distill=0.0)).fit()
    np.testing.assert_array_equal(head.get_layer("first").get_weights()[0], before)


def test_finetune_from_folders_writes_a_calibrated_bundle(tiny_bundle_dir, tmp_path):
    import cv2

    from facever.bundle import load_bundle, read_metadata
    from facever.training.finetune import FinetuneConfig
    from facever.training.finetune_recipe import finetune_from_folders

    root = tmp_path / "people"
    for person in range(10):
        folder = root / f"p{person:02d}"
        folder.mkdir(parents=True)
        for v in range(4):
            cv2.imwrite(str(folder / f"{v}.png"), cv2.cvtColor(person_image(person, v + 1), cv2.COLOR_RGB2BGR))
    cfg = FinetuneConfig(cut="s2b1_out", epochs=1, p=4, k=2, warmup_steps=1)
    report = finetune_from_folders(tiny_bundle_dir, [root], tmp_path / "out", cfg, val_fraction=0.3,
                                   detector=StubDetector())
    assert report["images"] == 40 and report["val_people"] == 3 and report["train_people"] == 7
    assert set(report["before"]) >= {"auc", "tar_far1e-3"} and report["best_epoch"] in (0, 1)
    bundle = load_bundle(tmp_path / "out")
    assert bundle.version == report["version"]
    # new weights exactly when an epoch beat the start on the held-out people (export is deterministic)
    assert (bundle.version != load_bundle(tiny_bundle_dir).version) == (report["best_epoch"] > 0)
    meta = read_metadata(tmp_path / "out")
    assert meta.threshold is not None and meta.open_set is not None
    assert meta.training["init"]["version"] == load_bundle(tiny_bundle_dir).version
    assert sorted(meta.training["data"]["val_people"]) == meta.training["data"]["val_people"]
    # the starting bundle is untouched
    assert read_metadata(tiny_bundle_dir).threshold.value == 0.8


def test_too_few_people_is_a_clear_error(tiny_bundle_dir, tmp_path):
    import cv2

    from facever.training.finetune_recipe import finetune_from_folders

    root = tmp_path / "people"
    for person in range(3):
        (root / f"p{person}").mkdir(parents=True)
        for v in range(2):
            cv2.imwrite(str(root / f"p{person}" / f"{v}.png"), person_image(person, v + 1))
    with pytest.raises(ValueError, match="people with two or more photos"):
        finetune_from_folders(tiny_bundle_dir, [root], tmp_path / "out", detector=StubDetector())
    assert not (tmp_path / "out").exists()


def test_few_people_are_all_taken_per_batch():
    """A user's own small dataset (fewer people than P) still trains: P shrinks, K grows."""
    import keras

    from facever.training.finetune import FinetuneConfig, Finetuner

    inp = keras.Input((2, 2, 16))
    x = keras.layers.Dense(128, use_bias=False)(keras.layers.Flatten()(inp))
    head = keras.Model(inp, keras.layers.UnitNormalization()(x))
    feats, labels = _clustered_features(5, 8, seed=3)
    history = Finetuner(head, feats, labels, FinetuneConfig(epochs=1, p=32, k=4, lr=1e-3)).fit()
    assert len(history) == 2 and np.isfinite(history[1].loss)
