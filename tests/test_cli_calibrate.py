"""``facever calibrate`` through typer's CliRunner on a copy of the tiny random bundle.

One test runs the real pipeline (MTCNN + the Keras model) on a few variants of scikit-image's
astronaut photo and a no-face image; the others replace the embedding step with synthetic vectors,
so τ and the failure counts can be checked exactly.
"""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facever.bundle import ENCODER_FILE, METADATA_FILE, file_version, read_metadata
from facever.matching import ThresholdCalibrator
from facever_cli.app import app

runner = CliRunner()

VIEW1 = """3
Alice 1 2
Alice 1 3
Alice 2 3
Alice 1 Bob 1
Alice 2 Bob 1
Alice 3 Nobody 1
"""


@pytest.fixture
def bundle(tiny_bundle_dir, tmp_path):
    """A private copy of the tiny bundle (calibrate writes into it)."""
    path = tmp_path / "bundle"
    shutil.copytree(tiny_bundle_dir, path)
    return path


def _write_rgb(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))


@pytest.fixture
def photo_pairs(tmp_path, astronaut):
    """Pairs file + image folder: three astronaut variants as "Alice", one as "Bob", noise as "Nobody"."""
    root = tmp_path / "images"
    brighter = np.clip(astronaut[20:, 10:500].astype(np.float32) * 0.8 + 25, 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(cv2.cvtColor(astronaut[:400, 40:460], cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    _write_rgb(root / "Alice" / "Alice_0001.jpg", astronaut)
    _write_rgb(root / "Alice" / "Alice_0002.jpg", brighter)
    _write_rgb(root / "Alice" / "Alice_0003.jpg", astronaut[:, ::-1])
    _write_rgb(root / "Bob" / "Bob_0001.jpg", grey)
    _write_rgb(root / "Nobody" / "Nobody_0001.jpg",
               np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    pairs = tmp_path / "my_pairs.txt"
    pairs.write_text(VIEW1)
    return pairs, root


def test_calibrate_real_pipeline_dry_run_then_write(bundle, photo_pairs):
    pairs, root = photo_pairs
    version = file_version(bundle / ENCODER_FILE)
    meta_before = (bundle / METADATA_FILE).read_bytes()

    res = runner.invoke(app, ["calibrate", "--model", str(bundle), "--pairs", str(pairs), "--images", str(root),
                              "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    dry = json.loads(res.stdout)
    assert (bundle / METADATA_FILE).read_bytes() == meta_before  # --dry-run writes nothing
    assert dry["written"] is False and dry["model"]["version"] == version
    assert dry["failures"] == 1 and dry["failed_images"] == ["Nobody/Nobody_0001.jpg"] and dry["images_total"] == 5
    assert dry["pairs"] == {"total": 6, "used": 5, "genuine": 3, "impostor": 2, "left_out": 1}
    assert dry["target"] == "far=0.001" and 0.0 <= dry["far"] <= 0.001 and 0.0 <= dry["frr"] <= 1.0
    assert any("cannot be measured" in w for w in dry["warnings"])  # 2 impostors cannot resolve 1e-3
    assert dry["previous_threshold"]["value"] == 0.8

    res = runner.invoke(app, ["calibrate", "--model", str(bundle), "--pairs", str(pairs), "--images", str(root),
                              "--json"])
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout)
    assert done["written"] is True
    keys = ("threshold", "far", "frr", "accuracy", "pairs", "failures", "failed_images")
    assert {k: done[k] for k in keys} == {k: dry[k] for k in keys}  # same embeddings, same figures

    meta = read_metadata(bundle)
    t = meta.threshold
    assert t.value == pytest.approx(done["threshold"]) and t.far == pytest.approx(done["far"])
    assert t.frr == pytest.approx(done["frr"]) and t.target == "far=0.001"
    assert (t.n_genuine, t.n_impostor) == (3, 2) and "my_pairs.txt" in t.calibration_set
    assert "1 of 5 images without a face" in t.calibration_set
    head = meta.verification_head
    assert head["kind"] == "logistic_abs_diff" and len(head["coef"]) == meta.embedding_dim
    assert meta.figures["calibration"]["tau"] == pytest.approx(t.value)
    assert file_version(bundle / ENCODER_FILE) == version  # weights untouched
    assert meta.input_size == 32 and meta.architecture == "resnet_s"  # the rest kept

    # the bundle now decides with the new τ and reports P(same) from the head
    from facever.api import FaceVerifier

    v = FaceVerifier(model=bundle)
    assert v.threshold == pytest.approx(t.value) and v.model_version == version
    r = v.verify(root / "Alice" / "Alice_0001.jpg", root / "Alice" / "Alice_0003.jpg")
    assert r.far == pytest.approx(t.far) and r.probability is not None and 0.0 <= r.probability <= 1.0


# ---- synthetic embeddings ------------------------------------------------------------------------

def _fake_embedder(monkeypatch, calls: list | None = None, dim: int = 128):
    """Replace the detect+embed step: each person a direction, each image a small perturbation;
    people named ``Nobody*`` have no face (NaN)."""
    import facever.training.evaluation as evaluation

    def fake(verifier, root, paths, progress=None, batch_size=32):
        if calls is not None:
            calls.append(list(paths))
        emb = np.full((len(paths), dim), np.nan, np.float32)
        for row, p in enumerate(paths):
            name, _, index = p.rpartition("_")
            person = name.split("/")[0]
            if person.startswith("Nobody"):
                continue
            seed = sum(ord(c) for c in person)
            base = np.random.default_rng(seed).normal(size=dim)
            e = base + np.random.default_rng(seed * 1000 + int(index[:4])).normal(0, 0.8, dim)
            emb[row] = e / np.linalg.norm(e)
        if progress is not None:
            progress(len(paths), len(paths))
        found = np.isfinite(emb).all(axis=1)
        return evaluation.LFWEmbeddings(list(paths), emb, found, found.astype(np.int64),
                                        np.full((len(paths), 5, 2), np.nan, np.float32), {})

    monkeypatch.setattr(evaluation, "embed_lfw_images", fake)
    return fake


def _many_pairs(n_people: int = 12, per: int = 4) -> tuple[str, list[tuple[str, str, bool]]]:
    """A View 1 file over synthetic people P00..: every genuine pair, as many impostor pairs."""
    import itertools

    rng = np.random.default_rng(0)
    people = [f"P{k:02d}" for k in range(n_people)]
    same = [(p, a, b) for p in people for a, b in itertools.combinations(range(1, per + 1), 2)]
    diff = []
    while len(diff) < len(same):
        p, q = rng.choice(n_people, 2, replace=False)
        diff.append((people[p], int(rng.integers(1, per + 1)), people[q], int(rng.integers(1, per + 1))))
    lines = [str(len(same))] + [f"{p} {a} {b}" for p, a, b in same] + [" ".join(map(str, d)) for d in diff]
    truth = [(f"{p}/{p}_{a:04d}.jpg", f"{p}/{p}_{b:04d}.jpg", True) for p, a, b in same]
    truth += [(f"{p}/{p}_{a:04d}.jpg", f"{q}/{q}_{b:04d}.jpg", False) for p, a, q, b in diff]
    return "\n".join(lines) + "\n", truth


def _expected(fake, truth, target: str, far: float = 1e-3) -> ThresholdCalibrator:
    paths = sorted({p for a, b, _ in truth for p in (a, b)})
    emb = fake(None, None, paths).embeddings
    idx = {p: k for k, p in enumerate(paths)}
    d = np.array([np.linalg.norm(emb[idx[a]] - emb[idx[b]]) for a, b, _ in truth])
    same = np.array([s for _, _, s in truth])
    return ThresholdCalibrator(target, far).fit(d, same)


@pytest.mark.parametrize("target,far", [("accuracy", 1e-3), ("far", 0.05)])
def test_calibrate_chooses_tau_like_the_calibrator(bundle, tmp_path, monkeypatch, target, far):
    calls = []
    fake = _fake_embedder(monkeypatch, calls)
    text, truth = _many_pairs()
    pairs = tmp_path / "pairs_train.txt"
    pairs.write_text(text)
    (tmp_path / "imgs").mkdir()
    res = runner.invoke(app, ["calibrate", "-m", str(bundle), "--pairs", str(pairs), "--images", str(tmp_path / "imgs"),
                              "--target", target, "--far", str(far), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0]))  # each image embedded once
    want = _expected(fake, truth, target, far)
    assert out["threshold"] == pytest.approx(want.threshold_, abs=1e-6)
    assert (out["far"], out["frr"]) == pytest.approx((want.far_, want.frr_))
    assert out["pairs"]["used"] == len(truth) and out["failures"] == 0 and out["warnings"] == []
    t = read_metadata(bundle).threshold
    assert t.value == pytest.approx(want.threshold_, abs=1e-6)
    assert t.target == ("best_accuracy" if target == "accuracy" else "far=0.05")
    if target == "far":
        assert t.far <= far


def test_calibrate_text_output_and_failures(bundle, tmp_path, monkeypatch):
    _fake_embedder(monkeypatch)
    text, truth = _many_pairs(6, 3)
    lines = text.splitlines()
    n = int(lines[0])
    same, diff = lines[1:1 + n], lines[1 + n:]
    same[0] = "Nobody 1 2"
    diff[0] = "P00 1 Nobody 3"
    pairs = tmp_path / "pairs_x.txt"
    pairs.write_text("\n".join([str(n)] + same + diff) + "\n")
    (tmp_path / "imgs").mkdir()
    res = runner.invoke(app, ["calibrate", "--model", str(bundle), "--pairs", str(pairs), "--images", str(tmp_path / "imgs"),
                              "--far", "0.1"])
    assert res.exit_code == 0, res.output
    assert "τ = " in res.stdout and "FAR" in res.stdout and "FRR" in res.stdout
    assert f"pairs used {2 * n - 2}/{2 * n}" in res.stdout
    assert "failures: 3/" in res.stdout  # Nobody 1, 2 and 3
    assert "unchanged" in res.stdout
    t = read_metadata(bundle).threshold
    assert (t.n_genuine, t.n_impostor) == (n - 1, n - 1) and "3 of" in t.calibration_set


@pytest.mark.parametrize("name,header", [("pairsDevTest.txt", None), ("pairs.txt", None), ("folds.txt", "2 {n}")])
def test_warns_on_evaluation_pairs(bundle, tmp_path, monkeypatch, name, header):
    _fake_embedder(monkeypatch)
    text, _ = _many_pairs(6, 3)
    if header:  # the same pairs as a 2-fold View 2 file
        lines = text.splitlines()
        n = int(lines[0])
        half = n // 2
        same, diff = lines[1:1 + n], lines[1 + n:]
        text = "\n".join([header.format(n=half)] + same[:half] + diff[:half] + same[half:2 * half] + diff[half:2 * half]) + "\n"
    lfw_root = tmp_path / "lfw"
    (lfw_root / "protocol").mkdir(parents=True)
    (lfw_root / "lfw-deepfunneled").mkdir()
    pairs = lfw_root / "protocol" / name
    pairs.write_text(text)
    res = runner.invoke(app, ["calibrate", "--model", str(bundle), "--pairs", str(pairs), "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["images"] == str((lfw_root / "lfw-deepfunneled").resolve())  # default image root of an LFW layout
    assert any("evaluation set" in w and "optimistic" in w for w in out["warnings"])
    res = runner.invoke(app, ["calibrate", "--model", str(bundle), "--pairs", str(pairs), "--dry-run"])
    assert "warning:" in res.stderr and "optimistic" in res.stderr


def test_no_warning_for_training_pairs(bundle, tmp_path, monkeypatch):
    _fake_embedder(monkeypatch)
    text, _ = _many_pairs(12, 4)
    pairs = tmp_path / "pairsDevTrain.txt"
    pairs.write_text(text)
    res = runner.invoke(app, ["calibrate", "--model", str(bundle), "--pairs", str(pairs), "--far", "0.1", "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["warnings"] == [] and out["images"] == str(tmp_path.resolve())


@pytest.mark.parametrize("case", ["malformed", "missing", "bad_target", "bad_far", "no_images_dir", "only_genuine",
                                  "missing_model"])
def test_errors_exit_2_with_one_line(bundle, tmp_path, monkeypatch, case):
    _fake_embedder(monkeypatch)
    meta_before = (bundle / METADATA_FILE).read_bytes()
    pairs = tmp_path / "pairs.in"
    pairs.write_text(VIEW1)
    images = tmp_path
    args = []
    if case == "malformed":
        pairs.write_text("2\nAlice 1 2\nAlice x 3\nAlice 1 Bob 1\nAlice 2 Bob 1\n")
    elif case == "missing":
        pairs = tmp_path / "nope.txt"
    elif case == "bad_target":
        args = ["--target", "eer"]
    elif case == "bad_far":
        args = ["--far", "1.5"]
    elif case == "no_images_dir":
        images = tmp_path / "no_such_dir"
    elif case == "only_genuine":  # every impostor pair has a no-face image
        pairs.write_text("1\nAlice 1 2\nAlice 1 Nobody 1\n")
    model = tmp_path / "no_bundle" if case == "missing_model" else bundle
    res = runner.invoke(app, ["calibrate", "--model", str(model), "--pairs", str(pairs), "--images", str(images)] + args)
    assert res.exit_code == 2, res.output
    if case == "bad_target":  # a usage error (not a choice): typer's box here, one line under `facever` (main)
        assert "'eer' is not one of 'far', 'accuracy'" in " ".join(res.stderr.replace("│", " ").split())
    else:
        assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error: ")
    assert (bundle / METADATA_FILE).read_bytes() == meta_before
    if case == "malformed":
        assert ":3:" in res.stderr  # the line number
