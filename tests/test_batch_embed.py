"""Batch embedding: ``FaceVerifier.embed_many`` / ``facever.batch.iter_embed``, the faces file (NPZ,
Parquet) and ``facever embed`` (resumable), with the stub detector and the NumPy encoder of conftest;
one test runs the shipped model on a real photo."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import StubDetector, numpy_verifier, person_image, png_bytes
from typer.testing import CliRunner

from facever.batch import iter_embed
from facever.errors import ModelVersionMismatchError
from facever.faces_file import FacesFile, read_faces
from facever_cli.app import app


def _inputs():
    """Six images: arrays, PNG bytes, undecodable bytes and a flat image (no face)."""
    flat = np.zeros((112, 112, 3), np.uint8)  # black: no face, even on the padded retry
    return [person_image(1), png_bytes(person_image(2)), b"not an image", flat, person_image(3, 1), person_image(1, 2)]


def test_embed_many_matches_one_by_one_and_reports_unreadable_images():
    verifier = numpy_verifier()
    images = _inputs()
    results = verifier.embed_many(images, chunk=2, workers=2)
    assert [r.source for r in results] == ["<array>", "<bytes>", "<bytes>", "<array>", "<array>", "<array>"]
    assert [len(r.faces) for r in results] == [1, 1, 0, 0, 1, 1]
    assert results[2].error is not None and "not a recognised image format" in results[2].error
    assert results[3].error is None and results[3].ok  # read, no face: recorded, not an error
    for i in (0, 1, 4, 5):
        face = results[i].faces[0]
        np.testing.assert_allclose(face.embedding, verifier.embed(images[i]), atol=1e-6)
        assert face.landmarks.shape == (5, 2) and len(face.box) == 4 and face.quality.face_size > 0
    # same person (1, two variants) near, different people far
    d_same = np.linalg.norm(results[0].faces[0].embedding - results[5].faces[0].embedding)
    d_diff = np.linalg.norm(results[0].faces[0].embedding - results[4].faces[0].embedding)
    assert d_same < 0.2 < d_diff


class _TwoFaces(StubDetector):
    """Two faces per image: the stub's face and a smaller copy of it."""

    def detect(self, image):
        from facever.detection import Face

        faces = super().detect(image)
        if faces:
            f = faces[0]
            faces.append(Face(box=(0.0, 0.0, f.box[2] / 2, f.box[3] / 2), landmarks=f.landmarks / 2, score=0.95))
        return faces


def test_every_face_largest_first_or_only_the_largest():
    verifier = numpy_verifier()
    verifier.embedder.detector = _TwoFaces()
    both = verifier.embed_many([person_image(4)], faces="all")[0].faces
    assert len(both) == 2 and both[0].box[2] > both[1].box[2]
    only = verifier.embed_many([person_image(4)], faces="largest")[0].faces
    assert len(only) == 1 and only[0].box == both[0].box
    with pytest.raises(ValueError):
        verifier.embed_many([person_image(4)], faces="some")


def test_iter_embed_keeps_input_order_and_reports_progress():
    verifier = numpy_verifier()
    images = [person_image(p) for p in range(11)]
    seen = []
    results = list(iter_embed(verifier.embedder, iter(images), chunk=3, workers=3, total=11,
                              progress=lambda done, total: seen.append((done, total))))
    expected = verifier.embedder.embed_crops(np.stack([verifier.faces(im)[0].crop for im in images]))
    np.testing.assert_allclose(np.stack([r.faces[0].embedding for r in results]), expected, atol=1e-6)
    assert seen == [(3, 11), (6, 11), (9, 11), (11, 11)]


