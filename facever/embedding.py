"""Images → detected faces → aligned crops → embeddings (batched, flip test-time augmentation).

Canonical crops are ``CANONICAL_SIZE``×``CANONICAL_SIZE`` (112) uint8 RGB, the size stored in the
gallery; they are resized (area interpolation) to the model's input size before encoding, exactly as
in training, so a crop stored once can be re-embedded by any later model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from facever.alignment import CANONICAL_SIZE, CropQuality, align_face, crop_quality
from facever.detection import Detector, Face, FacePolicy, default_detector, select_faces
from facever.encoder.bundle import ModelBundle
from facever.imaging import load_image


@dataclass(frozen=True)
class AlignedFace:
    """A face found in an image and its canonical crop.

    Attributes: ``face`` (box, landmarks, score), ``crop`` (112, 112, 3) uint8 RGB, ``quality``.
    """

    face: Face
    crop: np.ndarray
    quality: CropQuality


def resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(N, s, s, 3)`` uint8 crops to ``(N, size, size, 3)`` with area interpolation."""
    crops = np.asarray(crops)
    if crops.shape[1] == size:
        return crops
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])


def align_faces(image: np.ndarray, faces: Sequence[Face]) -> list[AlignedFace]:
    """Align each of ``faces`` found in ``image`` to a canonical crop with its quality figures."""
    out = []
    for face in faces:
        crop = align_face(image, face.landmarks, CANONICAL_SIZE)
        out.append(AlignedFace(face=face, crop=crop, quality=crop_quality(crop, face.landmarks)))
    return out


class FaceEmbedder:
    """Runs the whole pipeline with one loaded model bundle and one detector.

    Args:
        bundle: the loaded encoder bundle.
        detector: a :class:`~facever.detection.Detector` (default: MTCNN).
        batch_size: crops per encoder call.
    """

    def __init__(self, bundle: ModelBundle, detector: Detector | None = None, batch_size: int = 64) -> None:
        self.bundle = bundle
        self.detector = detector or default_detector()
        self.batch_size = batch_size
        self._predict = None

    @property
    def input_size(self) -> int:
        """Side of the encoder's square input, pixels."""
        return int(self.bundle.metadata.input_size)

    @property
    def model_version(self) -> str:
        """Content hash of the loaded model."""
        return self.bundle.version

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        if self._predict is None:
            import tensorflow as tf

            model = self.bundle.model
            self._predict = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return np.asarray(self._predict(batch.astype(np.float32)))

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """Embed canonical crops.

        Args:
            crops: ``(N, s, s, 3)`` uint8 RGB aligned crops (any s; resized to the input size).
        Returns:
            ``(N, D)`` float32 unit vectors; with flip TTA the mean of the crop's and its mirror's
            embeddings, renormalised.
        """
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"crops must be (N, s, s, 3), got {crops.shape}")
        dim = int(self.bundle.metadata.embedding_dim)
        if len(crops) == 0:
            return np.zeros((0, dim), np.float32)
        crops = resize_crops(crops, self.input_size)
        out = np.empty((len(crops), dim), np.float32)
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start:start + self.batch_size]
            emb = self._forward(batch)
            if self.bundle.metadata.flip_tta:
                emb = emb + self._forward(batch[:, :, ::-1, :])
            out[start:start + len(batch)] = emb
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def find_faces(self, image, policy: FacePolicy = "largest", name: str | None = None) -> list[AlignedFace]:
        """Decode ``image`` (path, bytes or array), detect, apply ``policy``, align.

        Raises :class:`~facever.errors.ImageError`, :class:`~facever.errors.NoFaceError`,
        :class:`~facever.errors.MultipleFacesError`.
        """
        label = name or (str(image) if not hasattr(image, "shape") and not isinstance(image, (bytes, bytearray)) else "image")
        rgb = load_image(image, name=name)
        faces = select_faces(self.detector.detect(rgb), policy=policy, source=label)
        return align_faces(rgb, faces)

    def embed_image(self, image, policy: FacePolicy = "largest", name: str | None = None) -> tuple[list[AlignedFace], np.ndarray]:
        """Faces of one image and their ``(F, D)`` embeddings (F ≥ 1; largest face first)."""
        aligned = self.find_faces(image, policy=policy, name=name)
        return aligned, self.embed_crops(np.stack([a.crop for a in aligned]))
