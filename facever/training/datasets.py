"""Training data: identity folders, LFW people lists, a cache of aligned crops, tf.data augmentation.

* An :class:`IdentityDataset` is a list of image paths with integer identity labels (one folder per
  person, or LFW's ``people*.txt`` lists), with people to exclude so evaluation identities never
  leak into training.
* :func:`aligned_crops` detects and aligns images exactly as inference does (the ONNX MTCNN with its
  padded second pass, the face nearest the centre, a similarity warp to the model's template and
  size): from-scratch training and fine-tuning use it (evaluation runs the same steps through the
  model's embedder, :func:`facever.training.protocols.embed_lfw_images`). :class:`CropCache` keeps
  its crops on disk keyed by the SHA-256 of the image bytes, the pipeline version and the crop
  geometry, so later epochs and runs skip detection.
* :func:`augment_batch` is the on-the-fly augmentation (mirroring, random shifts/crops, small
  rotations and shears, colour shifts) run inside the tf.data pipeline.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from facever import alignment
from facever.alignment import CANONICAL_SIZE, CANONICAL_TEMPLATE
from facever.detection import Detector, central_face
from facever.embedding import detect_padded
from facever.errors import ImageError
from facever.imaging import IMAGE_SUFFIXES, load_image
from facever.mtcnn_onnx import default_detector
from facever.training import lfw

#: Bump when detection or alignment changes: cached crops of another version are not reused.
#: v2: MTCNN on onnxruntime with the padded second pass (the inference detector), any template and size.
PIPELINE_VERSION = "mtcnn-onnx-min20-pad-v2"


@dataclass
class IdentityDataset:
    """Images with identity labels.

    Attributes:
        root: directory the relative ``paths`` are under.
        paths: relative image paths, ``(N,)``.
        labels: ``(N,)`` int identity indices into ``people``.
        people: identity names.
    """

    root: Path
    paths: list[str]
    labels: np.ndarray
    people: list[str]
    source: str = ""
    excluded: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, mask: np.ndarray) -> "IdentityDataset":
        """Rows where ``mask`` is true, labels re-indexed densely."""
        idx = np.flatnonzero(mask)
        old = self.labels[idx]
        kept, new = np.unique(old, return_inverse=True)
        return IdentityDataset(self.root, [self.paths[i] for i in idx], new.astype(np.int64),
                               [self.people[k] for k in kept], self.source, list(self.excluded))

    def split_people(self, n_holdout: int, seed: int = 0, min_images: int = 2,
                     max_images: int = 20) -> tuple["IdentityDataset", "IdentityDataset"]:
        """Split by identity: ``n_holdout`` random people with ``min_images``..``max_images`` images
        go to the second dataset (e.g. for threshold calibration), the rest stay for training."""
        counts = np.bincount(self.labels, minlength=len(self.people))
        eligible = np.flatnonzero((counts >= min_images) & (counts <= max_images))
        if n_holdout > len(eligible):
            raise ValueError(f"cannot hold out {n_holdout} people: only {len(eligible)} have {min_images}..{max_images} images")
        rng = np.random.default_rng(seed)
        held = set(rng.choice(eligible, size=n_holdout, replace=False).tolist())
        in_held = np.array([lab in held for lab in self.labels])
        return self.subset(~in_held), self.subset(in_held)

    def add_singletons_to(self, other: "IdentityDataset", n: int, seed: int = 0) -> tuple["IdentityDataset", "IdentityDataset"]:
        """Move ``n`` random one-image people from ``self`` to ``other`` (extra impostors there)."""
        counts = np.bincount(self.labels, minlength=len(self.people))
        singles = np.flatnonzero(counts == 1)
        rng = np.random.default_rng(seed)
        chosen = set(rng.choice(singles, size=min(n, len(singles)), replace=False).tolist())
        move = np.array([lab in chosen for lab in self.labels])
        moved = self.subset(move)
        merged = concat([other, moved])
        return self.subset(~move), merged


def concat(datasets: Sequence[IdentityDataset]) -> IdentityDataset:
    """Concatenate datasets under one common root (paths made absolute when roots differ)."""
    roots = {str(d.root) for d in datasets}
    same_root = len(roots) == 1
    paths, labels, people, offset = [], [], [], 0
    for d in datasets:
        paths += d.paths if same_root else [str(d.root / p) for p in d.paths]
        labels.append(d.labels + offset)
        people += d.people
        offset += len(d.people)
    root = datasets[0].root if same_root else Path("/")
    return IdentityDataset(root, paths, np.concatenate(labels).astype(np.int64), people,
                           "+".join(d.source for d in datasets), sorted({e for d in datasets for e in d.excluded}))


def from_folders(root: str | os.PathLike[str], exclude: Iterable[str] = (), min_images: int = 1) -> IdentityDataset:
    """One sub-folder per person under ``root``; images directly inside each sub-folder.

    ``exclude`` names people (folder names) never to use; people with fewer than ``min_images``
    images are dropped.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    excluded = set(exclude)
    paths, labels, people = [], [], []
    for person_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if person_dir.name in excluded:
            continue
        files = sorted(f for f in person_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if len(files) < min_images:
            continue
        for f in files:
            paths.append(str(f.relative_to(root)))
            labels.append(len(people))
        people.append(person_dir.name)
    if not paths:
        raise ValueError(f"{root}: no images found in person sub-folders")
    return IdentityDataset(root, paths, np.asarray(labels, np.int64), people, source=str(root), excluded=sorted(excluded))


def from_lfw(lfw_root: str | os.PathLike[str], exclude_people_file: str | os.PathLike[str] | None = "default") -> IdentityDataset:
    """LFW deep-funneled identity folders, without the people of ``exclude_people_file``.

    By default ``protocol/peopleDevTest.txt`` is excluded, so protocols P1–P3 stay clean.
    """
    lfw_root = Path(lfw_root)
    if exclude_people_file == "default":
        exclude_people_file = lfw.protocol_file(lfw_root, "peopleDevTest.txt")
    exclude = list(lfw.read_people(exclude_people_file)) if exclude_people_file else []
    ds = from_folders(lfw_root / lfw.IMAGES_DIR, exclude=exclude)
    ds.source = f"lfw:{lfw_root}"
    return ds


def lfw_annotations(lfw_root: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """LFW's 5-point landmarks (:func:`facever.training.lfw.read_landmarks`): relative path → ``(5, 2)``
    pixels (left eye, right eye, nose, mouth corners); empty when the annotation file is absent."""
    ann_file = Path(lfw_root) / lfw.LANDMARKS_FILE
    return lfw.read_landmarks(ann_file) if ann_file.is_file() else {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class CropCache:
    """Aligned crops of one geometry on disk, keyed by image content hash and :data:`PIPELINE_VERSION`.

    A cache holds crops of one template at one size (``template``, ``size``: by default facever's
    canonical stored crop, dlib's 150 px chip), stored as
    ``<dir>/crops-<PIPELINE_VERSION>-<template><size>.npz`` with arrays ``keys`` (hex SHA-256),
    ``crops`` ``(M, size, size, 3)`` uint8, ``landmarks`` ``(M, 5, 2)`` pixels of the source image,
    ``detected`` ``(M,)`` bool (False: the crop used fallback landmarks). Images where nothing could
    be aligned are absent. Caches of other geometries live side by side in the same folder.
    """

    def __init__(self, directory: str | os.PathLike[str], size: int = CANONICAL_SIZE,
                 template: str = CANONICAL_TEMPLATE) -> None:
        alignment.template(size, template)  # an unknown template name fails here
        self.directory = Path(directory)
        self.size = int(size)
        self.template = template
        self.file = self.directory / f"crops-{PIPELINE_VERSION}-{template}{self.size}.npz"
        self._index: dict[str, int] = {}
        self._crops = np.zeros((0, self.size, self.size, 3), np.uint8)
        self._landmarks = np.zeros((0, 5, 2), np.float32)
        self._detected = np.zeros(0, bool)
        if self.file.is_file():
            with np.load(self.file) as data:
                self._index = {k: i for i, k in enumerate(data["keys"].tolist())}
                self._crops, self._landmarks, self._detected = data["crops"], data["landmarks"], data["detected"]

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def get(self, key: str) -> tuple[np.ndarray, bool] | None:
        """``(crop, detected)`` for a content hash, or None; the crop is ``(size, size, 3)`` uint8."""
        i = self._index.get(key)
        return None if i is None else (self._crops[i], bool(self._detected[i]))

    def landmarks(self, key: str) -> np.ndarray | None:
        """The ``(5, 2)`` landmarks the cached crop was aligned with, or None."""
        i = self._index.get(key)
        return None if i is None else self._landmarks[i]

    def add(self, keys: Sequence[str], crops: np.ndarray, landmarks: np.ndarray, detected: np.ndarray) -> None:
        """Add entries (kept in memory until :meth:`save`). Raises ValueError for crops of another size."""
        crops = np.asarray(crops)
        if crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"crops of shape {crops.shape[1:]} do not fit a {self.template} {self.size} px cache")
        new = [i for i, k in enumerate(keys) if k not in self._index]
        if not new:
            return
        base = len(self._crops)
        self._crops = np.concatenate([self._crops, crops[new]])
        self._landmarks = np.concatenate([self._landmarks, np.asarray(landmarks, np.float32)[new]])
        self._detected = np.concatenate([self._detected, np.asarray(detected, bool)[new]])
        for j, i in enumerate(new):
            self._index[keys[i]] = base + j

    def save(self) -> None:
        """Write the cache atomically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp.npz")
        keys = np.array(sorted(self._index, key=self._index.get))
        np.savez(tmp, keys=keys, crops=self._crops, landmarks=self._landmarks, detected=self._detected)
        os.replace(tmp, self.file)


def aligned_crops(dataset: IdentityDataset, size: int = CANONICAL_SIZE, template: str = CANONICAL_TEMPLATE,
                  cache: CropCache | None = None, detector: Detector | None = None,
                  fallback_landmarks: dict[str, np.ndarray] | None = None, batch: int = 16,
                  progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops of every image of ``dataset``: the inference pipeline's detection and alignment.

    Detection is the inference detector (MTCNN on onnxruntime, :func:`facever.mtcnn_onnx.default_detector`,
    unless ``detector`` is given) with its second pass on a padded copy when nothing is found
    (:func:`facever.embedding.detect_padded`); when several faces are found the one nearest the image
    centre is used (identity-folder datasets are photos of one person). When none is found,
    ``fallback_landmarks[path]`` is used if given, else the image is dropped; undecodable images are
    dropped. Each face is aligned to ``template`` at ``size`` px (:func:`facever.alignment.align_face`),
    exactly as inference aligns it for a model of that geometry. With ``cache`` (of the same geometry),
    only images whose content hash it lacks are detected, and new crops are saved to it.

    Returns:
        ``crops`` ``(N, size, size, 3)`` uint8 and ``ok`` ``(N,)`` bool (False = dropped; its crop is 0).

    Raises:
        ValueError: ``cache`` holds crops of another geometry.
    """
    if cache is not None and (cache.size, cache.template) != (size, template):
        raise ValueError(f"the crop cache holds {cache.template} {cache.size} px crops, not {template} {size} px")
    n = len(dataset)
    keys = [file_sha256(dataset.root / p) for p in dataset.paths] if cache is not None else []
    crops = np.zeros((n, size, size, 3), np.uint8)
    ok = np.zeros(n, bool)
    todo = []
    for i in range(n):
        hit = cache.get(keys[i]) if cache is not None else None
        if hit is not None:
            crops[i], ok[i] = hit[0], True
        else:
            todo.append(i)
    if todo and detector is None:
        detector = default_detector()
    for start in range(0, len(todo), batch):
        found = _detect_and_align(dataset, todo[start:start + batch], size, template, detector, fallback_landmarks)
        for i, crop, _, _ in found:
            crops[i], ok[i] = crop, True
        if cache is not None and found:
            cache.add([keys[i] for i, *_ in found], np.stack([f[1] for f in found]),
                      np.stack([f[2] for f in found]), np.asarray([f[3] for f in found]))
        if progress:
            progress(min(start + batch, len(todo)), len(todo))
    if cache is not None and todo:
        cache.save()
    return crops, ok


def _detect_and_align(dataset: IdentityDataset, idx: Sequence[int], size: int, template: str, detector: Detector,
                      fallback_landmarks: dict[str, np.ndarray] | None) -> list[tuple[int, np.ndarray, np.ndarray, bool]]:
    """``(row, crop, landmarks, detected)`` for each image of ``idx`` that could be aligned."""
    rows, images = [], []
    for i in idx:
        try:
            images.append(load_image(dataset.root / dataset.paths[i]))
            rows.append(i)
        except ImageError:
            continue
    out = []
    for i, image, faces in zip(rows, images, detector.detect_batch(images) if images else []):
        faces = faces or detect_padded(detector, image)
        if faces:
            lms, detected = central_face(faces, image.shape).landmarks, True
        elif fallback_landmarks and dataset.paths[i] in fallback_landmarks:
            lms, detected = np.asarray(fallback_landmarks[dataset.paths[i]], np.float32), False
        else:
            continue
        out.append((i, alignment.align_face(image, lms, size, template), lms, detected))
    return out


def augment_batch(images, seed_stream=None, max_angle_deg: float = 8.0, max_shift: float = 0.04,
                  scale_range: tuple[float, float] = (0.92, 1.08), max_shear: float = 0.05,
                  colour: float = 0.15, grey_prob: float = 0.1):
    """Random augmentation of a batch, inside TensorFlow.

    Args:
        images: ``(B, S, S, 3)`` float32 pixels in [0, 255].
        max_angle_deg: rotation range ±degrees. max_shift: translation range ± fraction of S.
        scale_range: zoom range. max_shear: shear range (dimensionless). colour: brightness/contrast/
            saturation jitter strength. grey_prob: chance to turn an image grey.
    Returns ``(B, S, S, 3)`` float32 in [0, 255].
    """
    import tensorflow as tf

    b = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    u = lambda lo, hi: tf.random.uniform([b], lo, hi)  # noqa: E731
    flip = u(0.0, 1.0) < 0.5
    images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
    ang = u(-max_angle_deg, max_angle_deg) * (np.pi / 180.0)
    scale = u(*scale_range)
    shear = u(-max_shear, max_shear)
    tx, ty = u(-max_shift, max_shift) * size, u(-max_shift, max_shift) * size
    cos, sin = tf.cos(ang) / scale, tf.sin(ang) / scale
    # output pixel p maps to input c + A (p - c) + t, with A = R(ang) · Shear / scale
    a00, a01 = cos, cos * shear - sin
    a10, a11 = sin, sin * shear + cos
    c = (size - 1.0) / 2.0
    a2 = c - a00 * c - a01 * c + tx
    b2 = c - a10 * c - a11 * c + ty
    zeros = tf.zeros_like(a00)
    transforms = tf.stack([a00, a01, a2, a10, a11, b2, zeros, zeros], axis=1)
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    # colour: brightness, contrast, saturation, occasional grey
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    contrast = u(1 - colour, 1 + colour)[:, None, None, None]
    bright = (u(-colour, colour) * 255.0 * 0.5)[:, None, None, None]
    images = (images - mean) * contrast + mean + bright
    grey = tf.reduce_mean(images, axis=3, keepdims=True)
    sat = u(1 - colour, 1 + colour)[:, None, None, None]
    sat = tf.where((u(0.0, 1.0) < grey_prob)[:, None, None, None], tf.zeros_like(sat), sat)
    images = grey + (images - grey) * sat
    return tf.clip_by_value(images, 0.0, 255.0)
