"""Alignment geometry: similarity fit, warps back to the template, quality figures."""

import numpy as np
import pytest

from facever.alignment import align_face, crop_quality, similarity_transform, template


def _apply(m, pts):
    return pts @ m[:, :2].T + m[:, 2]


def test_template_scales_with_size():
    np.testing.assert_allclose(template(224), template(112) * 2, rtol=1e-6)


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    ang, s, t = np.deg2rad(23.0), 1.7, np.array([12.0, -5.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ (s * rot).T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], s * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-8)


def test_similarity_transform_never_reflects():
    src = template()
    mirrored = src.copy()
    mirrored[:, 0] = -mirrored[:, 0]
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_degenerate_landmarks_rejected():
    with pytest.raises(ValueError):
        similarity_transform(np.zeros((5, 2)), template())


@pytest.mark.parametrize("size, name", [(150, "dlib"), (112, "arcface"), (112, "dlib"), (150, "arcface")])
def test_face_warped_by_known_transform_comes_back_to_template(size, name):
    """Draw dots at the template, move the image by a similarity, align with moved landmarks: the
    dots land on the template named, whatever the crop size (no template is guessed from the size)."""
    import cv2

    canvas = np.zeros((size, size, 3), np.uint8)
    for x, y in template(size, name):
        cv2.circle(canvas, (int(round(x)), int(round(y))), 3, (255, 255, 255), -1)
    ang, s, t = np.deg2rad(-17.0), 1.6, np.array([40.0, 25.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    fwd = np.hstack([s * rot, t[:, None]])
    big = cv2.warpAffine(canvas, fwd, (300, 260), flags=cv2.INTER_LINEAR)
    moved_landmarks = _apply(fwd, template(size, name))
    crop = align_face(big, moved_landmarks, size, name)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    grey = crop[..., 0].astype(float)
    for x, y in template(size, name):
        yi, xi = int(round(y)), int(round(x))
        assert grey[yi - 1:yi + 2, xi - 1:xi + 2].mean() > 150, "dot did not come back to its template point"
    # and the crop matches the original canvas overall
    assert np.abs(grey - canvas[..., 0]).mean() < 8


def test_an_unknown_template_name_is_a_clear_error():
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown alignment template 'vgg'.*arcface.*dlib"):
        align_face(image, template(64, "arcface"), 64, "vgg")
    with pytest.raises(TypeError):
        align_face(image, template(64, "arcface"), 64)  # the template is never implied by the size


def test_crop_quality_figures():
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)
    flat = np.full((112, 112, 3), 128, np.uint8)
    lms = template()
    q_sharp, q_flat = crop_quality(sharp, lms), crop_quality(flat, lms)
    assert q_sharp.sharpness > 1000 > q_flat.sharpness == 0
    iod = np.linalg.norm(lms[1] - lms[0])
    assert q_sharp.face_size == pytest.approx(2.5 * iod)
    assert q_sharp.frontality > 0.9
    profile = lms.copy()
    profile[2, 0] = lms[1, 0] + 5  # nose beyond the right eye: a profile
    assert crop_quality(sharp, profile).frontality < 0.3


def test_zoom_crop_magnifies_about_the_centre():
    from facever.alignment import zoom_crop

    crop = np.zeros((151, 151, 3), np.uint8)
    crop[75 - 20:75 + 21, 75 - 20:75 + 21] = 255  # a 41 px square centred on the crop centre
    assert zoom_crop(crop, 1.0) is crop
    zoomed = zoom_crop(crop, 1.25)
    rows = np.flatnonzero(zoomed[:, 75, 0] > 127)
    assert rows.min() == pytest.approx(75 - 25, abs=1) and rows.max() == pytest.approx(75 + 25, abs=1)
    cols = np.flatnonzero(zoomed[75, :, 0] > 127)
    assert cols.min() == pytest.approx(75 - 25, abs=1) and cols.max() == pytest.approx(75 + 25, abs=1)


def test_crop_views_order_and_mirrors():
    from facever.alignment import crop_views, zoom_crop

    crops = np.random.default_rng(0).integers(0, 255, (3, 20, 20, 3), dtype=np.uint8)
    views = crop_views(crops, [1.0, 1.1], flip=True)
    assert len(views) == 4 and all(v.shape == crops.shape for v in views)
    np.testing.assert_array_equal(views[0], crops)
    np.testing.assert_array_equal(views[1], crops[:, :, ::-1])
    np.testing.assert_array_equal(views[2][1], zoom_crop(crops[1], 1.1))
    np.testing.assert_array_equal(views[3][1], zoom_crop(crops[1], 1.1)[:, ::-1])
    assert len(crop_views(crops, [1.05], flip=False)) == 1
