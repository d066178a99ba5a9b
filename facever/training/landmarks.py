"""Detect the face of every image of a folder-per-person dataset once and cache its five landmarks.

The landmarks (not crops) are cached so that any alignment template can be applied later without
detecting again. When an image holds several faces, the one nearest the image centre is kept (these
datasets are photos of one person, and it is LFW's convention). When none is found, the detection is
retried once on the image padded on each side (:func:`facever.embedding.detect_padded`, as at
inference: tight crops such as ``bollywood`` leave the detector no context).

A landmark cache is an ``.npz`` file with ``names`` (paths relative to the image root, sorted),
``landmarks`` ``(N, 5, 2)`` float32 pixels, ``boxes`` ``(N, 4)`` ``(x1, y1, x2, y2)`` float32,
``scores`` ``(N,)`` float32, ``n_faces`` ``(N,)`` int32, ``found`` ``(N,)`` bool and ``padded``
``(N,)`` bool (found only after padding). Rows with ``found`` False hold NaN landmarks and boxes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

#: File suffixes read as images (lower case). The rebuilt default model's training images are exactly
#: these: changing the set changes which files are cached, hence the model.
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".pgm", ".bmp"})

#: The arrays of a landmark cache, in the order they are written.
FIELDS = ("names", "landmarks", "boxes", "scores", "n_faces", "found", "padded")

#: ``progress(done, total, found)``: images processed so far, images in all, faces found so far.
LandmarkProgress = Callable[[int, int, int], None]


def list_images(root: str | os.PathLike[str]) -> list[str]:
    """Paths ``PERSON/FILE`` (relative to ``root``, ``/``-separated, sorted) of the images one folder
    below ``root`` whose suffix is in :data:`EXTENSIONS`."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*") if p.suffix.lower() in EXTENSIONS)


def detect_landmarks(root: str | os.PathLike[str], detector: Any = None, batch: int = 32,
                     progress: LandmarkProgress | None = None) -> dict[str, np.ndarray]:
    """Landmarks of the most central face of every image under ``root`` (see :func:`list_images`).

    Args:
        root: a folder per person, images inside.
        detector: an object with ``detect_batch(images) -> list[list[Face]]`` and ``detect``
            (default: :class:`facever.mtcnn_onnx.MTCNNDetector` with ``min_face_size=20``).
        batch: images per detector call.
        progress: called after each batch.
    Returns:
        The cache's arrays (module docstring), keyed by :data:`FIELDS`.
    """
    from facever.detection import central_face
    from facever.embedding import detect_padded
    from facever.imaging import load_image

    root = Path(root)
    names = list_images(root)
    n = len(names)
    out = {"names": np.array(names), "landmarks": np.full((n, 5, 2), np.nan, np.float32),
           "boxes": np.full((n, 4), np.nan, np.float32), "scores": np.zeros(n, np.float32),
           "n_faces": np.zeros(n, np.int32), "found": np.zeros(n, bool), "padded": np.zeros(n, bool)}
    if detector is None:
        from facever.mtcnn_onnx import MTCNNDetector

        detector = MTCNNDetector(min_face_size=20)
    for s in range(0, n, batch):
        chunk = list(range(s, min(s + batch, n)))
        images = [load_image(root / names[i]) for i in chunk]
        for i, image, faces in zip(chunk, images, detector.detect_batch(images)):
            if not faces:  # tight crops: the inference pipeline's second pass on a padded copy
                faces = detect_padded(detector, image)
                out["padded"][i] = bool(faces)
            if faces:
                face = central_face(faces, image.shape)
                out["landmarks"][i], out["boxes"][i], out["scores"][i] = face.landmarks, face.box, face.score
                out["n_faces"][i], out["found"][i] = len(faces), True
        if progress is not None:
            progress(chunk[-1] + 1, n, int(out["found"][:chunk[-1] + 1].sum()))
    return out


def save_landmarks(path: str | os.PathLike[str], cache: dict[str, np.ndarray]) -> None:
    """Write a landmark cache (``.npz``; numpy appends the suffix when ``path`` lacks it)."""
    np.savez(path, **{k: cache[k] for k in FIELDS})


def load_landmarks(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a landmark cache written by :func:`save_landmarks`.

    Raises:
        ValueError: the file lacks ``names``, ``landmarks`` or ``found``.
    """
    with np.load(path) as data:
        missing = [k for k in ("names", "landmarks", "found") if k not in data.files]
        if missing:
            raise ValueError(f"{path}: not a landmark cache (missing {', '.join(missing)})")
        return {k: data[k] for k in data.files}
