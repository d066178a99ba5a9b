"""Model bundles: save (Keras + exported ONNX graph) / load round trip, version hash, clear errors."""

import json

import numpy as np
import pytest

from facever.bundle import ENCODER_FILE, METADATA_FILE, MODEL_FILE, Threshold, load_bundle, read_metadata
from facever.training.bundle import load_trainable
from facever.training.network import ARCHITECTURES, build_encoder
from facever.errors import ModelError, NoModelError


@pytest.mark.parametrize("arch", sorted(set(ARCHITECTURES) - {"dlib_resnet"}))
def test_encoder_outputs_unit_vectors(arch):
    model = build_encoder(arch, input_size=32, width=8)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == (3, 128) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)


def test_bad_architecture_and_size_rejected():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_encoder("nope")
    with pytest.raises(ValueError, match="multiple of 16"):
        build_encoder("resnet_s", input_size=50)
    with pytest.raises(ValueError, match="150x150"):
        build_encoder("dlib_resnet", input_size=96)


def test_exported_graph_matches_keras_and_round_trips(tiny_bundle_dir, tmp_path):
    trainable = load_trainable(tiny_bundle_dir)
    bundle = load_bundle(tiny_bundle_dir)
    assert bundle.metadata.threshold == Threshold(value=0.8, far=0.01, frr=0.1, target="test")
    x = np.random.default_rng(1).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    keras_out = np.asarray(trainable.model(x, training=False))
    np.testing.assert_allclose(bundle.encoder(x), keras_out, atol=1e-5)
    version = trainable.save(tmp_path / "copy")
    again = load_bundle(tmp_path / "copy")
    np.testing.assert_allclose(again.encoder(x), keras_out, atol=1e-5)
    assert again.version == version == bundle.version and len(version) == 16
    assert again.metadata.to_json() == bundle.metadata.to_json()


def test_exported_graph_has_one_input(tiny_bundle_dir):
    import onnx

    graph = onnx.load(str(tiny_bundle_dir / ENCODER_FILE)).graph
    assert [i.name for i in graph.input] == ["face"]


def test_version_changes_with_weights(tiny_bundle_dir, tmp_path):
    trainable = load_trainable(tiny_bundle_dir)
    w = trainable.model.get_layer("head_dense").kernel
    w.assign(w.numpy() + 0.01)
    assert trainable.save(tmp_path / "changed") != load_bundle(tiny_bundle_dir).version


def test_metadata_only_update_keeps_version(tiny_bundle_dir, tmp_path):
    trainable = load_trainable(tiny_bundle_dir)
    v = trainable.save(tmp_path / "b")
    bundle = load_bundle(tmp_path / "b")
    bundle.metadata.threshold = Threshold(value=0.5)
    bundle.save_metadata()
    assert read_metadata(tmp_path / "b").threshold.value == 0.5
    assert load_bundle(tmp_path / "b").version == v


def test_missing_and_broken_bundles_raise_clear_errors(tmp_path, tiny_bundle_dir):
    with pytest.raises(NoModelError, match="not found"):
        load_bundle(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoModelError, match=METADATA_FILE):
        load_bundle(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / METADATA_FILE).write_text((tiny_bundle_dir / METADATA_FILE).read_text())
    with pytest.raises(NoModelError, match=ENCODER_FILE):
        load_bundle(broken)
    (broken / ENCODER_FILE).write_bytes(b"not a graph")
    with pytest.raises(ModelError, match=ENCODER_FILE):
        load_bundle(broken)
    (broken / MODEL_FILE).write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="cannot load model"):
        load_trainable(broken)
    newer = tmp_path / "newer"
    newer.mkdir()
    meta = json.loads((tiny_bundle_dir / METADATA_FILE).read_text())
    meta["format_version"] = 99
    (newer / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="newer"):
        read_metadata(newer)


def test_view_zooms_are_part_of_the_version(tiny_bundle_dir, tmp_path):
    import json

    plain = load_bundle(tiny_bundle_dir).version
    trainable = load_trainable(tiny_bundle_dir)
    trainable.metadata.view_zooms = [1.05, 1.1]
    zoomed = trainable.save(tmp_path / "z")
    assert zoomed != plain  # same graph, other views: other embeddings, so another version
    assert load_bundle(tmp_path / "z").version == zoomed
    assert load_bundle(tmp_path / "z").metadata.view_zooms == [1.05, 1.1]
    meta_file = tmp_path / "z" / METADATA_FILE
    data = json.loads(meta_file.read_text())
    for bad in ([], [0.1], ["1.1"], 1.1, [True]):
        data["view_zooms"] = bad
        meta_file.write_text(json.dumps(data))
        with pytest.raises(ModelError, match="view_zooms"):
            load_bundle(tmp_path / "z")


def _write_meta(directory, data) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / METADATA_FILE).write_text(json.dumps(data))


def test_format_4_drops_the_fixed_identify_threshold_and_older_formats_still_load(tmp_path, tiny_bundle_dir):
    from facever.bundle import FORMAT_VERSION, BundleMetadata

    written = json.loads((tiny_bundle_dir / METADATA_FILE).read_text())
    # an older facever (format 3) refuses bundles of a newer format: this one is one
    assert written["format_version"] == FORMAT_VERSION == 4 and "identify_threshold" not in written
    # format 3, with the removed fixed identification threshold: loads, the field is ignored, and it
    # is written back as the current format
    old = {**written, "format_version": 3, "identify_threshold": {"value": 0.3, "target": "fpir=0.01"}}
    _write_meta(tmp_path / "v3", old)
    meta = read_metadata(tmp_path / "v3")
    assert meta.format_version == FORMAT_VERSION and not hasattr(meta, "identify_threshold")
    assert meta.alignment == "arcface" and meta.threshold == Threshold(value=0.8, far=0.01, frr=0.1, target="test")
    assert "identify_threshold" not in meta.to_json()
    # a newer format than this facever's is refused
    _write_meta(tmp_path / "v5", {**written, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(ModelError, match="newer than this facever"):
        read_metadata(tmp_path / "v5")
    # alignment: required for new metadata; format 1 (before the dlib template) reads as arcface;
    # from format 2 on a file without it is refused rather than guessed
    with pytest.raises(TypeError, match="alignment"):
        BundleMetadata(architecture="x", input_size=150)
    no_alignment = {k: v for k, v in written.items() if k != "alignment"}
    _write_meta(tmp_path / "v1", {**no_alignment, "format_version": 1})
    assert read_metadata(tmp_path / "v1").alignment == "arcface"
    _write_meta(tmp_path / "v3b", {**no_alignment, "format_version": 3})
    with pytest.raises(ModelError, match="alignment template"):
        read_metadata(tmp_path / "v3b")
