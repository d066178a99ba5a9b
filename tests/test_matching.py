"""Distances, FAR/FRR, threshold calibration and the logistic verification head (NumPy only)."""

import json

import numpy as np
import pytest

from facever.matching import (
    ThresholdCalibrator,
    VerificationHead,
    best_accuracy_threshold,
    distance,
    distance_matrix,
    rates_at,
)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _pairs(seed: int, n_gen: int = 60, n_imp: int = 240, ties: bool = False):
    """Overlapping genuine (~0.7) and impostor (~1.2) distances; ``ties`` rounds them to 0.05."""
    rng = np.random.default_rng(seed)
    d = np.concatenate([rng.normal(0.7, 0.2, n_gen), rng.normal(1.2, 0.2, n_imp)]).clip(0, 2)
    if ties:
        d = np.round(d * 20) / 20
    same = np.concatenate([np.ones(n_gen, bool), np.zeros(n_imp, bool)])
    perm = rng.permutation(len(d))
    return d[perm], same[perm]


def _brute_rates(tau, d, same):
    acc = d <= tau
    return acc[~same].mean(), (~acc[same]).mean()


def _candidates(d):
    """Every distinct decision: below all, midpoints between distinct values, all accepted."""
    u = np.unique(d)
    return np.concatenate([[u[0] - 1e-6], (u[1:] + u[:-1]) / 2, [u[-1]]])


# ---- distances --------------------------------------------------------------------------------

def test_distance_and_matrix_match_numpy():
    rng = np.random.default_rng(0)
    q, g = _unit(rng.normal(size=(5, 16))), _unit(rng.normal(size=(7, 16)))
    brute = np.linalg.norm(q[:, None, :] - g[None, :, :], axis=-1)
    np.testing.assert_allclose(distance_matrix(q, g), brute, atol=1e-5)
    np.testing.assert_allclose(distance(q[:, None, :], g[None, :, :]), brute, atol=1e-5)
    np.testing.assert_allclose(distance(q[0], g[0]), np.linalg.norm(q[0] - g[0]), atol=1e-6)
    assert distance_matrix(q, q).diagonal() == pytest.approx(np.zeros(5), abs=1e-3)
    assert distance_matrix(q, -q).diagonal() == pytest.approx(np.full(5, 2.0), abs=1e-5)
    assert distance_matrix(q, g).shape == (5, 7) and (distance_matrix(q, g) >= 0).all()


# ---- rates_at -----------------------------------------------------------------------------------

def test_rates_at_counts_by_hand():
    d = np.array([0.1, 0.4, 0.5, 0.9, 0.3, 1.2])
    same = np.array([1, 1, 1, 0, 0, 0])
    assert rates_at(0.45, d, same) == pytest.approx((1 / 3, 1 / 3))
    assert rates_at(0.5, d, same) == pytest.approx((1 / 3, 0.0))  # distance == τ is accepted
    assert rates_at(-1.0, d, same) == (0.0, 1.0)
    assert rates_at(2.0, d, same) == (1.0, 0.0)
    far, frr = rates_at(0.5, d[:3], same[:3])  # no impostors: FAR undefined
    assert np.isnan(far) and frr == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_rates_at_matches_brute_force(seed):
    d, same = _pairs(seed)
    for tau in np.linspace(0, 2, 17):
        assert rates_at(tau, d, same) == pytest.approx(_brute_rates(tau, d, same))


# ---- best_accuracy_threshold ----------------------------------------------------------------------

@pytest.mark.parametrize("seed,ties", [(0, False), (1, False), (2, True), (3, True)])
def test_best_accuracy_threshold_matches_brute_force(seed, ties):
    d, same = _pairs(seed, ties=ties)
    cands = _candidates(d)
    accs = np.array([((d <= c) == same).mean() for c in cands])
    tau = best_accuracy_threshold(d, same)
    assert ((d <= tau) == same).mean() == pytest.approx(accs.max())
    assert tau == pytest.approx(cands[int(np.argmax(accs))])  # ties: the smallest such τ


def test_best_accuracy_threshold_edges():
    assert best_accuracy_threshold([0.2, 0.8], [1, 0]) == pytest.approx(0.5)
    assert best_accuracy_threshold([0.2, 0.8], [0, 1]) < 0.2  # reject all ties accept all: smallest τ
    assert best_accuracy_threshold([0.2, 0.3, 0.8], [1, 1, 1]) == pytest.approx(0.8)  # accept all


