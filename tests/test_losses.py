"""Triplet losses against plain NumPy loop references, plus edge cases and gradients."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facever.training.losses import (  # noqa: E402
    TRIPLET_LOSSES,
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    get_triplet_loss,
    pairwise_distances,
    semi_hard_triplet_loss,
    triplet_stats,
)

VARIANTS = ["batch_hard", "semi_hard", "batch_all"]
TOL = dict(rtol=1e-5, atol=1e-5)


# -- NumPy references (explicit loops, float64) -----------------------------------------------
def ref_distances(e: np.ndarray, squared: bool) -> np.ndarray:
    e = np.asarray(e, np.float64)
    b = len(e)
    d = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            s = float(np.sum((e[i] - e[j]) ** 2))
            d[i, j] = s if squared else np.sqrt(s)
    return d


def ref_value(d_ap: float, d_an: float, margin: float, soft: bool) -> float:
    return float(np.logaddexp(0.0, d_ap - d_an)) if soft else max(d_ap - d_an + margin, 0.0)


def _pos_neg(labels, a):
    pos = [p for p in range(len(labels)) if p != a and labels[p] == labels[a]]
    neg = [n for n in range(len(labels)) if labels[n] != labels[a]]
    return pos, neg


def ref_batch_hard(labels, e, margin=0.2, squared=False, soft=False) -> float:
    d = ref_distances(e, squared)
    losses = []
    for a in range(len(labels)):
        pos, neg = _pos_neg(labels, a)
        if pos and neg:
            losses.append(ref_value(max(d[a, p] for p in pos), min(d[a, n] for n in neg), margin, soft))
    return float(np.mean(losses)) if losses else 0.0


def ref_semi_hard(labels, e, margin=0.2, squared=False, soft=False) -> float:
    d = ref_distances(e, squared)
    losses = []
    for a in range(len(labels)):
        pos, neg = _pos_neg(labels, a)
        if not neg:
            continue
        for p in pos:
            farther = [d[a, n] for n in neg if d[a, n] > d[a, p]]
            d_an = min(farther) if farther else min(d[a, n] for n in neg)
            losses.append(ref_value(d[a, p], d_an, margin, soft))
    return float(np.mean(losses)) if losses else 0.0


def ref_batch_all(labels, e, margin=0.2, squared=False, soft=False) -> float:
    d = ref_distances(e, squared)
    values = []
    for a in range(len(labels)):
        pos, neg = _pos_neg(labels, a)
        for p in pos:
            for n in neg:
                values.append(ref_value(d[a, p], d[a, n], margin, soft))
    if soft:
        return float(np.mean(values)) if values else 0.0
    active = [v for v in values if v > 0]
    return float(np.sum(active) / len(active)) if active else 0.0


def ref_stats(labels, e, margin=0.2, squared=False) -> dict[str, float]:
    d = ref_distances(e, squared)
    n_valid = n_active = 0
    pos_d, neg_d = [], []
    for a in range(len(labels)):
        pos, neg = _pos_neg(labels, a)
        pos_d += [d[a, p] for p in pos]
        neg_d += [d[a, n] for n in neg]
        for p in pos:
            for n in neg:
                n_valid += 1
                n_active += d[a, p] - d[a, n] + margin > 0
    return {"active_fraction": n_active / max(n_valid, 1),
            "mean_pos_dist": float(np.mean(pos_d)) if pos_d else 0.0,
            "mean_neg_dist": float(np.mean(neg_d)) if neg_d else 0.0}


REFS = {"batch_hard": ref_batch_hard, "semi_hard": ref_semi_hard, "batch_all": ref_batch_all}


def random_batch(seed: int, b: int = 12, dim: int = 8):
    """Labels from 3–4 identities (sometimes one appears once) around spread-out centres."""
    rng = np.random.default_rng(seed)
    n_ids = 3 + seed % 2
    labels = rng.integers(0, n_ids, size=b)
    if seed % 3 == 0:
        labels[-1] = n_ids  # a singleton: never an anchor, still a negative
    centres = rng.normal(size=(n_ids + 1, dim)) * 0.6
    e = (centres[labels] + rng.normal(size=(b, dim)) * 0.4).astype(np.float32)
    return labels.astype(np.int64), e


def value(x) -> float:
    assert x.dtype == tf.float32 and x.shape == ()
    return float(x.numpy())


def grads_of(fn, labels, e, **kwargs):
    e = tf.constant(e)
    with tf.GradientTape() as tape:
        tape.watch(e)
        loss = fn(tf.constant(labels), e, **kwargs)
    g = tape.gradient(loss, e)
    assert g is not None
    return loss, g.numpy()


# -- distances ----------------------------------------------------------------------------------
@pytest.mark.parametrize("squared", [False, True])
def test_pairwise_distances_match_scipy(squared):
    spatial = pytest.importorskip("scipy.spatial.distance")
    e = np.random.default_rng(0).normal(size=(10, 6)).astype(np.float32)
    e[3] = e[7]  # duplicate rows → exact zero off the diagonal
    d = pairwise_distances(tf.constant(e), squared=squared).numpy()
    expected = spatial.cdist(e.astype(np.float64), e.astype(np.float64), "sqeuclidean" if squared else "euclidean")
    assert d.dtype == np.float32 and d.shape == (10, 10)
    np.testing.assert_allclose(d, expected, **TOL)
    assert np.all(np.diag(d) == 0.0) and d[3, 7] == 0.0 and d[7, 3] == 0.0


def test_pairwise_distance_gradient_finite_at_zero():
    e = tf.constant(np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], np.float32))
    with tf.GradientTape() as tape:
        tape.watch(e)
        total = tf.reduce_sum(pairwise_distances(e))
    g = tape.gradient(total, e).numpy()
    assert np.all(np.isfinite(g))
    # rows 0 and 1 are identical: only their distances to row 2 contribute, with unit gradients
    np.testing.assert_allclose(g[0], 2 * np.array([1.0, 2.0]) / np.sqrt(5.0), **TOL)


# -- against the references ---------------------------------------------------------------------
@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("squared", [False, True])
def test_matches_numpy_reference(name, soft, squared):
    fn, ref = get_triplet_loss(name), REFS[name]
    for seed in range(4):
        labels, e = random_batch(seed)
        for margin in (0.2, 1.0):
            got = value(fn(tf.constant(labels), tf.constant(e), margin=margin, squared=squared, soft=soft))
            np.testing.assert_allclose(got, ref(labels, e, margin, squared, soft), **TOL,
                                       err_msg=f"{name} seed={seed} margin={margin}")


@pytest.mark.parametrize("squared", [False, True])
def test_triplet_stats_match_reference(squared):
    for seed in range(3):
        labels, e = random_batch(seed)
        got = {k: value(v) for k, v in triplet_stats(labels, e, margin=0.5, squared=squared).items()}
        expected = ref_stats(labels, e, 0.5, squared)
        assert set(got) == set(expected)
        for key in expected:
            np.testing.assert_allclose(got[key], expected[key], **TOL, err_msg=key)
    assert 0.0 < expected["active_fraction"] < 1.0  # the batches exercise both cases


def test_inside_tf_function_with_dynamic_batch():
    sig = [tf.TensorSpec([None], tf.int64), tf.TensorSpec([None, 8], tf.float32)]
    for name, fn in TRIPLET_LOSSES.items():
        graph_fn = tf.function(lambda y, x, fn=fn: fn(y, x, margin=0.3), input_signature=sig)
        for seed in (1, 2):
            labels, e = random_batch(seed, b=10 + seed)
            np.testing.assert_allclose(value(graph_fn(labels, e)), REFS[name](labels, e, 0.3), **TOL, err_msg=name)
    stats_fn = tf.function(lambda y, x: triplet_stats(y, x), input_signature=sig)
    labels, e = random_batch(1)
    np.testing.assert_allclose(value(stats_fn(labels, e)["active_fraction"]),
                               ref_stats(labels, e)["active_fraction"], **TOL)


# -- edge cases ---------------------------------------------------------------------------------
def test_anchor_without_positive_is_excluded():
    labels = np.array([0, 0, 1, 1, 2])
    e = np.array([[0.0], [0.5], [0.6], [1.0], [0.3]], np.float32)
    # anchors 0..3: 0.5-0.3+0.2, 0.5-0.1+0.2, 0.4-0.1+0.2, 0.4-0.5+0.2; anchor 4 has no positive
    np.testing.assert_allclose(value(batch_hard_triplet_loss(labels, e)), 0.4, **TOL)
    for name, fn in TRIPLET_LOSSES.items():
        np.testing.assert_allclose(value(fn(labels, e)), REFS[name](labels, e), **TOL, err_msg=name)


def test_hand_computed_mining_with_semi_hard_fallback_and_tie():
    labels = np.array([0, 0, 1, 1])
    e = np.array([[0.0], [10.0], [2.0], [6.0]], np.float32)
    # (a,p) → d_ap, chosen d_an: (0,1) 10, no farther negative → hardest 2; (1,0) 10 → hardest 4;
    # (2,3) 4 → 8; (3,2) 4 → 6 (d(3,1) = 4 ties d_ap, so is not semi-hard)
    np.testing.assert_allclose(value(semi_hard_triplet_loss(labels, e, margin=5.0)), (13 + 11 + 1 + 3) / 4, **TOL)
    np.testing.assert_allclose(value(batch_hard_triplet_loss(labels, e, margin=5.0)), (13 + 11 + 7 + 5) / 4, **TOL)
    np.testing.assert_allclose(value(batch_all_triplet_loss(labels, e, margin=5.0)), 56 / 8, **TOL)
    np.testing.assert_allclose(value(batch_all_triplet_loss(labels, e, margin=-2.0)), (6 + 2 + 4) / 3, **TOL)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("labels", [[3, 3, 3, 3], [0, 1, 2, 3]], ids=["one_person", "all_singletons"])
def test_no_valid_triplet_gives_zero_and_zero_gradient(name, labels):
    e = np.random.default_rng(1).normal(size=(4, 5)).astype(np.float32)
    for soft in (False, True):
        loss, g = grads_of(get_triplet_loss(name), np.array(labels), e, soft=soft)
        assert value(loss) == 0.0
        assert np.all(g == 0.0)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("squared", [False, True])
def test_ties_and_duplicates_have_finite_gradients(name, squared):
    rng = np.random.default_rng(5)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    e = rng.normal(size=(8, 4)).astype(np.float32)
    e[1] = e[0]  # zero positive distance
    e[5] = e[3]  # zero negative distance
    e[6] = -e[7]  # equal norms → tied distances to the origin-symmetric point
    e[2] = 0.0
    for soft in (False, True):
        loss, g = grads_of(get_triplet_loss(name), labels, e, squared=squared, soft=soft)
        assert np.all(np.isfinite(g)) and np.isfinite(value(loss))
        np.testing.assert_allclose(value(loss), REFS[name](labels, e, 0.2, squared, soft), **TOL)


@pytest.mark.parametrize("name", VARIANTS)
def test_float16_inputs_give_float32(name):
    labels, e = random_batch(2)
    e16 = e.astype(np.float16)
    fn = get_triplet_loss(name)
    got = fn(tf.constant(labels), tf.constant(e16))
    assert got.dtype == tf.float32
    np.testing.assert_allclose(value(got), value(fn(labels, e16.astype(np.float32))), **TOL)
    np.testing.assert_allclose(value(got), value(fn(labels, e)), rtol=1e-2, atol=1e-2)
    stats = triplet_stats(labels, tf.constant(e16))
    assert all(v.dtype == tf.float32 for v in stats.values())


def test_well_separated_batch_has_zero_loss():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 3)
    centres = np.eye(4, 6) * 10.0
    e = (centres[labels] + rng.normal(size=(12, 6)) * 0.01).astype(np.float32)
    for name, fn in TRIPLET_LOSSES.items():
        for squared in (False, True):
            assert value(fn(labels, e, margin=0.2, squared=squared)) == 0.0, name
    stats = triplet_stats(labels, e)
    assert value(stats["active_fraction"]) == 0.0
    assert value(stats["mean_pos_dist"]) < 0.1 < 10.0 < value(stats["mean_neg_dist"])


@pytest.mark.parametrize("squared", [False, True])
def test_collapsed_batch(squared):
    labels = np.repeat(np.arange(3), 4)
    e = np.ones((12, 8), np.float32)
    for name, fn in TRIPLET_LOSSES.items():
        loss, g = grads_of(fn, labels, e, margin=0.3, squared=squared)
        np.testing.assert_allclose(value(loss), 0.3, **TOL, err_msg=name)
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(value(fn(labels, e, soft=True, squared=squared)), np.log(2.0), **TOL)
    assert value(triplet_stats(labels, e)["active_fraction"]) == 1.0


def test_gradient_pulls_positives_together():
    labels, e = random_batch(1)
    for name, fn in TRIPLET_LOSSES.items():
        loss, g = grads_of(fn, labels, e, margin=1.0)
        stepped = e - 0.01 * g
        assert value(fn(labels, stepped, margin=1.0)) < value(loss), name


def test_keras_compile_fit_one_step():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype(np.float32)
    y = np.repeat(np.arange(4), 4)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    model.compile(optimizer="sgd", loss=batch_hard_triplet_loss)
    hist = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(hist.history["loss"][0])


def test_registry():
    assert set(TRIPLET_LOSSES) == {"batch_hard", "semi_hard", "batch_all"}
    assert get_triplet_loss("semi_hard") is semi_hard_triplet_loss
    assert get_triplet_loss("batch_all") is batch_all_triplet_loss
    with pytest.raises(ValueError, match="unknown triplet loss 'hardest'"):
        get_triplet_loss("hardest")
