"""Five-point alignment: a similarity warp to a template, and crop quality figures.

Two templates (where MTCNN's five points should land in the crop):

* ``"dlib"``: dlib's 150×150 face-chip geometry (``get_face_chip(size=150, padding=0.25)``), fitted
  for MTCNN's points on LFW DevTrain images by ``scripts/fit_dlib_template.py``; the input of the
  imported dlib ResNet (the default model) and facever's canonical stored crop;
* ``"arcface"``: the widely used ArcFace 112×112 layout (the from-scratch encoders).

For other crop sizes a template is scaled. Points are ``(x, y)`` pixels, ordered left eye, right eye,
nose, left mouth corner, right mouth corner (left = image left).

The template is always named by the caller (a model bundle's ``metadata.alignment``, a gallery
face's stored ``crop_template``): it is never guessed from a crop's pixel size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

#: Five-point template for a 112×112 crop, ``(5, 2)`` float32 pixels.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)

#: MTCNN's five points in dlib's 150×150 chip: median over 600 LFW DevTrain images, halves agree
#: within 0.55 px (``scripts/fit_dlib_template.py``). ``(5, 2)`` float32 pixels.
TEMPLATE_DLIB_150 = np.array(
    [[47.55, 45.49], [101.15, 45.58], [74.37, 77.95], [50.65, 104.63], [97.66, 104.74]], dtype=np.float32,
)

#: Template name → (base size in pixels, ``(5, 2)`` points at that size).
TEMPLATES: dict[str, tuple[int, np.ndarray]] = {"arcface": (112, TEMPLATE_112), "dlib": (150, TEMPLATE_DLIB_150)}

#: The default model's geometry (template and crop side in pixels): the training side's default.
#: The gallery stores each crop in the geometry of the model that enrolled it and records both per
#: face (``faces.crop_template``, ``faces.crop_size``).
CANONICAL_TEMPLATE = "dlib"
CANONICAL_SIZE = 150


def template(size: int = CANONICAL_SIZE, name: str = CANONICAL_TEMPLATE) -> np.ndarray:
    """Return the ``(5, 2)`` points of template ``name`` for a ``size``×``size`` crop.

    Raises ValueError for a template name not in :data:`TEMPLATES`.
    """
    if name not in TEMPLATES:
        raise ValueError(f"unknown alignment template {name!r}; choose from {sorted(TEMPLATES)}")
    base, points = TEMPLATES[name]
    return points * (size / float(base))


def convert_crop(crop: np.ndarray, src: str, size: int, dst: str) -> np.ndarray:
    """Re-warp an aligned ``(s, s, 3)`` crop made with template ``src`` to template ``dst`` at ``size``.

    Both templates are named by the caller; the identity when nothing changes. Areas the source crop
    does not cover replicate its edge, so the result is not what aligning the source image would give:
    the evaluation's crop cache uses it, while the gallery never re-warps a stored crop to another
    template (it refuses, see :meth:`facever.embedding.FaceEmbedder.embed_crops`).
    """
    s = crop.shape[0]
    if src == dst and s == size:
        return crop
    m = similarity_transform(template(s, src), template(size, dst))
    return cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def zoom_crop(crop: np.ndarray, zoom: float) -> np.ndarray:
    """Zoom an aligned ``(H, W, 3)`` crop about its centre by ``zoom`` (> 1: closer; 1: unchanged).

    A test-time view of a stored crop: the template scaled by ``zoom`` about the crop centre, as if
    the face had been aligned with it (areas from outside the crop replicate its edge).
    """
    if zoom == 1.0:
        return crop
    h, w = crop.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[zoom, 0.0, cx * (1.0 - zoom)], [0.0, zoom, cy * (1.0 - zoom)]])
    return cv2.warpAffine(crop, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_views(crops: np.ndarray, zooms: Sequence[float] = (1.0,), flip: bool = True) -> list[np.ndarray]:
    """Test-time views of ``(N, S, S, 3)`` aligned crops: each zoom (:func:`zoom_crop`) and, with
    ``flip``, its mirror image, in the order ``[z0, z0 mirrored, z1, z1 mirrored, ...]``.

    A model's embedding of a crop is the renormalised mean of its views' embeddings; the bundle's
    metadata (``view_zooms``, ``flip_tta``) says which views, so that training, calibration and
    inference embed crops alike.
    """
    crops = np.asarray(crops)
    views = []
    for zoom in zooms:
        zoomed = crops if zoom == 1.0 else np.stack([zoom_crop(c, float(zoom)) for c in crops])
        views.append(zoomed)
        if flip:
            views.append(np.ascontiguousarray(zoomed[:, :, ::-1, :]))
    return views


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama's closed form without reflection. Args: ``(N, 2)`` point arrays, N ≥ 2.
    Returns the ``(2, 3)`` float64 affine matrix ``M`` with ``dst ≈ M @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need two (N, 2) point arrays with N >= 2, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("landmarks are degenerate (all at one point)")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, template_name: str) -> np.ndarray:
    """Warp ``image`` so the five ``landmarks`` land on template ``template_name`` of a ``size``×``size`` crop.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        landmarks: ``(5, 2)`` pixels in ``image``.
        size: side of the square output crop in pixels.
        template_name: a key of :data:`TEMPLATES` (``"dlib"``, ``"arcface"``), e.g. the model's
            ``metadata.alignment``.
    Returns:
        ``(size, size, 3)`` uint8 RGB crop; areas outside the image are filled by edge replication.
    Raises:
        ValueError: an unknown template name.
    """
    m = similarity_transform(np.asarray(landmarks, dtype=np.float64).reshape(5, 2), template(size, template_name))
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True)
class CropQuality:
    """Quality figures of a face.

    Attributes:
        face_size: inter-ocular distance in source-image pixels × 2.5, an estimate of face width (px).
        sharpness: variance of the Laplacian of the grey aligned crop (higher is sharper; < ~30 blurry).
        frontality: 1 for a symmetric frontal face, down towards 0 for a profile; from how centred
            the nose is between the eyes and mouth corners.
    """

    face_size: float
    sharpness: float
    frontality: float

    @classmethod
    def from_dict(cls, data: dict) -> "CropQuality":
        """The inverse of :meth:`to_dict`."""
        return cls(float(data["face_size"]), float(data["sharpness"]), float(data["frontality"]))

    def to_dict(self) -> dict:
        return {"face_size": round(self.face_size, 2), "sharpness": round(self.sharpness, 2),
                "frontality": round(self.frontality, 4)}


def crop_quality(crop: np.ndarray, landmarks: np.ndarray) -> CropQuality:
    """Compute :class:`CropQuality` from an aligned crop and the source-image landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    iod = float(np.linalg.norm(lm[1] - lm[0]))
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    eye_mid = (lm[0] + lm[1]) / 2
    mouth_mid = (lm[3] + lm[4]) / 2
    axis_len = iod + 1e-6
    # horizontal offset of the nose from the eye/mouth midline, relative to the eye distance
    mid = (eye_mid + mouth_mid) / 2
    eye_dir = (lm[1] - lm[0]) / axis_len
    offset = abs(float(np.dot(lm[2] - mid, eye_dir))) / axis_len
    frontality = float(max(0.0, 1.0 - 2.0 * offset))
    return CropQuality(face_size=iod * 2.5, sharpness=sharp, frontality=frontality)
