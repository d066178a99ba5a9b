"""The onnxruntime MTCNN port against the TensorFlow MTCNNDetector it replaces.

Parity: same number of faces, boxes and landmarks within 0.01 px, scores within 1e-4, on a real photo
shipped by scikit-image and on synthetic images (two faces, a small face, no face, noise, an image
smaller than PNet's window, downscaling options, batches of mixed shapes). The graphs come from
``models/mtcnn`` when present, else they are exported here, so the tests also run on a fresh clone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from facever.detection import Face
from facever.training.mtcnn_tf import TFMTCNNDetector as MTCNNDetector
from facever.errors import ModelError
from facever.mtcnn_onnx import OnnxMTCNNDetector, default_model_dir

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "mtcnn"
GRAPHS = ("pnet.onnx", "rnet.onnx", "onet.onnx")
BOX_TOL = 0.01  # px, boxes and landmarks
SCORE_TOL = 1e-4


def _shipped_present() -> bool:
    return all((SHIPPED / name).is_file() for name in GRAPHS)


@pytest.fixture(scope="module")
def fresh_export(tmp_path_factory) -> Path:
    """The graphs exported from the mtcnn package by this checkout's exporter (needs TensorFlow)."""
    from facever.training.export_mtcnn import export_mtcnn

    out = tmp_path_factory.mktemp("mtcnn_onnx")
    paths = export_mtcnn(out)
    assert sorted(p.name for p in paths.values()) == sorted(GRAPHS)
    return out


@pytest.fixture(scope="module")
def graphs_dir(request) -> Path:
    """The shipped graphs, or a fresh export when ``models/mtcnn`` is missing (fresh clone)."""
    if _shipped_present():
        return SHIPPED
    return request.getfixturevalue("fresh_export")


@pytest.fixture(scope="module")
def tf_detector() -> MTCNNDetector:
    return MTCNNDetector()


@pytest.fixture(scope="module")
def onnx_detector(graphs_dir) -> OnnxMTCNNDetector:
    return OnnxMTCNNDetector(model_dir=graphs_dir)


def _area(image: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def images(astronaut) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    face = astronaut[20:260, 110:340]  # the astronaut's head and shoulders
    small = np.full((160, 200, 3), 120, np.uint8)
    small[50:95, 70:113] = _area(face, 43, 45)  # a face of about 25 px
    return {
        "astronaut": astronaut,
        "astronaut_250": _area(astronaut, 250, 250),
        "two_faces": np.concatenate([_area(face, 180, 190), cv2.flip(_area(face, 150, 190), 1)], axis=1),
        "small_face": small,
        "whole_image_64": _area(astronaut, 64, 64),
        "flat_grey": np.full((120, 160, 3), 128, np.uint8),
        "noise": rng.integers(0, 256, (180, 240, 3), dtype=np.uint8),
        "tiny": _area(astronaut, 11, 9),
        "strip": astronaut[60:140],  # 80 px high, wide
    }


def assert_same_faces(ref: list[Face], got: list[Face]) -> tuple[float, float, float]:
    """Same count and order; returns the largest box, landmark and score differences."""
    assert len(got) == len(ref), f"{len(got)} faces, TensorFlow found {len(ref)}"
    worst = [0.0, 0.0, 0.0]
    for r, g in zip(ref, got):
        assert isinstance(g, Face)
        assert g.landmarks.shape == (5, 2) and g.landmarks.dtype == np.float32
        d = (np.abs(np.subtract(g.box, r.box)).max(), np.abs(g.landmarks - r.landmarks).max(),
             abs(g.score - r.score))
        assert d[0] <= BOX_TOL, f"box {g.box} vs {r.box}"
        assert d[1] <= BOX_TOL, f"landmarks {g.landmarks} vs {r.landmarks}"
        assert d[2] <= SCORE_TOL, f"score {g.score} vs {r.score}"
        worst = [max(a, b) for a, b in zip(worst, d)]
    return tuple(worst)


EXPECTED_FACES = {"astronaut": 1, "astronaut_250": 1, "two_faces": 2, "small_face": 1,
                  "flat_grey": 0, "noise": 0, "tiny": 0}


@pytest.mark.parametrize("name", ["astronaut", "astronaut_250", "two_faces", "small_face",
                                  "whole_image_64", "flat_grey", "noise", "tiny", "strip"])
def test_single_image_parity(name, images, tf_detector, onnx_detector):
    image = images[name]
    ref = tf_detector.detect(image)
    got = onnx_detector.detect(image)
    assert_same_faces(ref, got)
    if name in EXPECTED_FACES:  # the parity is not vacuous
        assert len(got) == EXPECTED_FACES[name]


@pytest.mark.parametrize("options", [{"max_side": 300}, {"min_face_size": 40}, {"min_score": 0.99}])
def test_options_parity(options, images, graphs_dir):
    tf_det, onnx_det = MTCNNDetector(**options), OnnxMTCNNDetector(model_dir=graphs_dir, **options)
    for name in ("astronaut", "two_faces"):
        assert_same_faces(tf_det.detect(images[name]), onnx_det.detect(images[name]))
    assert len(onnx_det.detect(images["astronaut"])) == 1


def test_batch_parity_and_batch_equals_single(images, tf_detector, onnx_detector):
    # two images of one shape share each network call; other shapes run apart
    batch = [images["astronaut_250"], images["two_faces"], images["flat_grey"],
             cv2.flip(images["astronaut_250"], 1), images["tiny"], images["small_face"]]
    ref = tf_detector.detect_batch(batch)
    got = onnx_detector.detect_batch(batch)
    assert len(got) == len(batch)
    for r, g in zip(ref, got):
        assert_same_faces(r, g)
    for image, g in zip(batch, got):
        assert_same_faces(g, onnx_detector.detect(image))
    assert onnx_detector.detect_batch([]) == []


def test_faces_sorted_by_score_with_image_conventions(images, onnx_detector):
    faces = onnx_detector.detect(images["two_faces"])
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    for face in faces:
        x1, y1, x2, y2 = face.box
        le, re, nose, ml, mr = face.landmarks
        assert x1 < x2 and y1 < y2
        assert le[0] < re[0] and ml[0] < mr[0] and max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])


