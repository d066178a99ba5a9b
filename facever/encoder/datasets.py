"""Training data: identity folders, LFW people lists, a cache of aligned crops, tf.data augmentation.

* An :class:`IdentityDataset` is a list of image paths with integer identity labels (one folder per
  person, or LFW's ``people*.txt`` lists), with people to exclude so evaluation identities never
  leak into training.
* :class:`CropCache` detects and aligns each image once; crops are stored on disk keyed by the
  SHA-256 of the image bytes and the pipeline version, so later epochs and runs skip detection.
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

from facever.alignment import align_face
from facever.imaging import load_image

#: Training crops: ArcFace template at 112 px (resized to the encoder input), see CropCache.
CANONICAL_SIZE = 112

#: Bump when detection/alignment changes: cached crops of another version are not reused.
PIPELINE_VERSION = "mtcnn1.0-min20-arcface112-v1"

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".gif"}


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


def read_people_file(path: str | os.PathLike[str]) -> list[str]:
    """Names from an LFW ``people*.txt`` file (first line a count, then ``NAME COUNT`` lines)."""
    names = []
    for line in Path(path).read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 2:
            names.append(parts[0])
    return names


def from_lfw(lfw_root: str | os.PathLike[str], exclude_people_file: str | os.PathLike[str] | None = "default") -> IdentityDataset:
    """LFW deep-funneled identity folders, without the people of ``exclude_people_file``.

    By default ``protocol/peopleDevTest.txt`` is excluded, so protocols P1–P3 stay clean.
    """
    lfw_root = Path(lfw_root)
    if exclude_people_file == "default":
        exclude_people_file = lfw_root / "protocol" / "peopleDevTest.txt"
    exclude = read_people_file(exclude_people_file) if exclude_people_file else []
    ds = from_folders(lfw_root / "lfw-deepfunneled", exclude=exclude)
    ds.source = f"lfw:{lfw_root}"
    return ds


def lfw_annotations(lfw_root: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """LFW's 5-point landmarks: relative path → ``(5, 2)`` pixels (left eye, right eye, nose, mouth)."""
    ann_file = Path(lfw_root) / "annotations" / "lfw_landmark_5pt_original250.txt"
    out = {}
    if ann_file.is_file():
        for line in ann_file.read_text().splitlines():
            parts = line.split()
            if len(parts) == 11:
                out[parts[0]] = np.asarray(parts[1:], np.float32).reshape(5, 2)
    return out


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class CropCache:
    """Aligned 112×112 crops on disk, keyed by image content hash and :data:`PIPELINE_VERSION`.

    Stored as ``<dir>/crops-<PIPELINE_VERSION>.npz`` with arrays ``keys`` (hex SHA-256), ``crops``
    ``(M, 112, 112, 3)`` uint8, ``landmarks`` ``(M, 5, 2)``, ``detected`` ``(M,)`` bool (False: the
    crop used fallback landmarks) — images where nothing could be aligned are absent.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.file = self.directory / f"crops-{PIPELINE_VERSION}.npz"
        self._index: dict[str, int] = {}
        self._crops = np.zeros((0, CANONICAL_SIZE, CANONICAL_SIZE, 3), np.uint8)
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
        """``(crop, detected)`` for a content hash, or None."""
        i = self._index.get(key)
        return None if i is None else (self._crops[i], bool(self._detected[i]))

    def landmarks(self, key: str) -> np.ndarray | None:
        """The ``(5, 2)`` landmarks the cached crop was aligned with, or None."""
        i = self._index.get(key)
        return None if i is None else self._landmarks[i]

    def add(self, keys: Sequence[str], crops: np.ndarray, landmarks: np.ndarray, detected: np.ndarray) -> None:
        """Add entries (kept in memory until :meth:`save`)."""
        new = [i for i, k in enumerate(keys) if k not in self._index]
        if not new:
            return
        base = len(self._crops)
        self._crops = np.concatenate([self._crops, np.asarray(crops)[new]])
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


def aligned_crops(dataset: IdentityDataset, cache: CropCache, detector=None,
                  fallback_landmarks: dict[str, np.ndarray] | None = None, batch: int = 32,
                  progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Canonical crops of every image of ``dataset``, detecting only images not in ``cache``.

    When several faces are found, the one nearest the image centre is used (identity-folder
    datasets are photos of one person). When none is found, ``fallback_landmarks[path]`` is used if
    given, else the image is dropped.

    Returns:
        ``crops`` ``(N, 112, 112, 3)`` uint8 and ``ok`` ``(N,)`` bool (False = dropped; its crop is 0).
    """
    from facever.detection import central_face
    from facever.encoder.mtcnn_tf import TFMTCNNDetector as MTCNNDetector

    n = len(dataset)
    keys = [file_sha256(dataset.root / p) for p in dataset.paths]
    crops = np.zeros((n, CANONICAL_SIZE, CANONICAL_SIZE, 3), np.uint8)
    ok = np.zeros(n, bool)
    todo = []
    for i, k in enumerate(keys):
        hit = cache.get(k)
        if hit is not None:
            crops[i], ok[i] = hit[0], True
        else:
            todo.append(i)
    detector = detector or (MTCNNDetector(min_face_size=20) if todo else None)
    for start in range(0, len(todo), batch):
        idx = todo[start:start + batch]
        images = [load_image(dataset.root / dataset.paths[i]) for i in idx]
        found = detector.detect_batch(images)
        new_keys, new_crops, new_lms, new_det = [], [], [], []
        for i, image, faces in zip(idx, images, found):
            if faces:
                lms = central_face(faces, image.shape).landmarks
                detected = True
            elif fallback_landmarks and dataset.paths[i] in fallback_landmarks:
                lms, detected = fallback_landmarks[dataset.paths[i]], False
            else:
                continue
            crops[i] = align_face(image, lms, CANONICAL_SIZE)
            ok[i] = True
            new_keys.append(keys[i]); new_crops.append(crops[i]); new_lms.append(lms); new_det.append(detected)
        if new_keys:
            cache.add(new_keys, np.stack(new_crops), np.stack(new_lms), np.asarray(new_det))
        if progress:
            progress(min(start + batch, len(todo)), len(todo))
    if todo:
        cache.save()
    return crops, ok


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
