"""The MTCNN detector on a real photo, odd inputs, and the face-selection policies."""

import cv2
import numpy as np
import pytest

from facever.detection import Face, select_faces
from facever.mtcnn_onnx import MTCNNDetector, default_detector
from facever.errors import MultipleFacesError, NoFaceError


@pytest.fixture(scope="module")
def detector():
    return default_detector()


def _check_layout(face: Face):
    le, re, nose, ml, mr = face.landmarks
    assert le[0] < re[0] and ml[0] < mr[0], "left points must be on the image left"
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1]), "eyes above nose above mouth"
    x1, y1, x2, y2 = face.box
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face.landmarks)


def test_finds_the_face_in_a_real_photo(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.95 and face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32
    _check_layout(face)
    # the astronaut's face is in the upper middle of the 512×512 picture
    assert 150 < face.landmarks[:, 0].mean() < 300 and 50 < face.landmarks[:, 1].mean() < 200


def test_large_image_is_downscaled_and_mapped_back(astronaut):
    det = MTCNNDetector(max_side=256)
    big = cv2.resize(astronaut, (1024, 1024))
    faces = det.detect(big)
    ref = default_detector().detect(astronaut)[0]
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].landmarks / 2, ref.landmarks, atol=6)


def test_batch_matches_single_calls(detector, astronaut):
    small = cv2.resize(astronaut, (256, 256))
    batch = detector.detect_batch([astronaut, small, astronaut])
    assert [len(b) for b in batch] == [1, 1, 1]
    np.testing.assert_allclose(batch[0][0].landmarks, batch[2][0].landmarks)
    assert detector.detect_batch([]) == []


@pytest.mark.parametrize("shape", [(8, 8, 3), (1, 500, 3), (300, 300, 3)])
def test_tiny_blank_and_thin_images_give_no_face_without_crashing(detector, shape):
    assert detector.detect(np.zeros(shape, np.uint8)) == []


def test_rotated_and_mirrored_faces_do_not_crash(detector, astronaut):
    for img in (np.rot90(astronaut).copy(), np.rot90(astronaut, 2).copy(), astronaut[:, ::-1].copy()):
        faces = detector.detect(img)
        assert isinstance(faces, list)
    mirrored = detector.detect(astronaut[:, ::-1].copy())
    assert len(mirrored) == 1
    _check_layout(mirrored[0])


def _face(size: float) -> Face:
    return Face(box=(0.0, 0.0, size, size), landmarks=np.zeros((5, 2), np.float32), score=0.99)


def test_face_policies():
    small, large = _face(10), _face(50)
    assert select_faces([small, large], "largest") == [large]
    assert select_faces([small, large], "all") == [large, small]
    assert select_faces([small], "one") == [small] == select_faces([small], "strict")
    with pytest.raises(MultipleFacesError, match="2 faces"):
        select_faces([small, large], "one", source="group.jpg")
    with pytest.raises(NoFaceError, match="group.jpg: no face"):
        select_faces([], "largest", source="group.jpg")
    with pytest.raises(ValueError):
        select_faces([small], "bogus")


def test_two_faces_in_one_photo(detector, astronaut):
    pair = np.concatenate([astronaut, cv2.resize(astronaut, (512, 512))[:, :, :]], axis=1)
    pair[:, 512:] = cv2.resize(cv2.resize(astronaut, (256, 256)), (512, 512))  # same face, blurrier
    faces = detector.detect(pair)
    assert len(faces) == 2
    with pytest.raises(MultipleFacesError):
        select_faces(faces, "one")


def test_compiled_mtcnn_stages_give_the_eager_results(astronaut, monkeypatch):
    """The tf.function-wrapped networks (a speed-up) find the same boxes and landmarks as eager Keras."""
    import facever.training.mtcnn_tf as mtcnn_tf

    compiled = mtcnn_tf.TFMTCNNDetector().detect(astronaut)
    monkeypatch.setattr(mtcnn_tf, "_compile_stages", lambda mtcnn: None)
    eager = mtcnn_tf.TFMTCNNDetector().detect(astronaut)
    assert len(compiled) == len(eager) >= 1
    for a, b in zip(compiled, eager):
        np.testing.assert_allclose(a.box, b.box, atol=0.5)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.5)


def test_retry_enlarges_and_pads_small_images_and_maps_points_back():
    """The retry (:func:`detect_padded`) pads the image, then pads an enlarged copy of a small one; the
    face found there comes back in the original image's pixels."""
    from facever.embedding import RETRY_MIN_SIDE, detect_with_retry

    class CentreFinder:  # finds a face at the image centre, only in images of at least the retry size
        calls: list = []

        def detect(self, image):
            h, w = image.shape[:2]
            self.calls.append((h, w))
            if min(h, w) < RETRY_MIN_SIDE:
                return []
            c = np.array([(w - 1) / 2, (h - 1) / 2], np.float32)
            return [Face(box=(c[0] - 10, c[1] - 10, c[0] + 10, c[1] + 10), landmarks=np.tile(c, (5, 1)), score=0.95)]

    small = np.zeros((64, 80, 3), np.uint8)
    faces = detect_with_retry(CentreFinder(), small)
    assert len(faces) == 1
    np.testing.assert_allclose(faces[0].landmarks[0], [39.5, 31.5], atol=0.6)
    assert faces[0].box[2] - faces[0].box[0] == pytest.approx(20 / (RETRY_MIN_SIDE / 64), rel=1e-3)
    assert CentreFinder.calls[0] == (64, 80) and CentreFinder.calls[1] == (64 + 2 * 19, 80 + 2 * 24)
    assert min(CentreFinder.calls[2]) > RETRY_MIN_SIDE
