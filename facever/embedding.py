"""Images → detected faces → aligned crops → embeddings (batched, test-time views: zooms and mirrors).

Faces are aligned straight to the loaded model's own geometry (``metadata.alignment`` template at
``metadata.input_size``; 150 px dlib chips for the default model); that crop is what the gallery
stores, with its template name and size. A stored crop is re-embedded by a later model of the same
template (resized when only the size differs); a crop of another template is refused, never
re-warped or guessed from its size. Encoding runs the bundle's exported graph (onnxruntime): no
TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from facever import config
from facever.alignment import TEMPLATES, CropQuality, align_face, crop_quality, crop_views
from facever.bundle import ModelBundle
from facever.detection import Detector, Face, FacePolicy, select_faces
from facever.errors import ModelError
from facever.imaging import load_image
from facever.mtcnn_onnx import default_detector

#: Stacks of at least this many crop views are encoded in parallel calls (enrolment, reindex): one per
#: worker thread, :func:`facever.config.worker_threads`.
PARALLEL_MIN_CROPS = 8

#: Border added around an image (fraction of each side) for a second detection pass when none was
#: found: tight face crops (passport-style, or cut by another detector) leave MTCNN no context.
RETRY_PAD = 0.3

#: Images whose shorter side is below this (pixels) get a third pass, enlarged to it, when the padded
#: one finds nothing (measured: finds 17 of the 81 LFW, pins and bollywood photos missed before).
RETRY_MIN_SIDE = 256


@dataclass(frozen=True)
class AlignedFace:
    """A face found in an image and its aligned crop.

    Attributes: ``face`` (box, landmarks, score), ``crop`` ``(S, S, 3)`` uint8 RGB in the model's
    geometry, ``quality``.
    """

    face: Face
    crop: np.ndarray
    quality: CropQuality


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """``(N, s, s, 3)`` uint8 crops of one template → ``(N, size, size, 3)`` (the template scales with
    the crop: a plain resize, area interpolation as in training); unchanged when ``s == size``."""
    crops = np.asarray(crops)
    if crops.shape[1] == size:
        return crops
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])


def align_faces(image: np.ndarray, faces: Sequence[Face], size: int, template_name: str) -> list[AlignedFace]:
    """Align each of ``faces`` found in ``image`` to a ``size`` px crop of template ``template_name``."""
    out = []
    for face in faces:
        crop = align_face(image, face.landmarks, size, template_name)
        out.append(AlignedFace(face=face, crop=crop, quality=crop_quality(crop, face.landmarks)))
    return out


def detect_with_retry(detector: Detector, rgb: np.ndarray, min_box: float | None = None) -> list[Face]:
    """Faces of ``rgb``; when none is found, once more on a padded copy (:func:`detect_padded`).

    ``min_box`` (px): first search only for faces at least that wide, skipping the finest pyramid
    levels (:meth:`facever.detection.MTCNNBase.detect`); only when that finds nothing, search in full
    as without it. For callers that keep the largest face and refuse small ones (enrolment)."""
    prunes = getattr(detector, "prunes", None)
    if min_box is not None and prunes is not None and prunes(rgb.shape, min_box):
        faces = detector.detect(rgb, min_box=min_box)
        if faces:
            return faces
    return detector.detect(rgb) or detect_padded(detector, rgb)


def detect_padded(detector: Detector, rgb: np.ndarray) -> list[Face]:
    """Faces of ``rgb`` framed by a black border of :data:`RETRY_PAD` of each side (tight face crops
    leave MTCNN no context); when none is found and the image is small (shorter side below
    :data:`RETRY_MIN_SIDE` px: a 64 px face is near MTCNN's smallest scale), once more on a bicubic
    enlargement to that size, framed the same way. Coordinates are mapped back to ``rgb`` (they may
    then lie slightly outside it)."""
    h, w = rgb.shape[:2]
    faces = _detect_framed(detector, rgb, 1.0)
    scale = RETRY_MIN_SIDE / max(1, min(h, w))
    if not faces and scale > 1.0:
        big = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        faces = _detect_framed(detector, big, scale)
    return faces


def _detect_framed(detector: Detector, rgb: np.ndarray, scale: float) -> list[Face]:
    """Faces of ``rgb`` padded by :data:`RETRY_PAD`, in the pixels of an image ``scale`` times smaller."""
    h, w = rgb.shape[:2]
    px, py = int(RETRY_PAD * w), int(RETRY_PAD * h)
    if min(px, py) < 1:
        return []
    framed = cv2.copyMakeBorder(rgb, py, py, px, px, cv2.BORDER_CONSTANT, value=0)
    off = np.array([px, py], np.float32)
    return [Face(box=tuple(float(v) / scale for v in (f.box[0] - px, f.box[1] - py, f.box[2] - px, f.box[3] - py)),
                 landmarks=((f.landmarks - off) / scale).astype(np.float32), score=f.score)
            for f in detector.detect(framed)]


class FaceEmbedder:
    """Runs the whole pipeline with one loaded model bundle and one detector.

    Args:
        bundle: the loaded encoder bundle (its ``encoder`` maps float32 crops to embeddings).
        detector: a :class:`~facever.detection.Detector` (default: MTCNN on onnxruntime).
        batch_size: crops per encoder call.
    """

    def __init__(self, bundle: ModelBundle, detector: Detector | None = None, batch_size: int = 64) -> None:
        self.bundle = bundle
        self.detector = detector or default_detector()
        self.batch_size = batch_size

    @property
    def input_size(self) -> int:
        """Side of the encoder's square input, pixels."""
        return int(self.bundle.metadata.input_size)

    @property
    def model_version(self) -> str:
        """Content hash of the loaded model."""
        return self.bundle.version

    @property
    def template_name(self) -> str:
        """Alignment template of the model's input crops (``metadata.alignment``).

        Raises :class:`~facever.errors.ModelError` when the bundle names a template this facever lacks.
        """
        name = str(self.bundle.metadata.alignment)
        if name not in TEMPLATES:
            raise ModelError(f"the model's alignment template {name!r} is unknown to this facever "
                             f"(it knows {', '.join(sorted(TEMPLATES))})")
        return name

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.bundle.encoder(batch.astype(np.float32)), np.float32)

    def embed_crops(self, crops: np.ndarray, template: str | None = None, parallel: bool = True) -> np.ndarray:
        """Embed aligned crops.

        Args:
            crops: ``(N, s, s, 3)`` uint8 RGB crops aligned to ``template`` (resized to the model's
                input size when ``s`` differs).
            template: the template the crops were aligned to (e.g. a stored face's ``crop_template``);
                default: the model's own (:attr:`template_name`), as for crops this embedder aligned.
            parallel: split a large stack of views over the worker threads; False when the caller
                is one of several workers already (threads within threads only contend for the cores).
        Returns:
            ``(N, D)`` float32 unit vectors: the renormalised mean of the embeddings of the crop's
            test-time views (:func:`facever.alignment.crop_views`: the bundle's ``view_zooms``, each
            mirrored when ``flip_tta``).
        Raises:
            ModelError: ``template`` differs from the model's (crops are not re-warped between templates).
        """
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"crops must be (N, s, s, 3), got {crops.shape}")
        if template is not None and template != self.template_name:
            raise ModelError(f"these crops are aligned to the {template!r} template but the model expects "
                             f"{self.template_name!r} crops; facever does not re-warp crops between templates")
        dim = int(self.bundle.metadata.embedding_dim)
        if len(crops) == 0:
            return np.zeros((0, dim), np.float32)
        crops = resize_crops(crops, self.input_size)
        meta = self.bundle.metadata
        # every view of every crop in one stack, encoded in batches: a single face's views share one call
        stack = np.concatenate(crop_views(crops, meta.view_zooms, flip=bool(meta.flip_tta)))
        workers = config.worker_threads() if parallel and len(stack) >= PARALLEL_MIN_CROPS else 1
        parallel = workers > 1
        step = min(self.batch_size, -(-len(stack) // workers)) if parallel else self.batch_size
        starts = range(0, len(stack), step)

        def run(start: int) -> np.ndarray:
            return self._forward(np.ascontiguousarray(stack[start:start + step]))

        if parallel:
            # the encoder runs one thread per call; one call per worker uses the cores (no GIL held)
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(run, starts))
        else:
            results = [run(start) for start in starts]
        out = np.concatenate(results).reshape(-1, len(crops), dim).sum(0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def find_faces(self, image, faces: FacePolicy = "largest", name: str | None = None,
                   min_box: float | None = None) -> list[AlignedFace]:
        """Decode ``image`` (path, bytes or ``(H, W, 3)`` uint8 **RGB** array), detect, keep ``faces``
        (:data:`~facever.detection.FacePolicy`), align. ``min_box``: see :func:`detect_with_retry`.

        Raises :class:`~facever.errors.ImageError`, :class:`~facever.errors.NoFaceError`,
        :class:`~facever.errors.MultipleFacesError`.
        """
        label = name or (str(image) if not hasattr(image, "shape") and not isinstance(image, (bytes, bytearray)) else "image")
        rgb = load_image(image, name=name)
        chosen = select_faces(detect_with_retry(self.detector, rgb, min_box), faces, source=label)
        return align_faces(rgb, chosen, self.input_size, self.template_name)

    def embed_image(self, image, faces: FacePolicy = "largest", name: str | None = None) -> tuple[list[AlignedFace], np.ndarray]:
        """Faces of one image and their ``(F, D)`` embeddings (F ≥ 1; largest face first)."""
        aligned = self.find_faces(image, faces=faces, name=name)
        return aligned, self.embed_crops(np.stack([a.crop for a in aligned]))