def _file_with_rows(path, version="np-1", verifier=None):
    verifier = verifier or numpy_verifier()
    store = FacesFile(path, version)
    for k, result in enumerate(verifier.embed_many(_inputs())):
        store.add(f"dir/img{k}.png", 100 + k, 10**9 + k, result)
    store.save()
    return store


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_faces_file_round_trip_resume_and_version_rule(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"faces{suffix}"
    store = _file_with_rows(path)
    cols, version = read_faces(path)
    assert version == "np-1" and len(cols["path"]) == store.n_faces == 4
    assert cols["embedding"].shape == (4, 128) and cols["landmarks"].shape == (4, 5, 2) and cols["box"].shape == (4, 4)
    np.testing.assert_allclose(np.linalg.norm(cols["embedding"], axis=1), 1.0, atol=1e-5)
    assert list(cols["image_status"]) == ["ok", "ok", "error", "no_face", "ok", "ok"]
    assert set(cols["model_version"]) == {"np-1"}
    again = FacesFile(path, "np-1")  # resume: what was read is done, unless the file changed
    assert again.is_done("dir/img0.png", 100, 10**9) and not again.is_done("dir/img0.png", 101, 10**9)
    assert not again.is_done("dir/new.png", 1, 1) and again.n_faces == 4
    np.testing.assert_array_equal(again.columns()["embedding"], cols["embedding"])
    with pytest.raises(ModelVersionMismatchError, match="np-1"):
        FacesFile(path, "np-2")
    assert FacesFile(path, "np-2", overwrite=True).n_faces == 0


def test_npz_loads_without_pickle(tmp_path):
    _file_with_rows(tmp_path / "f.npz")
    with np.load(tmp_path / "f.npz", allow_pickle=False) as data:
        assert data["embedding"].dtype == np.float32 and json.loads(str(data["meta"]))["model_version"] == "np-1"


# ---- facever embed ---------------------------------------------------------------------------------
@pytest.fixture
def photo_dir(tmp_path):
    import cv2

    root = tmp_path / "photos"
    for person in range(3):
        (root / f"p{person}").mkdir(parents=True)
        for v in range(2):
            cv2.imwrite(str(root / f"p{person}" / f"{v}.png"), person_image(person, v)[:, :, ::-1])
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    cv2.imwrite(str(root / "flat.png"), np.zeros((80, 80, 3), np.uint8))
    (root / ".hidden").mkdir()
    cv2.imwrite(str(root / ".hidden" / "x.png"), person_image(9))
    (root / "notes.txt").write_text("not a photo")
    return root


@pytest.fixture
def stub_model(monkeypatch):
    """``facever embed`` loads the NumPy encoder and the stub detector (no TensorFlow, no model file)."""
    verifier = numpy_verifier()
    monkeypatch.setattr("facever.api.FaceVerifier", lambda model=None: verifier)
    return verifier


def test_cli_embed_writes_every_face_then_resumes(photo_dir, tmp_path, stub_model):
    out = tmp_path / "faces.npz"
    res = CliRunner().invoke(app, ["embed", str(photo_dir), "--out", str(out), "--json", "--workers", "2",
                                   "--batch-size", "3"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["photos"] == 8 and summary["embedded_now"] == 8 and summary["faces_now"] == 6
    assert summary["no_face"] == 1 and [e["path"] for e in summary["unreadable"]] == ["broken.jpg"]
    cols, version = read_faces(out)
    assert version == "np-1" and sorted(set(cols["path"])) == [f"p{p}/{v}.png" for p in range(3) for v in range(2)]
    # a second run embeds only what is new or changed
    import cv2

    cv2.imwrite(str(photo_dir / "p0" / "2.png"), person_image(0, 3)[:, :, ::-1])
    os.utime(photo_dir / "p1" / "0.png", ns=(1, 1))
    res = CliRunner().invoke(app, ["embed", str(photo_dir), "--out", str(out), "--json"])
    summary = json.loads(res.stdout)
    assert res.exit_code == 0 and summary["embedded_now"] == 2 and summary["skipped_already_embedded"] == 7
    assert summary["faces_total"] == 7 and len(read_faces(out)[0]["path"]) == 7


def test_cli_embed_refuses_another_models_file_and_bad_input(photo_dir, tmp_path, stub_model):
    out = tmp_path / "faces.npz"
    _file_with_rows(out, version="other", verifier=stub_model)
    res = CliRunner().invoke(app, ["embed", str(photo_dir), "--out", str(out)])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "model other" in res.stderr
    res = CliRunner().invoke(app, ["embed", str(photo_dir), "--out", str(out), "--overwrite", "--json"])
    assert res.exit_code == 0 and read_faces(out)[1] == "np-1"
    res = CliRunner().invoke(app, ["embed", str(tmp_path / "absent"), "--out", str(out)])
    assert res.exit_code == 2 and "no such folder" in res.stderr
    res = CliRunner().invoke(app, ["embed", str(photo_dir), "--out", str(tmp_path / "faces.csv")])
    assert res.exit_code == 2 and ".npz or .parquet" in res.stderr


def test_cli_embed_text_report(photo_dir, tmp_path, stub_model):
    res = CliRunner().invoke(app, ["embed", str(photo_dir), "-o", str(tmp_path / "f.npz"), "--largest"])
    assert res.exit_code == 0, res.output
    assert "embedded 8 photo(s), 6 face(s)" in res.stdout and "1 unreadable" in res.stdout
    assert "broken.jpg" in res.stdout


def test_shipped_model_embed_many_equals_embed(astronaut):
    """The real pipeline (MTCNN + the shipped encoder): batched rows equal the one-image API."""
    from facever.api import FaceVerifier

    verifier = FaceVerifier()
    mirrored = astronaut[:, ::-1].copy()
    results = verifier.embed_many([astronaut, mirrored, png_bytes(astronaut)], workers=2, chunk=2)
    assert all(r.ok and r.faces for r in results)
    for image, result in zip([astronaut, mirrored, astronaut], results):
        np.testing.assert_allclose(result.faces[0].embedding, verifier.embed(image), atol=1e-5)
    assert results[0].faces[0].score > 0.9
