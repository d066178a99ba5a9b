"""Evaluation metrics and LFW protocol runners on synthetic embeddings (no dataset, no model)."""

from __future__ import annotations

import json
import zlib
from itertools import combinations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from facever.training import evaluation as ev
from facever.training.lfw import image_path

DIM = 128


def unit(x):
    x = np.asarray(x, np.float64)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(n_people: int, per_person: int, noise: float, seed: int = 0):
    """Embeddings of ``n_people`` identities: random centres plus isotropic noise, unit length."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(n_people, DIM)))
    labels = np.repeat(np.arange(n_people), per_person)
    return unit(centres[labels] + noise * rng.normal(size=(labels.size, DIM)) / np.sqrt(DIM)), labels


def pairs_of(emb, labels):
    i, j = np.triu_indices(len(labels), k=1)
    return np.linalg.norm(emb[i] - emb[j], axis=1), labels[i] == labels[j]


# ---------------------------------------------------------------------------------------------
# verification metrics
# ---------------------------------------------------------------------------------------------


def test_perfect_separation():
    emb, labels = clustered(20, 4, noise=0.05)
    d, s = pairs_of(emb, labels)
    m = ev.verification_metrics(d, s)
    assert m["roc_auc"] == 1.0 and m["eer"] == 0.0 and m["best_accuracy"] == 1.0
    assert d[s].max() <= m["best_accuracy_threshold"] < d[~s].min()
    assert d[s].max() <= m["eer_threshold"] < d[~s].min()
    for far in ("0.01", "0.001"):  # 3,040 impostor pairs
        entry = m["tar_at_far"][far]
        assert entry["resolvable"] and entry["tar"] == 1.0 and entry["far"] <= entry["far_target"]
    assert m["tar_at_far"]["0.0001"]["resolvable"] is False
    assert ev.accuracy_at_threshold(d, s, m["best_accuracy_threshold"]) == 1.0
    kf = ev.kfold_accuracy(d, s, folds=10, seed=1)
    assert kf["mean"] == 1.0 and kf["stderr"] == 0.0 and len(kf["accuracies"]) == 10
    json.dumps(m), json.dumps(kf)


def test_random_scores_are_chance():
    rng = np.random.default_rng(0)
    d = rng.uniform(0, 2, 20000)
    s = rng.random(20000) < 0.5
    m = ev.verification_metrics(d, s)
    assert m["roc_auc"] == pytest.approx(0.5, abs=0.02)
    assert m["eer"] == pytest.approx(0.5, abs=0.02)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(s, -d), abs=1e-12)


def test_eer_small_hand_case():
    # genuine 0.1, 0.3; impostor 0.2, 0.4: at τ = 0.2, FAR = FRR = 0.5
    m = ev.verification_metrics([0.1, 0.3, 0.2, 0.4], [True, True, False, False])
    assert m["eer"] == pytest.approx(0.5)
    assert m["eer_threshold"] == pytest.approx(0.2)
    assert m["roc_auc"] == pytest.approx(0.75)


def test_verification_needs_both_classes_and_same_lengths():
    with pytest.raises(ValueError):
        ev.verification_metrics([0.1, 0.2], [True, True])
    with pytest.raises(ValueError):
        ev.verification_metrics([0.1, 0.2], [True])


def brute_tar_at_far(d, s, far):
    """Largest observed-score threshold with FAR ≤ far (or reject-all), by exhaustive search."""
    best = (0.0, -np.inf)  # (tar, tau) for rejecting everything
    for tau in np.unique(d):
        if (d[~s] <= tau).mean() <= far and tau > best[1]:
            best = ((d[s] <= tau).mean(), tau)
    return best[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tar_at_far_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_gen, n_imp = 300, 2000
    d = np.concatenate([rng.normal(0.8, 0.2, n_gen), rng.normal(1.3, 0.2, n_imp)])
    d = np.round(d, 2)  # ties, on purpose
    s = np.arange(d.size) < n_gen
    m = ev.verification_metrics(d, s, fars=(1e-2, 1e-3, 5e-3, 0.1, 1e-4))
    for far in (1e-2, 1e-3, 5e-3, 0.1):
        entry = m["tar_at_far"][f"{far:g}"]
        assert entry["resolvable"]
        assert entry["tar"] == pytest.approx(brute_tar_at_far(d, s, far))
        assert entry["far"] <= far
        assert (d[~s] <= entry["threshold"]).mean() == pytest.approx(entry["far"])
    # 2,000 impostors cannot resolve FAR = 1e-4
    assert m["tar_at_far"]["0.0001"] == {"far_target": 1e-4, "tar": None, "far": None, "threshold": None,
                                          "resolvable": False}


def test_threshold_at_rate_edges():
    neg = np.array([0.5, 0.7, 0.7, 0.9])
    assert ev.threshold_at_rate(neg, 0.0) < 0.5
    t = ev.threshold_at_rate(neg, 0.25)  # one of four may be accepted
    assert 0.5 <= t < 0.7
    t = ev.threshold_at_rate(neg, 0.5)  # two may be accepted but 0.7 is tied: still only one
    assert 0.5 <= t < 0.7
    assert ev.threshold_at_rate(neg, 1.0) == ev.MAX_DISTANCE
    with pytest.raises(ValueError):
        ev.threshold_at_rate([], 0.1)


def test_nan_distances_are_failures_scored_at_max():
    d = np.array([0.1, 0.2, np.nan, 1.5, 1.6, np.nan])
    s = np.array([True, True, True, False, False, False])
    m = ev.verification_metrics(d, s)
    assert m["n_failed"] == 2
    # the failed genuine pair sits at 2.0, beyond every impostor: it is rejected at any sensible τ
    assert m["best_accuracy"] == pytest.approx(5 / 6)
    assert ev.accuracy_at_threshold(d, s, 1.0) == pytest.approx(5 / 6)


# ---------------------------------------------------------------------------------------------
# k-fold accuracy
# ---------------------------------------------------------------------------------------------


def test_kfold_threshold_comes_only_from_training_folds():
    # fold 0 separates at ~0.3, fold 1 at ~0.7. With leakage (τ tuned on the test fold) both folds
    # score 1.0; with the threshold from the *other* fold each scores 0.5.
    d = np.array([0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8])
    s = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    kf = ev.kfold_accuracy(d, s, folds=folds)
    assert kf["accuracies"] == [0.5, 0.5]
    assert 0.6 <= kf["thresholds"][0] < 0.8  # fold 0 tested with fold 1's threshold
    assert 0.2 <= kf["thresholds"][1] < 0.4
    assert kf["mean"] == 0.5 and kf["std"] == 0.0 and kf["n_folds"] == 2


def test_kfold_standard_error_is_sample_std_over_sqrt_folds():
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.normal(0.8, 0.25, 300), rng.normal(1.2, 0.25, 300)])
    s = np.arange(600) < 300
    kf = ev.kfold_accuracy(d, s, folds=10, seed=0)
    acc = np.array(kf["accuracies"])
    assert kf["std"] == pytest.approx(acc.std(ddof=1))
    assert kf["stderr"] == pytest.approx(acc.std(ddof=1) / np.sqrt(10))
    assert kf == ev.kfold_accuracy(d, s, folds=10, seed=0)  # seeded
    assert 0.7 < kf["mean"] < 0.9


# ---------------------------------------------------------------------------------------------
# P2 blockwise distances
# ---------------------------------------------------------------------------------------------


def test_all_pairs_distances_match_brute_force():
    emb, labels = clustered(7, 5, noise=0.8, seed=4)
    labels = labels[::-1].copy()  # not sorted: labels need not be contiguous
    emb[3] = np.nan
    out = ev.all_pairs_distances(emb, labels, block=4)
    gen, imp = [], []
    for i, j in combinations(range(len(labels)), 2):
        dist = 2.0 if (i == 3 or j == 3) else float(np.linalg.norm(emb[i] - emb[j]))
        (gen if labels[i] == labels[j] else imp).append(dist)
    np.testing.assert_allclose(np.sort(out["genuine"]), np.sort(gen), atol=1e-5)
    np.testing.assert_allclose(np.sort(out["impostor"]), np.sort(imp), atol=1e-5)
    assert out["genuine"].dtype == np.float32
    assert out["n_failed_pairs"] == len(labels) - 1


# ---------------------------------------------------------------------------------------------
# open-set identification
# ---------------------------------------------------------------------------------------------


def vec(a: float, b: float) -> np.ndarray:
    """Unit vector with cosine ``a`` to e0 (person A) and ``b`` to e1 (person B)."""
    v = np.zeros(DIM)
    v[0], v[1] = a, b
    v[2] = np.sqrt(1 - a * a - b * b)
    return v.astype(np.float32)


def test_open_set_by_hand():
    gallery = np.stack([vec(1, 0), vec(0, 1)])  # A = 0, B = 1
    known = [vec(0.9, 0.1), vec(0.2, 0.6), vec(0, 0.5), vec(0, 0.8)]  # A ok, A→B wrong, B ok, B ok
    known_labels = [0, 0, 1, 1]
    # best distances sqrt(2 − 2 cos): 0.447, 0.894 (wrong), 1.0, 0.632
    unknown = [vec(0.85, 0), vec(0.6, 0)] + [vec(0.3, 0)] * 8  # best 0.548, 0.894, 1.183 × 8
    probes = np.stack(known + unknown)
    labels = np.array(known_labels + [-1] * 10)
    r = ev.open_set_identification(probes, labels, gallery, [0, 1], fpirs=(0.05, 0.1, 0.2, 1.0))
    for variant in ("nearest", "mean3"):
        v = r[variant]
        assert v["rank1"] == pytest.approx(0.75)
        dirs = v["dir_at_fpir"]
        assert dirs["0.05"]["resolvable"] is False and dirs["0.05"]["dir"] is None
        # FPIR 10%: one unknown (0.548) may pass: τ just below 0.894 → known correct at 0.447, 0.632
        assert dirs["0.1"]["dir"] == pytest.approx(0.5) and dirs["0.1"]["fpir"] == pytest.approx(0.1)
        assert 0.632 < dirs["0.1"]["threshold"] < 0.8945
        # FPIR 20%: τ just below 1.183 → 0.447, 1.0, 0.632 are correct and accepted
        assert dirs["0.2"]["dir"] == pytest.approx(0.75) and dirs["0.2"]["fpir"] == pytest.approx(0.2)
        assert dirs["1"]["threshold"] == 2.0 and dirs["1"]["dir"] == pytest.approx(0.75)
    assert r["n_known_probes"] == 4 and r["n_unknown_probes"] == 10
    json.dumps(r)


def test_open_set_failed_probe_is_never_correct():
    gallery = np.stack([vec(1, 0), vec(0, 1)])
    probes = np.stack([vec(0.9, 0), np.full(DIM, np.nan, np.float32), vec(0.1, 0)])
    r = ev.open_set_identification(probes, [0, 0, -1], gallery, [0, 1], fpirs=(1.0,))
    assert r["nearest"]["rank1"] == 0.5 and r["n_failed_probes"] == 1
    with pytest.raises(ValueError, match="not enrolled"):
        ev.open_set_identification(probes, [0, 5, -1], gallery, [0, 1])


def test_person_distances_variants_match_brute_force():
    rng = np.random.default_rng(5)
    gallery = unit(rng.normal(size=(11, DIM)))
    g_labels = np.array([2, 0, 2, 2, 7, 0, 2, 7, 9, 2, 0])
    probes = unit(rng.normal(size=(6, DIM)))
    for variant in ("nearest", "mean3"):
        got, people = ev.person_distances(probes, gallery, g_labels, variant)
        assert people.tolist() == [0, 2, 7, 9]
        for qi in range(len(probes)):
            for pi, p in enumerate(people):
                dist = np.sort(np.linalg.norm(gallery[g_labels == p] - probes[qi], axis=1))
                want = dist[0] if variant == "nearest" else dist[:3].mean()
                assert got[qi, pi] == pytest.approx(want, abs=1e-5)


def test_person_distances_ignore_failed_enrolment_images():
    gallery = np.stack([vec(1, 0), vec(0.8, 0), np.full(DIM, np.nan, np.float32), np.full(DIM, np.nan, np.float32)])
    probe = vec(1, 0)[None]
    for variant in ("nearest", "mean3"):
        got, people = ev.person_distances(probe, gallery, [0, 0, 0, 1], variant)
        want0 = 0.0 if variant == "nearest" else np.sqrt(0.4) / 2  # mean of 0 and 0.632; the NaN row is ignored
        assert got[0, 0] == pytest.approx(want0, abs=1e-5)
        assert got[0, 1] == 2.0  # nobody valid enrolled


def test_open_set_threshold_is_usable_on_its_own():
    u = np.array([1.2, 0.9, 1.5, 1.1, 1.3, 1.0, 1.4, 1.6, 1.7, 1.8])
    t = ev.open_set_threshold(u, 0.1)
    assert (u <= t).mean() == pytest.approx(0.1) and t < 1.0


# ---------------------------------------------------------------------------------------------
# landmarks, plots
# ---------------------------------------------------------------------------------------------


def test_landmark_error_known_offsets():
    truth = np.array([[[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]] * 3, np.float64)  # IOD 40
    offsets = np.array([0.0, 2.0, 8.0])  # pixels, every point shifted right → error 0, 0.05, 0.2
    pred = truth + np.stack([np.tile([o, 0.0], (5, 1)) for o in offsets])
    r = ev.landmark_error(pred, truth)
    assert r["n"] == 3
    assert r["mean"] == pytest.approx((0 + 0.05 + 0.2) / 3)
    assert r["median"] == pytest.approx(0.05)
    assert r["failure_rate"] == pytest.approx(1 / 3)
    assert r["per_point_mean"] == pytest.approx([0.25 / 3] * 5)
    with pytest.raises(ValueError):
        ev.landmark_error(pred[:, :4], truth[:, :4])


def test_save_plots(tmp_path):
    pytest.importorskip("matplotlib")
    emb, labels = clustered(10, 4, noise=1.0)
    d, s = pairs_of(emb, labels)
    paths = ev.save_plots(d, s, tmp_path / "plots", "p1 view1")
    assert [p.rsplit("/", 1)[1] for p in paths] == ["p1_view1_roc.png", "p1_view1_hist.png"]
    for p in paths:
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# protocol runners on a fake LFW tree (protocol files only: the runners never open images)
# ---------------------------------------------------------------------------------------------

PEOPLE = {f"Person_{k:02d}": n for k, n in enumerate([4, 3, 2, 2, 5, 1, 1, 1, 2, 3, 1, 1, 6, 2, 2, 1, 1, 1, 1, 1, 1])}


def write_fake_lfw(root):
    prot = root / "protocol"
    prot.mkdir(parents=True)
    names = list(PEOPLE)
    multi = [n for n in names if PEOPLE[n] >= 2]
    (prot / "peopleDevTest.txt").write_text(f"{len(PEOPLE)}\n" + "".join(f"{n}\t{c}\n" for n, c in PEOPLE.items()))
    same = [(n, 1, 2) for n in multi]  # 10 genuine
    diff = [(names[k], 1, names[k + 1], 1) for k in range(10)]  # 10 impostor
    (prot / "pairsDevTest.txt").write_text(
        "10\n" + "".join(f"{a}\t{i}\t{j}\n" for a, i, j in same) + "".join(f"{a}\t{i}\t{b}\t{j}\n" for a, i, b, j in diff))
    lines = ["2\t3"]
    for fold in range(2):
        lines += [f"{a}\t{i}\t{j}" for a, i, j in same[fold * 3:fold * 3 + 3]]
        lines += [f"{a}\t{i}\t{b}\t{j}" for a, i, b, j in diff[fold * 3:fold * 3 + 3]]
    (prot / "pairs.txt").write_text("\n".join(lines) + "\n")
    (root / "lfw-deepfunneled").mkdir()
    return root


def _centres():
    rng = np.random.default_rng(123)
    return {n: unit(rng.normal(size=DIM)) for n in PEOPLE}


class FakeEmbed:
    """Synthetic embeddings keyed by person: identity centre + small per-image noise; records calls."""

    def __init__(self, noise: float = 0.1, fail: set[str] = frozenset()):
        self.centres = _centres()
        self.noise = noise
        self.fail = fail
        self.calls: list[list[str]] = []

    def __call__(self, paths):
        self.calls.append(list(paths))
        out = []
        for p in paths:
            if p in self.fail:
                out.append(np.full(DIM, np.nan, np.float32))
                continue
            rng = np.random.default_rng(zlib.crc32(p.encode()))
            out.append(unit(self.centres[p.split("/")[0]] + self.noise * rng.normal(size=DIM) / np.sqrt(DIM)))
        return np.stack(out)


@pytest.fixture()
def fake_lfw(tmp_path):
    return write_fake_lfw(tmp_path / "lfw")


def test_view1_runner(fake_lfw):
    r = ev.evaluate_view1(fake_lfw, FakeEmbed(), threshold=0.5, folds=5)
    assert r["n_pairs"] == 20 and r["n_failed"] == 0
    assert r["accuracy"] == 1.0 and r["roc_auc"] == 1.0 and r["eer"] == 0.0
    assert r["at_threshold"]["accuracy"] == 1.0 and r["at_threshold"]["far"] == 0.0
    assert r["contaminated"] is None
    json.dumps(r)


def test_view1_failed_image_counts_against_model(fake_lfw):
    r = ev.evaluate_view1(fake_lfw, FakeEmbed(fail={image_path("Person_00", 2)}), folds=5)
    assert r["n_failed"] == 1
    assert r["metrics"]["best_accuracy"] == pytest.approx(19 / 20)


def test_all_pairs_runner(fake_lfw):
    r = ev.evaluate_devtest_all_pairs(fake_lfw, FakeEmbed(), fars=(0.01, 0.1))
    n = sum(PEOPLE.values())
    n_gen = sum(c * (c - 1) // 2 for c in PEOPLE.values())
    assert r["n_images"] == n and r["n_genuine"] == n_gen and r["n_impostor"] == n * (n - 1) // 2 - n_gen
    assert r["eer"] == 0.0 and r["tar_at_far"]["0.01"]["tar"] == 1.0
    json.dumps(r)


def test_open_set_runner(fake_lfw):
    r = ev.evaluate_open_set(fake_lfw, FakeEmbed(), enroll_counts=(1, 3), seed=0)
    one, three = r["enroll"]["1"], r["enroll"]["3"]
    multi = {n: c for n, c in PEOPLE.items() if c >= 2}
    assert one["n_people"] == three["n_people"] == len(multi)
    assert one["n_gallery"] == len(multi)
    assert three["n_gallery"] == sum(min(3, c - 1) for c in multi.values())
    assert one["n_known_probes"] == sum(c - 1 for c in multi.values())
    assert three["n_known_probes"] == sum(c - min(3, c - 1) for c in multi.values())
    assert one["n_unknown_probes"] == three["n_unknown_probes"] == sum(c == 1 for c in PEOPLE.values())
    for res in (one, three):
        for variant in ("nearest", "mean3"):
            assert res[variant]["rank1"] == 1.0
            assert res[variant]["dir_at_fpir"]["0.1"]["dir"] == 1.0
            assert res[variant]["dir_at_fpir"]["0.01"]["resolvable"] is False  # only 11 unknowns
    json.dumps(r)


def test_view2_runner_contamination(fake_lfw):
    r = ev.evaluate_view2(fake_lfw, FakeEmbed(), trained_people={"Person_01", "Somebody_Else"})
    assert r["n_pairs"] == 12 and r["kfold"]["n_folds"] == 2 and r["accuracy"] == 1.0
    assert r["contaminated"] is True and r["n_people_in_training"] == 1
    assert ev.evaluate_view2(fake_lfw, FakeEmbed(), trained_people={"Nobody"})["contaminated"] is False


def test_evaluate_all_embeds_each_image_once(fake_lfw, tmp_path):
    embed = FakeEmbed()
    seen = []
    r = ev.evaluate_all(fake_lfw, embed, progress=lambda done, total: seen.append((done, total)), chunk_size=7,
                        trained_people=set())
    paths = [p for call in embed.calls for p in call]
    assert len(paths) == len(set(paths)) == r["images"]["n"] == sum(PEOPLE.values())
    assert max(len(c) for c in embed.calls) <= 7
    assert seen[0] == (0, r["images"]["n"]) and seen[-1] == (r["images"]["n"], r["images"]["n"])
    assert set(r) >= {"p1", "p2", "p3", "p4"} and r["p4"]["contaminated"] is False
    json.dumps(r)
    with pytest.raises(ValueError, match="unknown protocol"):
        ev.evaluate_all(fake_lfw, embed, protocols=("p9",))


def test_evaluate_all_writes_plots(fake_lfw, tmp_path):
    pytest.importorskip("matplotlib")
    r = ev.evaluate_all(fake_lfw, FakeEmbed(noise=1.5), protocols=("p1",), plots_dir=tmp_path / "out")
    assert len(r["p1"]["plots"]) == 2 and all((tmp_path / "out" / p.rsplit("/", 1)[1]).is_file() for p in r["p1"]["plots"])


def test_embed_checked_rejects_wrong_shapes(fake_lfw):
    with pytest.raises(ValueError, match="embed returned shape"):
        ev.evaluate_view1(fake_lfw, lambda paths: np.zeros((len(paths) - 1, DIM)))


def test_all_pairs_runner_counts_failed_pairs(fake_lfw):
    n = sum(PEOPLE.values())
    r = ev.evaluate_devtest_all_pairs(fake_lfw, FakeEmbed(fail={image_path("Person_00", 1)}), fars=(0.01,))
    assert r["n_failed_images"] == 1 and r["n_failed"] == n - 1
    assert r["metrics"]["n_failed"] == n - 1


# ---------------------------------------------------------------------------------------------
# embed_lfw_images with a stub detector/encoder (real JPEGs, no TensorFlow)
# ---------------------------------------------------------------------------------------------


class StubDetector:
    """Dark images: no face. Others: a corner face and a central face (corner listed first)."""

    def detect_batch(self, images):
        from facever.detection import Face

        out = []
        for im in images:
            if im.mean() < 50:
                out.append([])
                continue
            h, w = im.shape[:2]

            def face(cx, cy, s):
                lms = np.array([[cx - s, cy - s], [cx + s, cy - s], [cx, cy], [cx - s, cy + s], [cx + s, cy + s]],
                               np.float32)
                return Face(box=(cx - 2 * s, cy - 2 * s, cx + 2 * s, cy + 2 * s), landmarks=lms, score=0.99)

            out.append([face(12, 12, 4), face(w / 2, h / 2, 8)])
        return out

    def detect(self, image):
        return self.detect_batch([image])[0]


class StubEmbedder:
    def __init__(self):
        from types import SimpleNamespace

        self.bundle = SimpleNamespace(metadata=SimpleNamespace(embedding_dim=DIM))
        self.detector = StubDetector()
        self.batches = []
        self.input_size, self.template_name = 112, "arcface"  # the crop geometry align_faces is asked for

    def embed_crops(self, crops):
        self.batches.append(len(crops))
        v = np.zeros((len(crops), DIM), np.float32)
        v[:, 0] = crops.reshape(len(crops), -1).mean(axis=1)
        v[:, 1] = 1.0
        return unit(v)


def test_embed_lfw_images(tmp_path):
    from PIL import Image

    images = tmp_path / "lfw" / "lfw-deepfunneled"
    paths = []
    for k, value in enumerate([200, 10, 150, 120, 30]):  # 10 and 30: no face
        name = f"P{k}"
        (images / name).mkdir(parents=True)
        Image.fromarray(np.full((64, 80, 3), value, np.uint8)).save(images / name / f"{name}_0001.jpg")
        paths.append(image_path(name, 1))
    stub, seen = StubEmbedder(), []
    res = ev.embed_lfw_images(stub, tmp_path / "lfw", paths, progress=lambda d, t: seen.append((d, t)), batch_size=2)
    assert res.found.tolist() == [True, False, True, True, False]
    assert np.isnan(res.embeddings[[1, 4]]).all() and np.isfinite(res.embeddings[[0, 2, 3]]).all()
    assert res.n_faces.tolist() == [2, 0, 2, 2, 0]
    np.testing.assert_allclose(res.landmarks[0, 2], [40, 32])  # the central face, not the corner one
    assert seen == [(2, 5), (4, 5), (5, 5)]
    fig = ev.detection_figures(res, {p: res.landmarks[i] + 0.8 for i, p in enumerate(paths)})
    assert fig["n_found"] == 3 and fig["found_rate"] == pytest.approx(0.6)
    assert fig["landmark_error"]["n"] == 3 and fig["landmark_error"]["mean"] == pytest.approx(0.8 * np.sqrt(2) / 16, rel=1e-4)
    with pytest.raises(FileNotFoundError, match="P9"):
        ev.embed_lfw_images(stub, images, [image_path("P9", 1)])


def test_embed_lfw_images_with_a_crop_cache_of_another_geometry(tmp_path):
    """``evaluate --crop-cache``: cached 112 px ArcFace crops next to fresh 150 px dlib crops in one
    batch. Stacking them as they are crashed (``np.stack`` of two sizes); every crop embedded must
    have the model's size, and the cached images must skip detection."""
    from PIL import Image

    from facever.training.datasets import CropCache, file_sha256

    images = tmp_path / "lfw" / "lfw-deepfunneled"
    paths = []
    for k, value in enumerate([200, 150, 120, 90]):
        name = f"P{k}"
        (images / name).mkdir(parents=True)
        Image.fromarray(np.full((64, 80, 3), value, np.uint8)).save(images / name / f"{name}_0001.jpg")
        paths.append(image_path(name, 1))
    cache = CropCache(tmp_path / "cache", 112, "arcface")
    cached = paths[:2]
    cache.add([file_sha256(images / p) for p in cached], np.full((2, 112, 112, 3), 77, np.uint8),
              np.zeros((2, 5, 2), np.float32), np.array([True, True]))

    class Recording(StubEmbedder):
        def __init__(self):
            super().__init__()
            self.input_size, self.template_name = 150, "dlib"
            self.shapes, self.detected = [], 0
            inner = self.detector.detect_batch

            def detect_batch(batch):
                self.detected += len(batch)
                return inner(batch)

            self.detector.detect_batch = detect_batch

        def embed_crops(self, crops):
            self.shapes.append(crops.shape[1:])
            return super().embed_crops(crops)

    stub = Recording()
    res = ev.embed_lfw_images(stub, tmp_path / "lfw", paths, crop_cache=cache, batch_size=4)
    assert res.found.all() and np.isfinite(res.embeddings).all()
    assert stub.shapes == [(150, 150, 3)]  # one batch, cached and fresh crops alike
    assert stub.detected == 2  # only the two images the cache lacks


