"""FaceVerifier.verify works on its two images at once (two threads): the same result as one after
the other, image A's error first, and no process-wide state left behind."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from facever.errors import ImageError, NoFaceError


@pytest.fixture(scope="module")
def verifier():
    from facever.api import FaceVerifier

    return FaceVerifier()


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_two_threads_give_the_one_thread_result(verifier, astronaut, monkeypatch):
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    together = verifier.verify(astronaut, small)
    monkeypatch.setenv("FACEVER_WORKERS", "1")
    alone = verifier.verify(astronaut, small)
    assert together.distance == alone.distance and together.same
    assert [f.box for f in together.faces] == [f.box for f in alone.faces]


def test_image_a_error_comes_first(verifier, tmp_path, astronaut):
    blank = np.full((200, 200, 3), 127, np.uint8)
    with pytest.raises(ImageError, match="a.jpg"):
        verifier.verify(tmp_path / "a.jpg", tmp_path / "b.jpg")
    with pytest.raises(NoFaceError, match="first"):
        verifier.verify(blank, blank.copy(), names=("first", "second"))
    with pytest.raises(NoFaceError, match="first"):  # A's error even though B's file is missing
        verifier.verify(blank, tmp_path / "b.jpg", names=("first", None))
    with pytest.raises(ImageError, match="b.jpg"):  # A is fine: B's error
        verifier.verify(astronaut, tmp_path / "b.jpg")


def test_decoding_in_two_threads_leaves_the_warning_filters_alone(verifier, astronaut):
    """warnings.catch_warnings is not thread-safe: imaging holds a lock around it."""
    big, small = _png(astronaut), _png(cv2.resize(astronaut, (64, 64)))
    before = list(warnings.filters)
    for _ in range(8):
        try:
            verifier.verify(big, small)
        except NoFaceError:
            pass
    assert warnings.filters == before
