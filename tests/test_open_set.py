"""Gallery-size-dependent open-set thresholds (facever.open_set) on synthetic identities.

No model, no TensorFlow: clustered unit vectors with look-alike groups and hub faces stand in for
face embeddings (``facever.open_set.synthetic_embeddings``).
"""

import json
import math

import numpy as np
import pytest

from facever import open_set as osm


def split_people(labels, sizes, seed=0):
    """Boolean masks of consecutive random groups of people with the given sizes."""
    people = np.unique(labels)
    np.random.default_rng(seed).shuffle(people)
    out, start = [], 0
    for n in sizes:
        out.append(np.isin(labels, people[start:start + n]))
        start += n
    return out


@pytest.fixture(scope="module")
def population():
    """5,000 synthetic people with 3-5 faces each: 1,500 to calibrate, 2,000 to enrol, 1,500 strangers."""
    x, y = osm.synthetic_embeddings(5000, (3, 5), seed=7)
    cal, pool, strangers = split_people(y, (1500, 2000, 1500), seed=1)
    return x, y, cal, pool, strangers


@pytest.fixture(scope="module")
def calibration(population):
    x, y, cal, _, _ = population
    return osm.impostor_distribution(x[cal], y[cal], description="synthetic test people")


@pytest.fixture(scope="module")
def small_calibration():
    x, y = osm.synthetic_embeddings(300, (1, 4), seed=3)
    return osm.impostor_distribution(x, y), x, y


def nearest_distances(probes, gallery, block=2048):
    """Distance from each probe to its nearest gallery row."""
    out = np.empty(len(probes))
    for lo in range(0, len(probes), block):
        out[lo:lo + block] = np.sqrt(np.clip(2 - 2 * (probes[lo:lo + block] @ gallery.T).max(axis=1), 0, 4))
    return out


# -- the stored distribution ----------------------------------------------------------------------
def test_normal_helpers_are_accurate():
    z = np.linspace(-9, 6, 301)
    ref = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in z])
    np.testing.assert_allclose(osm._norm_cdf(z), ref, rtol=3e-7)
    p = np.geomspace(1e-20, 0.999, 200)
    np.testing.assert_allclose(osm._norm_cdf(osm._norm_ppf(p)), p, rtol=1e-6)


def test_distribution_is_json_ready_monotone_and_counts_every_impostor_pair(small_calibration):
    data, x, y = small_calibration
    assert json.loads(json.dumps(data)) == data and len(json.dumps(data)) < 60_000
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    kept = np.minimum(counts, osm.MAX_PER_PERSON)
    assert data["n_faces"] == kept.sum() and data["n_people"] == len(counts)
    assert data["n_impostor"] == (kept.sum() ** 2 - (kept ** 2).sum()) // 2
    far, dist = np.array(data["far"]), np.array(data["distance"])
    assert far[0] <= 1e-9 and far[-1] == 0.5 and np.all(np.diff(far) > 0) and np.all(np.diff(dist) >= 0)
    assert data["extrapolated"] == [bool(f < data["min_resolved_far"]) for f in far]
    assert data["default_fpir"] == 0.01 and data["duplicate_far"] == 1e-6 and "people" in data["description"]
    assert 0 <= data["face_exponent"] <= 1


def test_resolved_grid_matches_the_pair_rates(small_calibration):
    data, x, y = small_calibration
    d = np.sqrt(np.clip(2 - 2 * (x @ x.T), 0, 4))
    iu = np.triu_indices(len(x), 1)
    impostor = d[iu][(y[:, None] != y[None, :])[iu]]
    # every person has ≤ 4 faces here, so no face was dropped
    assert len(impostor) == data["n_impostor"]
    for f in (1e-3, 1e-2, 0.1, 0.5):
        t = osm.distance_at_far(data, f)
        assert (impostor <= t).mean() == pytest.approx(f, rel=0.05)
        assert osm.far_at_distance(data, t) == pytest.approx(f, rel=0.05)


