"""Enrolment's pruned face search (``min_box``): the finest image-pyramid level is skipped when only
faces big enough to pass the quality bar matter; the largest face is the same, and a photo where the
pruned search finds nothing is searched in full."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facever.embedding import detect_with_retry
from facever.mtcnn_onnx import OnnxMTCNNDetector


@pytest.fixture(scope="module")
def detector() -> OnnxMTCNNDetector:
    return OnnxMTCNNDetector()


def _pnet_calls(detector: OnnxMTCNNDetector, image: np.ndarray, min_box: float | None) -> tuple[list, int]:
    calls = []
    real = detector._run

    def spy(stage, batch):
        calls.append(stage)
        return real(stage, batch)

    detector._run = spy
    try:
        return detector.detect(image, min_box=min_box), calls.count("pnet")
    finally:
        del detector._run


def _small_face(astronaut: np.ndarray, detector: OnnxMTCNNDetector, width: int) -> np.ndarray:
    """A 250 x 250 grey canvas holding the astronaut's face scaled to about ``width`` px."""
    face = max(detector.detect(astronaut), key=lambda f: f.area)
    x1, y1, x2, y2 = (int(v) for v in face.box)
    pad = (x2 - x1) // 2
    crop = astronaut[max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad]
    scale = width / (x2 - x1)
    small = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((250, 250, 3), 128, np.uint8)
    canvas[100:100 + small.shape[0], 100:100 + small.shape[1]] = small
    return canvas


def test_min_box_skips_the_finest_level_and_keeps_the_largest_face(detector, astronaut):
    image = cv2.resize(astronaut, (250, 250), interpolation=cv2.INTER_AREA)
    full, n_full = _pnet_calls(detector, image, None)
    pruned, n_pruned = _pnet_calls(detector, image, 28.0)
    assert n_pruned == n_full - 1  # the 20 px level is gone, the 28 px one kept
    a, b = max(full, key=lambda f: f.area), max(pruned, key=lambda f: f.area)
    assert a.box == b.box and np.array_equal(a.landmarks, b.landmarks) and a.score == b.score
    assert _pnet_calls(detector, image, 1000.0)[0] == []  # no level left: nothing found


def test_a_photo_with_only_a_small_face_is_searched_in_full(detector, astronaut):
    image = _small_face(astronaut, detector, 12)
    full = detector.detect(image)
    assert full and detector.detect(image, min_box=28.0) == []  # the fixture exercises the fallback
    again = detect_with_retry(detector, image, min_box=28.0)
    assert [f.box for f in again] == [f.box for f in detect_with_retry(detector, image)]


def test_enrolment_outcomes_do_not_depend_on_the_pruning(tmp_path, astronaut, monkeypatch):
    from facever.gallery import Gallery, enrolment

    detector = OnnxMTCNNDetector()
    tiny = _small_face(astronaut, detector, 12)
    big = cv2.resize(astronaut, (250, 250), interpolation=cv2.INTER_AREA)
    seen = []
    real = detect_with_retry

    def spy(det, rgb, min_box=None):
        seen.append(min_box)
        return real(det, rgb, min_box)

    monkeypatch.setattr("facever.embedding.detect_with_retry", spy)
    reports = {}
    for fraction in (enrolment.ENROL_BOX_FRACTION, 0.0):  # 0: every level, as before the pruning
        monkeypatch.setattr(enrolment, "ENROL_BOX_FRACTION", fraction)
        with Gallery(f"sqlite:///{tmp_path / f'g{fraction}.db'}") as g:
            report = g.enroll("someone", [big, tiny], allow_duplicate=True)
            reports[fraction] = [(o.status, o.reason) for o in report.outcomes]
    pruned, everything = reports.values()
    assert pruned == everything
    assert pruned[0][0] == "enrolled" and pruned[1][0] == "rejected" and "too small" in pruned[1][1]
    assert 28.0 in seen  # the pruned search was asked for (40 px bar × 0.7)


def test_forced_enrolment_searches_every_level(tmp_path, astronaut, monkeypatch):
    from facever.gallery import Gallery

    tiny = _small_face(astronaut, OnnxMTCNNDetector(), 12)
    import facever.embedding as emb

    seen, real = [], emb.detect_with_retry
    monkeypatch.setattr(emb, "detect_with_retry",
                        lambda det, rgb, min_box=None: seen.append(min_box) or real(det, rgb, min_box))
    with Gallery(f"sqlite:///{tmp_path / 'g.db'}") as g:
        report = g.enroll("small", [tiny], force=True)
    assert report.outcomes[0].status == "enrolled" and seen == [None]


def test_no_pruned_pass_when_the_downscale_leaves_nothing_to_skip(detector, monkeypatch):
    """Photos over ~900 px are downscaled to 640 first: 28 px becomes < 20 px, the finest window, so
    the pruned search would equal the full one and is not run (a face-less photo is not searched
    three times)."""
    big = np.full((1200, 1600, 3), 127, np.uint8)
    assert detector.prunes((250, 250), 28.0) and not detector.prunes(big.shape, 28.0)
    calls = []
    real = detector.detect

    def spy(image, min_box=None):
        calls.append(min_box)
        return real(image, min_box=min_box)

    monkeypatch.setattr(detector, "detect", spy)
    assert detect_with_retry(detector, big, min_box=28.0) == []
    assert calls == [None, None]  # the full search and the padded retry only