def test_constructor_arguments():
    with pytest.raises(ValueError):
        OnnxMTCNNDetector(min_face_size=10)
    with pytest.raises(ValueError):
        OnnxMTCNNDetector(threads=0)
    det = OnnxMTCNNDetector()
    assert (det.min_face_size, det.max_side, det.min_score, det.threads) == (20, 640, 0.9, 1)
    assert det._sessions is None  # loaded lazily


def test_missing_or_corrupt_graph_raises_model_error(tmp_path, graphs_dir):
    image = np.full((60, 60, 3), 100, np.uint8)
    with pytest.raises(ModelError, match="pnet.onnx"):
        OnnxMTCNNDetector(model_dir=tmp_path / "nowhere").detect(image)
    for name in GRAPHS:
        (tmp_path / name).write_bytes((graphs_dir / name).read_bytes())
    (tmp_path / "rnet.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(ModelError, match="rnet.onnx"):
        OnnxMTCNNDetector(model_dir=tmp_path).detect(image)


def test_graphs_have_one_input_and_named_outputs(graphs_dir, fresh_export):
    import onnxruntime as ort

    expected = {"pnet.onnx": ["bbox_reg", "prob"], "rnet.onnx": ["bbox_reg", "prob"],
                "onet.onnx": ["bbox_reg", "landmarks", "prob"]}
    sides = {"pnet.onnx": 31, "rnet.onnx": 24, "onet.onnx": 48}
    rng = np.random.default_rng(0)
    for name, outputs in expected.items():
        shipped = ort.InferenceSession(str(graphs_dir / name), providers=["CPUExecutionProvider"])
        fresh = ort.InferenceSession(str(fresh_export / name), providers=["CPUExecutionProvider"])
        inputs = shipped.get_inputs()
        assert [i.name for i in inputs] == ["image"] and inputs[0].type == "tensor(float)"
        assert [o.name for o in shipped.get_outputs()] == outputs
        dynamic = [not isinstance(d, int) for d in inputs[0].shape]
        assert dynamic == ([True, True, True, False] if name == "pnet.onnx" else [True, False, False, False])
        # the graph in the tree is what the exporter makes from the installed mtcnn weights
        x = rng.uniform(-1, 1, (2, sides[name], sides[name] + (name == "pnet.onnx"), 3)).astype(np.float32)
        for a, b in zip(shipped.run(None, {"image": x}), fresh.run(None, {"image": x})):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_default_model_dir_is_in_the_models_package():
    import facever_models

    folder = default_model_dir()
    assert folder.name == "mtcnn"
    assert Path(str(folder)).parent == Path(facever_models.__file__).resolve().parent


def test_no_tensorflow_and_nothing_printed_in_a_fresh_process(tmp_path, graphs_dir, astronaut):
    np.save(tmp_path / "image.npy", _area(astronaut, 250, 250))
    model_dir = None if graphs_dir == SHIPPED else str(graphs_dir)  # default: facever_models/mtcnn
    script = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import facever
        HEAVY = ("tensorflow", "keras", "mtcnn", "sklearn")
        loaded = lambda: sorted({{m.split(".")[0] for m in sys.modules}} & set(HEAVY))
        by_package = loaded()
        from facever.mtcnn_onnx import OnnxMTCNNDetector
        faces = OnnxMTCNNDetector(model_dir={model_dir!r}).detect(np.load({str(tmp_path / "image.npy")!r}))
        with open({str(tmp_path / "out.json")!r}, "w") as fh:
            json.dump({{"by_package": by_package, "after": loaded(), "faces": len(faces)}}, fh)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["faces"] == 1
    assert not {"tensorflow", "keras", "mtcnn"} & set(out["after"]), out
    assert out["after"] == out["by_package"], "the ONNX detector itself imported " + str(out["after"])
    if "sklearn" in out["by_package"]:
        pytest.xfail("`import facever` loads scikit-learn (facever/__init__ → api → matching imports it at "
                     "module level); facever.mtcnn_onnx itself does not")
    assert out["after"] == []


# ---- the NumPy pre-processing against TensorFlow's own kernels -----------------------------------
@pytest.mark.parametrize("shape", [(250, 250), (97, 131), (23, 61)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_resize_area_matches_tensorflow(shape, dtype):
    """Every pyramid level (non-integer ratios included) within 1e-6 of ``tf.image.resize(AREA)``;
    the running-sum path (more than 3 taps) and the float64 table (non-uint8 input) are both used."""
    tf = pytest.importorskip("tensorflow")
    from facever.mtcnn_onnx import _area_taps, _pyramid_source, _resize_area, _scale_pyramid

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
    if dtype is np.float64:
        image = image + rng.uniform(-0.5, 0.5, image.shape)  # not multiples of 1/256 once normalised
    normalised = ((image - 127.5) / 128).astype(np.float32)
    table = _pyramid_source(image)
    assert table[0].dtype == (np.float32 if dtype is np.uint8 else np.float64)
    levels = [(np.asarray(shape) * s).astype(np.int32) for s in _scale_pyramid(*shape, 20)]
    taps = max(_area_taps(shape[1], int(w))[0].shape[1] for _, w in levels)
    assert taps > 3 if len(levels) > 2 else len(levels) == 1
    for out_h, out_w in levels:
        ref = tf.image.resize(normalised[None], (int(out_h), int(out_w)), method="area").numpy()[0]
        got = _resize_area(*table, int(out_h), int(out_w))
        assert got.shape == ref.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_crop_and_resize_matches_tensorflow():
    """Bit-identical to ``tf.image.crop_and_resize`` as mtcnn calls it, boxes partly outside included."""
    tf = pytest.importorskip("tensorflow")
    import cv2

    from facever.mtcnn_onnx import _crop_and_resize, _pyramid_source

    rng = np.random.default_rng(4)
    h, w = 90, 120
    image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    table, offset = _pyramid_source(image)
    columns = cv2.cvtColor(table[offset:].reshape(w, h, 3), cv2.COLOR_RGB2RGBA)
    x1, y1 = rng.uniform(-30, 110, 40), rng.uniform(-30, 80, 40)
    side = rng.uniform(3, 70, 40)
    boxes = np.stack([np.zeros(40), x1, y1, x1 + side, y1 + side * rng.uniform(0.5, 1.5, 40)], axis=1)
    normalised = ((image - 127.5) / 128).astype(np.float32)
    for size in (24, 48):
        tf_boxes = (boxes[:, [2, 1, 4, 3]] / [h, w, h, w]).astype(np.float32)  # as mtcnn passes them
        ref = tf.image.crop_and_resize(normalised[None], tf_boxes, np.zeros(40, np.int32), (size, size))
        got = _crop_and_resize(columns, boxes, size)
        outside = (got == 0).all(axis=3)
        assert outside.any() and not outside.all()  # some samples fell outside the image, not all
        np.testing.assert_array_equal(got, ref.numpy())


def test_nms_one_matrix_or_one_per_group_agree(monkeypatch):
    """The masked joint NMS (few boxes) and the per-group loop give the same rows in the same order."""
    import facever.mtcnn_onnx as mod

    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 60, (90, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (90, 2))], axis=1)
    rows = np.column_stack([rng.integers(0, 3, 90), boxes, rng.uniform(0.6, 1, 90)])
    groups = rng.integers(0, 4, 90) * 3 + rows[:, 0]
    for method, initial_sort, labels in (("union", False, groups), ("union", True, None), ("min", True, None)):
        results = []
        for joint_max in (0, 1000):
            monkeypatch.setattr(mod, "_NMS_JOINT_MAX", joint_max)
            results.append(mod._nms(rows, 0.5, method, initial_sort, groups=labels))
        assert 0 < len(results[0]) < len(rows)
        np.testing.assert_array_equal(results[0], results[1])