def test_tail_model_predicts_rates_beyond_the_calibration_data(population):
    """Calibrated on 500 people, checked at a rate 10× rarer than they resolve on 3,500 others."""
    x, y, cal, _, _ = population
    few = np.isin(y, np.unique(y[cal])[:500])
    data = osm.impostor_distribution(x[few], y[few])
    tail = data["tail"]
    assert tail["model"] == "probit_linear_in_distance" and tail["b"] > 0
    assert tail["validation"]["max_abs_log10_error"] < 0.5  # the built-in thinning check
    target = data["min_resolved_far"] / 10
    assert data["extrapolated"][int(np.searchsorted(data["far"], target))]
    t = osm.distance_at_far(data, target)
    big, labels = x[~cal], y[~cal]
    below = total = 0
    for lo in range(0, len(big), 2048):
        d = np.sqrt(np.clip(2 - 2 * (big[lo:lo + 2048] @ big.T), 0, 4))
        mask = (labels[lo:lo + 2048, None] != labels[None, :]) & \
            (np.arange(lo, lo + len(d))[:, None] < np.arange(len(big))[None, :])
        below += int((d[mask] <= t).sum())
        total += int(mask.sum())
    assert total * target > 50  # the check itself resolves the rate
    assert target / 3 < below / total < target * 3


# -- thresholds for a gallery ---------------------------------------------------------------------
def test_adaptive_threshold_keeps_fpir_on_target_from_10_to_2000_people(calibration, population):
    x, y, _, pool, strangers = population
    rng = np.random.default_rng(5)
    pool_people = np.unique(y[pool])
    rows_of = {p: np.flatnonzero(y == p) for p in pool_people}
    stranger_faces = x[strangers]
    fixed = None
    for size, repeats in ((10, 12), (30, 8), (100, 6), (300, 3), (1000, 2), (2000, 1)):
        accepted = accepted_fixed = total = 0
        expected = []
        for _ in range(repeats):
            chosen = rng.choice(pool_people, size, replace=False)
            gallery = x[np.concatenate([rows_of[p][:3] for p in chosen])]
            thr, exp = osm.threshold_for_gallery(calibration, len(gallery), size, 0.01)
            assert exp == pytest.approx(0.01, rel=1e-3)
            if fixed is None:
                fixed = thr  # calibrated once, at the smallest gallery
            best = nearest_distances(stranger_faces, gallery)
            accepted += int((best <= thr).sum())
            accepted_fixed += int((best <= fixed).sum())
            expected.append(osm.expected_fpir(calibration, fixed, len(gallery), size))
            total += len(best)
        fpir, fpir_fixed = accepted / total, accepted_fixed / total
        assert 0.005 <= fpir <= 0.015, (size, fpir)
        if size == 2000:  # a fixed threshold lets the FPIR grow with the gallery, as predicted
            assert fpir_fixed > 0.1
            assert np.mean(expected) == pytest.approx(fpir_fixed, rel=0.5)


def test_threshold_shrinks_with_the_gallery_and_follows_the_target(calibration):
    thresholds = [osm.threshold_for_gallery(calibration, 3 * n, n)[0] for n in (1, 10, 100, 10_000, 1_000_000)]
    assert all(a > b for a, b in zip(thresholds, thresholds[1:]))
    strict, _ = osm.threshold_for_gallery(calibration, 300, 100, fpir=0.001)
    loose, _ = osm.threshold_for_gallery(calibration, 300, 100, fpir=0.1)
    assert strict < thresholds[2] < loose
    thr, exp = osm.threshold_for_gallery(calibration, 0, 0)
    assert exp == 0.0 and thr == pytest.approx(thresholds[0], abs=0.05)
    # the expected FPIR of a threshold is the inverse of the mapping
    for n, target in ((10, 0.01), (1000, 0.05), (100_000, 0.001)):
        thr, _ = osm.threshold_for_gallery(calibration, 3 * n, n, target)
        assert osm.expected_fpir(calibration, thr, 3 * n, n) == pytest.approx(target, rel=0.02)
    with pytest.raises(ValueError):
        osm.threshold_for_gallery(calibration, 30, 10, fpir=1.5)


