"""Face detection with five landmarks: the interface, the face record and the face policy.

A :class:`Detector` maps an RGB image (H×W×3 uint8) to a list of :class:`Face` objects. The default
implementation is MTCNN on onnxruntime (:class:`facever.mtcnn_onnx.OnnxMTCNNDetector`, the ``mtcnn``
package's networks exported once at build time); the TensorFlow original it reproduces lives on
the training side (:mod:`facever.encoder.mtcnn_tf`). Coordinates are pixels in the input image,
``x`` to the right and ``y`` down; landmarks are ordered left eye, right eye, nose tip, left mouth
corner, right mouth corner, where "left" is the image left (the subject's right).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence

import numpy as np

from facever.errors import MultipleFacesError, NoFaceError

#: How to pick faces when an image holds several: the largest one, all of them, or fail.
FacePolicy = Literal["largest", "all", "strict"]


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in pixels, float.
        landmarks: ``(5, 2)`` float32 array of ``(x, y)`` pixels (left eye, right eye, nose, left
            mouth corner, right mouth corner; left = image left).
        score: detector confidence in [0, 1].
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(repr=False)
    score: float

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return max(self.width, 0.0) * max(self.height, 0.0)

    def to_dict(self) -> dict:
        """JSON-ready view: box, landmarks as nested lists, score."""
        return {
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "score": round(float(self.score), 4),
        }


class Detector(Protocol):
    """Anything that finds faces with five landmarks."""

    def detect(self, image: np.ndarray) -> list[Face]:
        """Return every face in an RGB ``(H, W, 3)`` uint8 image, best score first."""
        ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Return the faces of each image; faster per image than repeated :meth:`detect`."""
        ...


def select_faces(faces: list[Face], policy: FacePolicy = "largest", source: str = "image") -> list[Face]:
    """Apply a face policy to a detector's output.

    Args:
        faces: the faces found in one image.
        policy: ``"largest"`` keeps the largest box, ``"all"`` keeps every face (largest first),
            ``"strict"`` requires exactly one face.
        source: name of the image, used in error messages.

    Raises:
        NoFaceError: when ``faces`` is empty.
        MultipleFacesError: under ``"strict"`` when more than one face was found.
    """
    if not faces:
        raise NoFaceError(f"{source}: no face found")
    ordered = sorted(faces, key=lambda f: f.area, reverse=True)
    if policy == "all":
        return ordered
    if policy == "strict" and len(ordered) > 1:
        raise MultipleFacesError(f"{source}: {len(ordered)} faces found, exactly one required")
    if policy not in ("largest", "strict"):
        raise ValueError(f"unknown face policy {policy!r}")
    return ordered[:1]


_default: Detector | None = None


def default_detector() -> Detector:
    """Return the process-wide default detector (MTCNN on onnxruntime; graphs loaded on first use)."""
    global _default
    if _default is None:
        from facever.mtcnn_onnx import OnnxMTCNNDetector

        _default = OnnxMTCNNDetector()
    return _default


def __getattr__(name: str):
    """``MTCNNDetector``: the default MTCNN implementation (onnxruntime), imported lazily."""
    if name == "MTCNNDetector":
        from facever.mtcnn_onnx import OnnxMTCNNDetector

        return OnnxMTCNNDetector
    raise AttributeError(f"module 'facever.detection' has no attribute {name!r}")