# ---- ThresholdCalibrator --------------------------------------------------------------------------

@pytest.mark.parametrize("seed,target_far,ties", [(0, 1e-2, False), (1, 0.05, False), (2, 0.1, True),
                                                   (3, 0.25, True), (4, 1e-3, False)])
def test_far_target_is_largest_tau_within_target(seed, target_far, ties):
    d, same = _pairs(seed, ties=ties)
    cal = ThresholdCalibrator("far", target_far).fit(d, same)
    far, frr = _brute_rates(cal.threshold_, d, same)
    assert far <= target_far
    assert (cal.far_, cal.frr_) == pytest.approx((far, frr))
    assert cal.accuracy_ == pytest.approx(((d <= cal.threshold_) == same).mean())
    # no data distance above τ keeps the FAR within target: τ is the largest such
    above = np.unique(d[d > cal.threshold_])
    if len(above):
        assert _brute_rates(above[0], d, same)[0] > target_far
    ok = [t for t in np.unique(d) if _brute_rates(t, d, same)[0] <= target_far]
    if ok:
        assert cal.threshold_ == pytest.approx(max(ok))


def test_far_target_on_a_flat_stretch_of_impostors():
    # impostors at 0.2..0.5 without a genuine pair in between: FAR 0.5 is reached at 0.3
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    same = np.array([1, 0, 0, 0, 0, 1], bool)
    cal = ThresholdCalibrator("far", 0.5).fit(d, same)
    assert cal.threshold_ == pytest.approx(0.3) and cal.far_ == 0.5 and cal.frr_ == 0.5


def test_far_target_below_nearest_impostor_rejects_everything_finite():
    d = np.array([0.1, 0.5, 0.6, 0.7, 0.9])
    same = np.array([0, 1, 1, 0, 0], bool)
    cal = ThresholdCalibrator("far", 0.01).fit(d, same)
    assert np.isfinite(cal.threshold_) and cal.threshold_ < 0.1
    assert cal.far_ == 0.0 and cal.frr_ == 1.0
    json.dumps(cal.threshold_, allow_nan=False)


@pytest.mark.parametrize("seed,ties", [(5, False), (6, True)])
def test_accuracy_target_equals_brute_force(seed, ties):
    d, same = _pairs(seed, ties=ties)
    cal = ThresholdCalibrator("accuracy").fit(d, same)
    best = max(((d <= c) == same).mean() for c in _candidates(d))
    assert cal.accuracy_ == pytest.approx(best)
    assert (cal.far_, cal.frr_) == pytest.approx(_brute_rates(cal.threshold_, d, same))


def test_calibrator_rejects_bad_input():
    with pytest.raises(ValueError):
        ThresholdCalibrator().fit(np.array([0.1, 0.2]), np.array([True, True]))
    with pytest.raises(ValueError):
        ThresholdCalibrator().fit(np.array([0.1, 0.2]), np.array([True]))
    with pytest.raises(ValueError):
        ThresholdCalibrator("eer").fit(np.array([0.1, 0.2]), np.array([True, False]))


# ---- VerificationHead -----------------------------------------------------------------------------

def test_verification_head_fit_predict_and_json_round_trip():
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(20, 32)))
    labels = np.repeat(np.arange(20), 4)
    emb = _unit(centres[labels] + rng.normal(0, 0.15, (80, 32)))
    i, j = np.triu_indices(80, 1)
    same = labels[i] == labels[j]
    head = VerificationHead(C=0.5).fit(emb[i], emb[j], same)
    p = head.predict_proba(emb[i], emb[j])
    assert p.shape == (len(i),) and ((p >= 0) & (p <= 1)).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(same, p) > 0.95 and p[same].mean() > 2 * p[~same].mean()
    single = head.predict_proba(emb[0], emb[1])
    assert isinstance(single, float) and single == pytest.approx(p[0])

    data = json.loads(json.dumps(head.to_json()))
    assert data["kind"] == "logistic_abs_diff" and len(data["coef"]) == 32 and data["C"] == 0.5
    restored = VerificationHead.from_json(data)
    np.testing.assert_array_equal(restored.predict_proba(emb[i], emb[j]), p)
    assert restored.predict_proba(emb[0], emb[1]) == single