def test_counting_faces_people_or_an_effective_number(calibration):
    alpha = calibration["face_exponent"]
    assert osm.effective_count(calibration, 300, 100, "faces") == 300
    assert osm.effective_count(calibration, 300, 100, "people") == 100
    assert osm.effective_count(calibration, 300, 100) == pytest.approx(100 * 3 ** alpha)
    assert osm.effective_count(calibration, 300, 100, scoring="mean3") == 100
    assert osm.effective_count(calibration, 0, 0) == 0
    faces, _ = osm.threshold_for_gallery(calibration, 300, 100, count="faces")
    people, _ = osm.threshold_for_gallery(calibration, 300, 100, count="people")
    assert faces <= osm.threshold_for_gallery(calibration, 300, 100)[0] <= people
    with pytest.raises(ValueError):
        osm.effective_count(calibration, 3, 1, count="pairs")


def test_without_a_tail_model_the_far_tail_is_clamped_honestly():
    x, y = osm.synthetic_embeddings(12, 2, seed=4)   # 264 impostor pairs: no tail can be fitted
    data = osm.impostor_distribution(x, y)
    assert data["tail"] is None and data["probes"] is None
    assert data["min_resolved_far"] == pytest.approx(20 / 264)
    floor = data["distance"][0]
    assert all(d == floor for d, e in zip(data["distance"], data["extrapolated"]) if e)
    assert osm.far_at_distance(data, 0.0) == data["far"][0]
    # a large gallery cannot be promised 1%: the answer says what it can promise
    thr, exp = osm.threshold_for_gallery(data, 3000, 1000, 0.01)
    assert thr == floor and exp > 0.01


def test_validation_rejects_foreign_or_newer_data(calibration):
    with pytest.raises(ValueError):
        osm.validate({"kind": "something else"})
    with pytest.raises(ValueError):
        osm.validate({**calibration, "version": 99})
    with pytest.raises(ValueError):
        osm.validate({**calibration, "distance": calibration["distance"][:-1]})
    with pytest.raises(ValueError):
        osm.impostor_distribution(np.eye(3, dtype=np.float32), [1, 1, 1])


def test_in_sample_validation_is_recorded(calibration):
    sizes = [v["people"] for v in calibration["validation"]]
    assert sizes == [10, 100]  # 1,000 needs twice as many calibration people
    assert all(0.003 < v["fpir_measured"] < 0.02 for v in calibration["validation"])


# -- the duplicate gate ---------------------------------------------------------------------------
def test_duplicate_gate_is_strict_and_scales_with_the_gallery(calibration):
    small, p_small = osm.duplicate_threshold(calibration, 30, 10)
    assert osm.far_at_distance(calibration, small) == pytest.approx(1e-6, rel=0.05)
    assert p_small < 1e-3
    big, p_big = osm.duplicate_threshold(calibration, 300_000, 100_000)
    assert big < small and p_big == pytest.approx(1e-3, rel=0.02)
    assert small < osm.threshold_for_gallery(calibration, 30, 10)[0]


def test_duplicate_gate_rarely_refuses_distinct_people_but_catches_the_same_photos(calibration, population):
    """1,500 distinct people enrolled one by one: ≤ 0.5% refused."""
    x, y, _, pool, strangers = population
    people = np.unique(y[pool | strangers])[:1500]
    rng = np.random.default_rng(2)
    enrolled = np.zeros((0, x.shape[1]), np.float32)
    n_people = refused = 0
    for p in rng.permutation(people):
        faces = x[np.flatnonzero(y == p)[:3]]
        if n_people:
            thr, _ = osm.duplicate_threshold(calibration, len(enrolled), n_people)
            if np.sqrt(np.clip(2 - 2 * (faces @ enrolled.T), 0, 4)).min() < thr:
                refused += 1
                continue
        enrolled = np.concatenate([enrolled, faces])
        n_people += 1
    assert refused <= 0.005 * len(people)
    # the same photos coming back under a new name (re-scanned: a little noise) are caught; other
    # photos of the same person rarely are with this weak synthetic model (67% TAR at FAR 1e-3)
    thr, _ = osm.duplicate_threshold(calibration, len(enrolled), n_people)
    again = enrolled[:300] + np.random.default_rng(3).normal(0, 0.02 / np.sqrt(x.shape[1]), (300, x.shape[1]))
    again /= np.linalg.norm(again, axis=1, keepdims=True)
    assert (np.sqrt(np.clip(2 - 2 * (again * enrolled[:300]).sum(axis=1), 0, 4)) < thr).all()
