"""Batch embedding of photo collections: every face of many images, on all cores.

:func:`iter_embed` (and :meth:`facever.api.FaceVerifier.embed_many`, which collects it) takes images
in chunks: each chunk is decoded, detected (``detect_batch``: images of one shape share the network
calls), aligned and encoded by one worker thread; onnxruntime and OpenCV release the GIL, so
``workers`` chunks run at once (default: one per core). An image that cannot be read is reported in
its result (``error``), never raised; an image without a face has no faces and no error.

:mod:`facever.faces_file` writes and reads the results as NPZ or Parquet (``facever embed``).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np

from facever.errors import ImageError

if TYPE_CHECKING:
    from facever.alignment import CropQuality
    from facever.detection import Face
    from facever.embedding import FaceEmbedder

#: Which faces of an image are embedded: every face (largest first) or only the largest.
FaceChoice = Literal["all", "largest"]

#: ``progress(done, total)`` after each chunk of images.
Progress = Callable[[int, int], None]

#: Images per chunk (one detection batch and one encoder batch per chunk).
CHUNK = 16


@dataclass(frozen=True)
class EmbeddedFace:
    """One face of an image and its embedding.

    Attributes:
        box: ``(x1, y1, x2, y2)`` pixels of the source image.
        landmarks: ``(5, 2)`` float32 ``(x, y)`` pixels: left eye, right eye, nose, left and right
            mouth corners (left = image left).
        score: detector confidence in [0, 1].
        quality: face width estimate (px), sharpness (Laplacian variance), frontality (0..1).
        embedding: ``(D,)`` float32 unit vector of the model that made it.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(repr=False)
    score: float
    quality: "CropQuality"
    embedding: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class ImageFaces:
    """The faces of one input image (largest first); ``error`` is the one-line reason an image could
    not be read (then ``faces`` is empty). No face found: ``faces`` empty, ``error`` None."""

    source: str
    faces: list[EmbeddedFace]
    error: str | None = None

    @property
    def ok(self) -> bool:
        """The image was read (whether or not it held a face)."""
        return self.error is None


def default_workers() -> int:
    """Worker threads for batch embedding: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def iter_embed(embedder: "FaceEmbedder", images: Iterable[Any], faces: FaceChoice = "all", chunk: int = CHUNK,
               workers: int | None = None, progress: Progress | None = None,
               total: int | None = None) -> Iterator[ImageFaces]:
    """Embed the faces of each image, yielding one :class:`ImageFaces` per input, in input order.

    Args:
        embedder: the loaded pipeline (``FaceVerifier.embedder``).
        images: paths, encoded bytes or ``(H, W, 3)`` uint8 RGB arrays (any iterable; consumed
            lazily, a few chunks ahead of the results).
        faces: ``"all"`` (every face, largest first) or ``"largest"``.
        chunk: images per detection and encoder batch.
        workers: chunks processed at once (threads; default :func:`default_workers`).
        progress: ``progress(done, total)`` after each chunk (``total`` 0 when unknown).
        total: the number of images, for ``progress`` (default ``len(images)`` when it has one).
    """
    if faces not in ("all", "largest"):
        raise ValueError(f"faces must be 'all' or 'largest', got {faces!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    workers = workers or default_workers()
    if total is None:
        total = len(images) if hasattr(images, "__len__") else 0  # type: ignore[arg-type]
    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for part in _chunks(images, chunk):
            pending.append(pool.submit(_embed_chunk, embedder, part, faces))
            if len(pending) > 2 * workers:  # bounded read-ahead: memory stays flat on any collection
                done = yield from _drain(pending.popleft(), done, total, progress)
        while pending:
            done = yield from _drain(pending.popleft(), done, total, progress)


def _drain(future, done: int, total: int, progress: Progress | None):
    results = future.result()
    yield from results
    done += len(results)
    if progress is not None:
        progress(done, total)
    return done


def _chunks(images: Iterable[Any], size: int) -> Iterator[list[Any]]:
    part: list[Any] = []
    for image in images:
        part.append(image)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part


def _label(image: Any) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fsdecode(image)
    return "<array>" if hasattr(image, "shape") else "<bytes>"


def _embed_chunk(embedder: "FaceEmbedder", images: Sequence[Any], faces: FaceChoice) -> list[ImageFaces]:
    """Decode, detect, align and encode one chunk (runs in a worker thread)."""
    from facever.detection import select_faces
    from facever.embedding import align_faces, detect_padded
    from facever.imaging import load_image

    labels = [_label(im) for im in images]
    decoded: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    for i, image in enumerate(images):
        try:
            decoded[i] = load_image(image, name=labels[i])
        except ImageError as exc:
            errors[i] = str(exc)
    order = list(decoded)
    found = embedder.detector.detect_batch([decoded[i] for i in order]) if order else []
    chosen: dict[int, list["Face"]] = {}
    for i, boxes in zip(order, found):
        boxes = boxes or detect_padded(embedder.detector, decoded[i])  # the single-image path's retry
        chosen[i] = select_faces(boxes, "all" if faces == "all" else "largest") if boxes else []
    aligned = {i: align_faces(decoded[i], chosen[i], embedder.input_size, embedder.template_name) for i in chosen}
    crops = [a.crop for i in order for a in aligned[i]]
    vectors = embedder.embed_crops(np.stack(crops), parallel=False) if crops else np.zeros((0, 0), np.float32)
    out, row = [], 0
    for i, label in enumerate(labels):
        if i in errors:
            out.append(ImageFaces(label, [], errors[i]))
            continue
        items = []
        for a in aligned[i]:
            items.append(EmbeddedFace(box=a.face.box, landmarks=a.face.landmarks, score=a.face.score,
                                      quality=a.quality, embedding=vectors[row]))
            row += 1
        out.append(ImageFaces(label, items))
    return out
