"""The Python API's shape (issue 19 item 6): one name for the face policy, ``strict`` with one
meaning, typed faces in results, an uncalibrated model loaded on purpose, RGB stated."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import StubDetector, numpy_verifier, person_image

from facever.alignment import CropQuality
from facever.api import FaceVerifier
from facever.bundle import BundleMetadata, ModelBundle
from facever.detection import Face, face_policy, select_faces
from facever.errors import ModelError, MultipleFacesError


def two_faces(image: np.ndarray):
    """A detector that finds the stub's face twice (a group photo)."""
    [face] = StubDetector().detect(image)
    small = Face(box=(0.0, 0.0, 10.0, 10.0), landmarks=face.landmarks * 0.1, score=0.9)
    return [face, small]


def uncalibrated() -> ModelBundle:
    meta = BundleMetadata(architecture="numpy-projection", input_size=16, flip_tta=False, alignment="arcface")
    return ModelBundle(lambda batch: batch.reshape(len(batch), -1)[:, :128] / 255.0 + 1e-3, meta, version="np-u")


def test_the_face_policy_has_one_name_and_strict_is_its_old_value():
    assert face_policy("strict") == "one" and face_policy("all") == "all"
    with pytest.raises(ValueError, match="unknown face policy"):
        face_policy("biggest")
    v = numpy_verifier()
    assert v.default_faces == "largest"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = FaceVerifier(model=v.bundle, detector=StubDetector(), face_policy="strict")
    assert old.default_faces == "one" and any(issubclass(w.category, DeprecationWarning) for w in caught)
    one = FaceVerifier(model=v.bundle, detector=StubDetector(), faces="one")
    one.embedder.detector.detect_batch = lambda images: [two_faces(im) for im in images]
    one.embedder.detector.detect = two_faces
    with pytest.raises(MultipleFacesError, match="exactly one"):
        one.faces(person_image(1))
    faces = two_faces(person_image(1))
    assert select_faces(faces, "largest") == [faces[0]] and len(select_faces(faces, faces="all")) == 2


def test_results_carry_typed_faces_and_dicts_only_at_the_edge():
    v = numpy_verifier()
    result = v.verify(person_image(1, 1), person_image(1, 2))
    assert result.same and all(isinstance(f, Face) for f in result.faces) and len(result.faces) == 2
    d = result.to_dict()
    assert isinstance(d["faces"][0], dict) and json.dumps(d)
    back = Face.from_dict(d["faces"][0])
    np.testing.assert_allclose(back.box, result.faces[0].box, atol=0.01)
    np.testing.assert_allclose(back.landmarks, result.faces[0].landmarks, atol=0.01)
    q = CropQuality(100.0, 50.0, 0.9)
    assert CropQuality.from_dict(q.to_dict()) == q


def test_an_uncalibrated_model_loads_only_when_asked_and_cannot_decide():
    with pytest.raises(ModelError, match="not calibrated"):
        FaceVerifier(model=uncalibrated(), detector=StubDetector())
    v = FaceVerifier(model=uncalibrated(), detector=StubDetector(), calibrated=False)
    emb = v.embed(person_image(2))
    assert emb.shape == (128,) and abs(float(np.linalg.norm(emb)) - 1) < 1e-5
    with pytest.raises(ModelError, match="not calibrated"):
        v.compare(emb, emb)
    fixed = FaceVerifier(model=uncalibrated(), detector=StubDetector(), threshold=0.5)
    assert fixed.compare(emb, emb).same and fixed.threshold == 0.5


def test_the_docs_say_arrays_are_rgb():
    import facever.api as api

    assert "RGB" in api.__doc__ and "BGR" in api.__doc__ and "RGB" in FaceVerifier.__doc__
