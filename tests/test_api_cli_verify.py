"""The Python API (FaceVerifier, verify) and `facever verify` through typer's CliRunner."""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facever.api import FaceVerifier
from facever.errors import ImageError, NoFaceError, NoModelError

runner = CliRunner()


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut):
    d = tmp_path_factory.mktemp("photos")
    bgr = cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(d / "a.jpg"), bgr)
    cv2.imwrite(str(d / "a_copy.png"), bgr)
    cv2.imwrite(str(d / "noise.png"), np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    (d / "text.jpg").write_text("hello")
    return d


@pytest.fixture(scope="module")
def verifier(tiny_bundle_dir):
    return FaceVerifier(model=tiny_bundle_dir)


def test_embed_accepts_path_bytes_and_array(verifier, photos, astronaut):
    e_path = verifier.embed(photos / "a_copy.png")
    e_bytes = verifier.embed((photos / "a_copy.png").read_bytes())
    e_array = verifier.embed(astronaut)
    assert e_path.shape == (128,) and e_path.dtype == np.float32
    assert np.linalg.norm(e_path) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(e_path, e_bytes, atol=1e-6)
    np.testing.assert_allclose(e_path, e_array, atol=1e-6)


def test_verify_same_image(verifier, photos):
    result = verifier.verify(photos / "a.jpg", photos / "a_copy.png")
    assert result.same and result.distance < 0.2 and result.threshold == 0.8
    assert result.far == 0.01 and result.frr == 0.1 and result.model_version == verifier.model_version
    assert len(result.faces) == 2


def test_threshold_override_drops_calibrated_rates(tiny_bundle_dir, photos):
    v = FaceVerifier(model=tiny_bundle_dir, threshold=0.0)
    r = v.compare(np.eye(128, dtype=np.float32)[0], np.eye(128, dtype=np.float32)[1])
    assert not r.same and r.far is None and r.distance == pytest.approx(np.sqrt(2))


def test_bad_inputs_raise_typed_errors(verifier, photos):
    with pytest.raises(NoFaceError, match="noise.png"):
        verifier.verify(photos / "a.jpg", photos / "noise.png")
    with pytest.raises(ImageError, match="text.jpg"):
        verifier.embed(photos / "text.jpg")
    with pytest.raises(ImageError, match="missing.jpg"):
        verifier.embed(photos / "missing.jpg")


def test_no_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEVER_MODEL", str(tmp_path / "nothing"))
    with pytest.raises(NoModelError, match="no trained model"):
        FaceVerifier()


# ---- CLI -------------------------------------------------------------------------------------
from facever_cli.app import app  # noqa: E402


def test_cli_verify_same_exit_0_with_json(tiny_bundle_dir, photos):
    res = runner.invoke(app, ["verify", str(photos / "a.jpg"), str(photos / "a_copy.png"),
                              "--model", str(tiny_bundle_dir), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["same"] is True and data["threshold"] == 0.8 and data["distance"] < 0.2


def test_cli_verify_different_exit_1(tiny_bundle_dir, photos):
    res = runner.invoke(app, ["verify", str(photos / "a.jpg"), str(photos / "a_copy.png"),
                              "--model", str(tiny_bundle_dir), "--threshold", "0"])
    assert res.exit_code == 1 and "different" in res.stdout


def test_cli_verify_text_output(tiny_bundle_dir, photos):
    res = runner.invoke(app, ["verify", str(photos / "a.jpg"), str(photos / "a_copy.png"), "--model", str(tiny_bundle_dir)])
    assert res.exit_code == 0
    assert "same person" in res.stdout and "τ = 0.8000" in res.stdout and "false accept rate 1.00%" in res.stdout


@pytest.mark.parametrize("second,needle", [("noise.png", "no face found"), ("text.jpg", "text.jpg"),
                                           ("missing.jpg", "missing.jpg")])
def test_cli_verify_errors_exit_2_one_line(tiny_bundle_dir, photos, second, needle):
    res = runner.invoke(app, ["verify", str(photos / "a.jpg"), str(photos / second), "--model", str(tiny_bundle_dir)])
    assert res.exit_code == 2
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in res.output


def test_cli_verify_without_model_says_so(tmp_path, photos, monkeypatch):
    monkeypatch.setenv("FACEVER_MODEL", str(tmp_path / "none"))
    res = runner.invoke(app, ["verify", str(photos / "a.jpg"), str(photos / "a.jpg")])
    assert res.exit_code == 2 and "no trained model" in res.stderr


def test_cli_verify_needs_exactly_one_of_image2_or_person(tiny_bundle_dir, photos):
    res = runner.invoke(app, ["verify", str(photos / "a.jpg"), "--model", str(tiny_bundle_dir)])
    assert res.exit_code == 2 and "exactly one" in res.stderr


def test_cli_help_has_examples():
    res = runner.invoke(app, ["verify", "--help"])
    assert res.exit_code == 0 and "facever verify alice1.jpg alice2.jpg" in res.stdout


def test_embedding_is_the_mean_over_the_bundle_views():
    """A crop's embedding is the renormalised mean over its test-time views (zooms × mirrors), each
    view encoded exactly once, whether crops come one at a time or in parallel batches."""
    from conftest import numpy_verifier

    from facever.alignment import crop_views

    verifier = numpy_verifier()
    embedder = verifier.embedder
    embedder.bundle.metadata.view_zooms = [1.0, 1.2]
    embedder.bundle.metadata.flip_tta = True
    forward = embedder._forward
    seen = []
    embedder._forward = lambda batch: seen.append(len(batch)) or forward(batch)
    crops = np.random.default_rng(1).integers(0, 255, (5, 16, 16, 3), dtype=np.uint8)
    got = embedder.embed_crops(crops)
    assert sum(seen) == 5 * 4
    want = sum(forward(v.astype(np.float32)) for v in crop_views(crops, [1.0, 1.2], flip=True))
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    seen.clear()
    np.testing.assert_allclose(embedder.embed_crops(crops[:1]), want[:1], atol=1e-5)
    assert seen == [4]  # one face: its four views in one encoder call