# ---------------------------------------------------------------------------------------------
# `facever evaluate` (tiny random model; LFW embedding replaced by the synthetic one)
# ---------------------------------------------------------------------------------------------


def test_cli_evaluate(fake_lfw, tiny_bundle_dir, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from facever_cli.app import app

    fake = FakeEmbed()

    def fake_embed_lfw_images(verifier, root, paths, progress=None, batch_size=32, crop_cache=None):
        e = fake(paths)
        n = len(paths)
        return ev.LFWEmbeddings(list(paths), e, np.ones(n, bool), np.ones(n, np.int64),
                                np.zeros((n, 5, 2), np.float32), {})

    monkeypatch.setattr(ev, "embed_lfw_images", fake_embed_lfw_images)
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate", "--lfw", str(fake_lfw), "--protocol", "p1", "--protocol", "p4",
                              "--model", str(tiny_bundle_dir), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data) >= {"p1", "p4", "model", "detection", "images"} and "p2" not in data
    assert data["p1"]["accuracy"] == 1.0 and data["p1"]["at_threshold"]["threshold"] == pytest.approx(0.8)
    assert data["detection"]["found_rate"] == 1.0
    out = tmp_path / "report"
    res = runner.invoke(app, ["evaluate", "--lfw", str(fake_lfw), "--protocol", "p3", "--model", str(tiny_bundle_dir),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "rank-1" in res.stdout and json.loads((out / "results.json").read_text())["p3"]["protocol"] == "p3"
    res = runner.invoke(app, ["evaluate", "--lfw", str(fake_lfw), "--protocol", "p7", "--model", str(tiny_bundle_dir)])
    assert res.exit_code == 2 and "p7" in res.output
    res = runner.invoke(app, ["evaluate", "--lfw", str(tmp_path / "nowhere"), "--model", str(tiny_bundle_dir)])
    assert res.exit_code == 2 and "LFW root" in res.output
    res = runner.invoke(app, ["evaluate", "--model", str(tiny_bundle_dir)])  # no default path into a dev tree
    assert res.exit_code == 2 and "--lfw" in res.output
