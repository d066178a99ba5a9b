"""The int8 bundle shipped in models/fast: loads by name, has its own version, embeds like the float
model, and is never compared silently with the float model's stored embeddings.

The face is scikit-image's ``astronaut`` (Eileen Collins, NASA, public domain; the ``astronaut``
fixture of conftest.py).
"""

import numpy as np
import pytest

from facever import config
from facever.api import FaceVerifier


@pytest.fixture(scope="module")
def fast():
    return FaceVerifier(model="fast")


@pytest.fixture(scope="module")
def default():
    return FaceVerifier(model="default")


def test_names_resolve_to_the_shipped_bundles(monkeypatch, tmp_path):
    assert config.model_path("fast") == config.packaged_model_dir("fast")
    assert config.model_path("default") == config.packaged_model_dir()
    assert (config.packaged_model_dir("fast") / "encoder.onnx").is_file()
    monkeypatch.setenv("FACEVER_MODEL", "fast")
    assert config.model_path() == config.packaged_model_dir("fast")
    # a path is still a path
    assert config.model_path(str(tmp_path)) == tmp_path
    assert config.model_path("./fast") != config.packaged_model_dir("fast")


def test_fast_bundle_is_int8_calibrated_and_traceable(fast, default):
    import onnx

    meta = fast.bundle.metadata
    assert fast.model_version != default.model_version
    graph = onnx.load(str(fast.bundle.path / "encoder.onnx"))
    ops = {n.op_type for n in graph.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    q = meta.training["quantization"]
    assert q["source_model_version"] == default.model_version
    assert q["activation_type"] == "QUInt8" and q["weight_type"] == "QInt8" and q["per_channel"]
    assert q["calibration_crops"] and sum(q["calibration_crops"].values()) > 100
    t = meta.threshold
    assert t is not None and 0.0 < t.value < 2.0 and 0.0 <= t.far <= 0.011 and t.n_impostor > 0
    assert meta.open_set and meta.open_set["kind"] == "impostor_distribution"
    # its own leave-one-domain-out spread (benchmarks/open_set_lodo.py --model models/fast --write-metadata)
    spread = meta.open_set["transfer"]["gallery-adapted"]
    assert spread["measured_by"].startswith("benchmarks/open_set_lodo.py") and spread["ratio_max"] > 0
    # two views (one zoom, mirrored) instead of the default's four: the ranges were calibrated on them
    assert meta.view_zooms == [1.05] and meta.flip_tta and q["views"] == {"zooms": [1.05], "mirrored": True}
    assert "zoomed by 1.05 about its centre, each mirrored" in meta.preprocessing
    assert meta.alignment == default.bundle.metadata.alignment
    assert not (fast.bundle.path / "weights.npz").exists(), "inference only"


def test_fast_embeddings_are_unit_and_close_to_float(fast, default, astronaut):
    # the same aligned crop through both encoders: the difference is the quantisation alone
    crop = default.faces(astronaut)[0].crop[None]
    e_q = fast.embedder.embed_crops(crop)[0]
    e_f = default.embedder.embed_crops(crop)[0]
    assert e_q.shape == (128,) and e_q.dtype == np.float32
    assert np.linalg.norm(e_q) == pytest.approx(1.0, abs=1e-5)
    assert float(e_q @ e_f) > 0.99
    # and end to end
    assert float(fast.embed(astronaut) @ default.embed(astronaut)) > 0.99


def test_gallery_enrolled_with_default_refuses_identification_under_fast(tmp_path, fast, default, astronaut):
    from facever.errors import ModelVersionMismatchError
    from facever.gallery import Gallery

    url = f"sqlite:///{tmp_path / 'g.db'}"
    with Gallery(url, verifier=default) as g:
        g.enroll("eileen", [astronaut])
        assert g.identify(astronaut)[0].person == "eileen"
    with Gallery(url, verifier=fast) as g:
        with pytest.raises(ModelVersionMismatchError, match="reindex"):
            g.identify(astronaut)
        g.reindex()
        assert g.identify(astronaut)[0].person == "eileen"


def test_cli_and_service_take_the_name(tmp_path, fast, astronaut):
    import json

    import cv2
    from typer.testing import CliRunner

    from facever.service.settings import ServeSettings
    from facever.service.state import ServiceState
    from facever_cli.app import app

    a = tmp_path / "a.png"
    cv2.imwrite(str(a), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    res = CliRunner().invoke(app, ["verify", str(a), str(a), "--model", "fast", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["model_version"] == fast.model_version
    state = ServiceState.load(ServeSettings(db=f"sqlite:///{tmp_path / 's.db'}", model="fast"))
    try:
        assert state.verifier.model_version == fast.model_version
    finally:
        state.close()


def test_fast_bundle_ships_as_package_data():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "fast/*" in data["facever_models"]
    assert {p.name for p in (root / "models" / "fast").iterdir() if p.is_file()} == {"encoder.onnx", "metadata.json"}


def test_set_views_keeps_the_preprocessing_sentence_true():
    from types import SimpleNamespace

    from facever.training.quantize import _set_views

    meta = SimpleNamespace(flip_tta=True, view_zooms=[1.05, 1.1],
                           preprocessing="RGB 0..255; test-time views: the crop zoomed by 1.05, 1.1 about its centre, "
                                         "each mirrored; embedding = renormalised mean over the views")
    _set_views(meta, [1.1])
    assert meta.view_zooms == [1.1]
    assert meta.preprocessing == ("RGB 0..255; test-time views: the crop zoomed by 1.1 about its centre, each "
                                  "mirrored; embedding = renormalised mean over the views")
    for bad in ([], [0.1], [3.0]):
        with pytest.raises(ValueError):
            _set_views(meta, bad)
