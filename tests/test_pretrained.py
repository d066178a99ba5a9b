"""Import of dlib's face-recognition ResNet: exact against dlib, and clear errors for bad files.

Needs the test extra's ``face_recognition_models`` (the CC0 weights) and ``dlib-bin`` (the reference
implementation); synthetic chips suffice, since the same function is computed.
"""

from __future__ import annotations

import numpy as np
import pytest

from facever.errors import ModelError

frm = pytest.importorskip("face_recognition_models")


@pytest.fixture(scope="module")
def dat_path():
    from facever.training.dlib_format import find_packaged_model

    return find_packaged_model()


@pytest.fixture(scope="module")
def imported(dat_path):
    from facever.training.pretrained import import_dlib_resnet

    return import_dlib_resnet(dat_path, normalize=False)


def _chips(n: int = 6, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields (a chip-like spread of values, not noise), ``(n, 150, 150, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, 1, 3))
    walk = rng.normal(0, 40, (n, 150, 150, 3)).cumsum(1) / 10
    return np.clip(base + walk, 0, 255).astype(np.uint8)


def test_file_parses_to_its_end_with_the_known_layout(imported, dat_path):
    from facever.training.dlib_format import DLIB_RESNET_SHA256

    model, net, path = imported
    assert path == dat_path
    assert net.sha256 == DLIB_RESNET_SHA256
    assert net.n_parameters == 5_614_592
    assert net.input_size == (150, 150)
    np.testing.assert_allclose(net.mean_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    assert sum(l.kind == "con" for l in net.layers) == 29
    assert model.output_shape == (None, 128)
    sizes = [model.get_layer(n).output.shape[1] for n in ("stem_conv", "stem_pool", "s1b0_out", "s2b0_out", "s3b0_out", "s4b0_out")]
    assert sizes == [72, 35, 17, 8, 4, 2]


def test_keras_model_equals_dlibs_own_descriptors(imported):
    dlib = pytest.importorskip("dlib")
    model, _, path = imported
    reference = dlib.face_recognition_model_v1(str(path))
    chips = _chips()
    want = np.stack([np.asarray(reference.compute_face_descriptor(c)) for c in chips]).astype(np.float32)
    got = np.asarray(model(chips.astype(np.float32), training=False))
    assert np.abs(got - want).max() < 1e-5


def test_normalised_model_is_the_unit_descriptor(imported, dat_path):
    from facever.training.pretrained import import_dlib_resnet

    raw_model = imported[0]
    unit_model = import_dlib_resnet(dat_path, normalize=True)[0]
    x = _chips(3, seed=1).astype(np.float32)
    raw = np.asarray(raw_model(x))
    np.testing.assert_allclose(np.asarray(unit_model(x)), raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("damage", ["truncated", "trailing", "garbage", "empty", "missing"])
def test_bad_files_are_refused_naming_the_file(dat_path, tmp_path, damage):
    from facever.training.dlib_format import read_dlib_resnet

    bad = tmp_path / f"{damage}.dat"
    data = dat_path.read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "trailing":
        bad.write_bytes(data + b"\0\0\0\0")
    elif damage == "garbage":
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif damage == "empty":
        bad.write_bytes(b"")
    with pytest.raises(ModelError, match=str(bad.name)):
        read_dlib_resnet(bad)


def test_failed_save_never_leaves_a_half_written_bundle(tmp_path, monkeypatch):
    import facever.training.export as export
    from facever.bundle import BundleMetadata
    from facever.training.bundle import TrainableBundle
    from facever.training.network import build_encoder

    def broken(*_args, **_kwargs):
        raise RuntimeError("export failed")

    monkeypatch.setattr(export, "export_encoder", broken)
    bundle = TrainableBundle(build_encoder("resnet_s", input_size=32, width=8),
                             BundleMetadata(architecture="resnet_s", input_size=32, alignment="arcface"))
    with pytest.raises(RuntimeError):
        bundle.save(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
