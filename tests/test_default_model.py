"""The default model shipped in models/default: it loads, is calibrated, and behaves on a real face.

The photos are scikit-image's ``astronaut`` (Eileen Collins, NASA) and matplotlib's
``grace_hopper`` (US Navy), real public-domain portraits that the test dependencies ship; other views
of the same face are made here by photometric and geometric changes.
"""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facever import config
from facever.api import FaceVerifier
from facever.bundle import FORMAT_VERSION, load_bundle


@pytest.fixture(scope="module")
def shipped():
    path = config.packaged_model_dir()
    assert path.is_dir(), f"the default model must ship in {path}"
    return load_bundle(path)


@pytest.fixture(scope="module")
def default_verifier(shipped):
    return FaceVerifier(model=shipped)


def test_shipped_bundle_is_calibrated_small_and_traceable(shipped):
    from facever.training.dlib_format import DLIB_RESNET_SHA256

    meta = shipped.metadata
    assert meta.architecture == "dlib_resnet" and meta.alignment == "dlib"
    assert meta.embedding_dim == 128 and meta.input_size == 150
    t = meta.threshold
    assert t is not None and 0.0 < t.value < 2.0
    assert 0.0 <= t.far <= 0.01 and 0.0 <= t.frr <= 0.05 and t.n_genuine > 0 and t.n_impostor > 0
    assert meta.verification_head, "the logistic 'same person' head is stored with the model"
    assert meta.open_set, "identification thresholds follow the gallery (open-set data)"
    raw = json.loads((config.packaged_model_dir() / "metadata.json").read_text())
    assert raw["format_version"] == FORMAT_VERSION and raw["alignment"] == "dlib" and "identify_threshold" not in raw
    assert shipped.version == "38afd4e763e47fee"  # the metadata format is not part of the model version
    size = sum(f.stat().st_size for f in config.packaged_model_dir().iterdir() if f.is_file())
    assert size < 50 * 1024 * 1024
    # provenance: dlib's CC0 file, identified by its hash; fine-tuned with our triplet loss; no
    # evaluation person was trained on or calibrated with
    assert meta.source["source_sha256"] == DLIB_RESNET_SHA256 and "CC0" in meta.source["licence"]
    assert meta.training["finetune"]["config"]["loss"] in ("batch_hard", "semi_hard", "batch_all")
    calibration = meta.training["calibration_people"]
    test_people = {"pins": _split("pins_test"), "bollywood": _split("bollywood_test")}
    for ds, people in test_people.items():
        assert people and not people & set(calibration.get(ds, ()))


def _split(name: str) -> set[str]:
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "facever" / "training" / "splits" / f"{name}.txt"
    return {line.strip() for line in path.read_text().splitlines() if line.strip()} if path.is_file() else set()


def test_shipped_graph_matches_its_trainable_weights(shipped):
    from facever.training.bundle import load_trainable

    trainable = load_trainable(config.packaged_model_dir())
    x = np.random.default_rng(0).uniform(0, 255, (2, 150, 150, 3)).astype(np.float32)
    np.testing.assert_allclose(shipped.encoder(x), np.asarray(trainable.model(x)), atol=1e-5)


def test_default_model_embeds_unit_vectors(default_verifier, astronaut):
    e = default_verifier.embed(astronaut)
    assert e.shape == (128,) and e.dtype == np.float32
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)


def test_default_model_same_face_under_changes_is_same(default_verifier, astronaut):
    h, w = astronaut.shape[:2]
    darker = np.clip(astronaut.astype(np.float32) * 0.7, 0, 255).astype(np.uint8)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 6.0, 0.8)
    rotated = cv2.warpAffine(astronaut, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 40])
    for other in (darker, rotated, jpeg.tobytes()):
        r = default_verifier.verify(astronaut, other)
        assert r.same, f"distance {r.distance:.3f} above τ {r.threshold:.3f}"
        assert r.far is not None and r.probability is not None and r.probability > 0.5


def test_default_model_tells_two_real_people_apart(default_verifier, astronaut, grace_hopper):
    """A real negative: two different people (0.52 apart with the shipped model, τ 0.43)."""
    r = default_verifier.verify(astronaut, grace_hopper)
    assert not r.same, f"distance {r.distance:.3f} at or below τ {r.threshold:.3f}"
    assert r.distance > r.threshold + 0.05 and r.probability < 0.5
    # and each is still herself (so the gap is the model's, not a failed detection)
    assert default_verifier.verify(grace_hopper, cv2.GaussianBlur(grace_hopper, (0, 0), 1.0)).same


def test_cli_uses_the_default_model(tmp_path, astronaut, monkeypatch):
    from facever_cli.app import app

    monkeypatch.delenv("FACEVER_MODEL", raising=False)
    a = tmp_path / "a.png"
    cv2.imwrite(str(a), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    res = CliRunner().invoke(app, ["verify", str(a), str(a), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["same"] is True and data["distance"] < 0.05
    assert data["model_version"] == load_bundle(config.packaged_model_dir()).version
