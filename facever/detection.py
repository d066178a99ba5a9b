"""Face detection with five landmarks: the interface, the face record and the face policy.

A :class:`Detector` maps an RGB image (H×W×3 uint8) to a list of :class:`Face` objects. The default
implementation is MTCNN on onnxruntime (:class:`facever.mtcnn_onnx.OnnxMTCNNDetector`, the ``mtcnn``
package's networks exported once at build time, and :func:`facever.mtcnn_onnx.default_detector`);
the TensorFlow original it reproduces lives on the training side (:mod:`facever.training.mtcnn_tf`).
This module imports neither: implementations import it, never the reverse. Coordinates are pixels in the input image,
``x`` to the right and ``y`` down; landmarks are ordered left eye, right eye, nose tip, left mouth
corner, right mouth corner, where "left" is the image left (the subject's right).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

import numpy as np

from facever.errors import MultipleFacesError, NoFaceError

#: How to pick faces when an image holds several: the largest one, all of them, or fail.
FacePolicy = Literal["largest", "one", "all"]
"""Which faces of an image are used (the ``faces`` argument everywhere): ``"largest"`` (the largest
box), ``"one"`` (exactly one face: several is an error) or ``"all"`` (every face, largest first)."""

#: Face policies of 0.3 still accepted: ``"strict"`` is ``"one"``.
FACE_POLICY_ALIASES = {"strict": "one"}


def face_policy(value: str) -> FacePolicy:
    """``value`` as a :data:`FacePolicy` (``"strict"``, 0.3's name, is ``"one"``).

    Raises:
        ValueError: an unknown policy.
    """
    value = FACE_POLICY_ALIASES.get(value, value)
    if value not in ("largest", "one", "all"):
        raise ValueError(f"unknown face policy {value!r}; use 'largest', 'one' or 'all'")
    return value  # type: ignore[return-value]


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Face":
        """The inverse of :meth:`to_dict` (e.g. a face in an HTTP answer)."""
        return cls(box=tuple(float(v) for v in data["box"]),  # type: ignore[arg-type]
                   landmarks=np.asarray(data["landmarks"], np.float32).reshape(5, 2), score=float(data["score"]))

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


class MTCNNBase:
    """What every MTCNN implementation here shares: input scaling, batching by shape, output rows.

    Subclasses implement :meth:`_detect_rows`. Args:
        min_face_size: smallest face searched for, in pixels of the input image (≥ 20). Above 20
            the image is downscaled so that this size becomes MTCNN's native 20 px, which makes
            detection faster (MTCNN 1.0.0's own ``min_face_size`` breaks its pyramid above 20).
        max_side: images whose longer side exceeds this many pixels are downscaled before detection
            (coordinates are mapped back); this bounds the time on large photos.
        min_score: faces below this ONet confidence are dropped.
    """

    #: MTCNN's native smallest face (its PNet window is 12 px at scale 12/20).
    NATIVE_MIN_FACE = 20

    #: Whether :meth:`_detect_rows` takes ``min_box`` (skips the pyramid levels of smaller faces).
    PRUNES_PYRAMID = False

    def __init__(self, min_face_size: int = 20, max_side: int = 640, min_score: float = 0.9) -> None:
        if min_face_size < self.NATIVE_MIN_FACE:
            raise ValueError(f"min_face_size must be >= {self.NATIVE_MIN_FACE}, got {min_face_size}")
        self.min_face_size = min_face_size
        self.max_side = max_side
        self.min_score = min_score

    def _detect_rows(self, images: list[np.ndarray]) -> np.ndarray:
        """MTCNN on same-shape RGB images: rows ``(n, 16)`` = ``[image, x1, y1, x2, y2, score, x×5, y×5]``."""
        raise NotImplementedError

    def _scale(self, h: int, w: int) -> float:
        """The factor (≤ 1) an ``h`` × ``w`` image is resized by before detection (``max_side``,
        ``min_face_size``)."""
        return min(1.0, self.max_side / max(h, w, 1), self.NATIVE_MIN_FACE / self.min_face_size)

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an RGB (H, W, 3) image, got shape {image.shape}")
        h, w = image.shape[:2]
        scale = self._scale(h, w)
        if scale < 1.0:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image), scale

    def detect(self, image: np.ndarray, min_box: float | None = None) -> list[Face]:
        """Every face in an RGB ``(H, W, 3)`` uint8 image, best score first.

        ``min_box``: skip the image-pyramid levels whose window is narrower than this many pixels
        of ``image``: they only find faces smaller than that (the finest level alone is half of
        PNet's work). None, or a detector without :data:`PRUNES_PYRAMID`, searches every level."""
        return self.detect_batch([image], min_box=min_box)[0]

    def prunes(self, shape: tuple[int, ...], min_box: float) -> bool:
        """Whether ``min_box`` skips any pyramid level for an image of ``shape`` ``(H, W, ...)``
        (large photos are downscaled first, which can bring it below the finest 20 px window)."""
        return self.PRUNES_PYRAMID and min_box * self._scale(*shape[:2]) > self.NATIVE_MIN_FACE

    #: Images per network batch at most: on a 2-core CPU, LFW photos took 9.7 ms each in batches of 4,
    #: 10.6 ms one by one and 11.1 ms in batches of 16 (larger batches leave the caches).
    BATCH_MAX = 4

    def detect_batch(self, images: Sequence[np.ndarray], min_box: float | None = None) -> list[list[Face]]:
        """The faces of each image. MTCNN pads a batch to its largest image, so images are grouped
        by shape (each group shares the network calls, :data:`BATCH_MAX` images at a time) and
        padding never changes the results. ``min_box``: as in :meth:`detect`."""
        if len(images) == 0:
            return []
        prepared = [self._prepare(im) for im in images]
        results: list[list[Face]] = [[] for _ in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (im, _) in enumerate(prepared):
            groups.setdefault(im.shape, []).append(i)
        batches = [(shape, idx[k:k + self.BATCH_MAX]) for shape, idx in groups.items()
                   for k in range(0, len(idx), self.BATCH_MAX)]
        for shape, idx in batches:
            if min(shape[:2]) < 12:  # smaller than PNet's receptive field: nothing to find
                continue
            batch = [prepared[i][0] for i in idx]
            if min_box is not None and self.PRUNES_PYRAMID:  # in the pixels MTCNN sees (scaled ≤ 1)
                found = self._detect_rows(batch, min_box=min_box * min(prepared[i][1] for i in idx))
            else:
                found = self._detect_rows(batch)
            rows = np.asarray(found, np.float64).reshape(-1, 16)
            for row in rows:
                i = idx[int(row[0])]
                scale = prepared[i][1]
                if row[5] < self.min_score:
                    continue
                box = tuple(float(v) / scale for v in row[1:5])
                # MTCNN rows hold the five x coordinates, then the five y coordinates
                lms = (np.stack([row[6:11], row[11:16]], axis=1) / scale).astype(np.float32)
                results[i].append(Face(box=box, landmarks=lms, score=float(row[5])))
        for faces in results:
            faces.sort(key=lambda f: f.score, reverse=True)
        return results


def select_faces(found: list[Face], faces: FacePolicy = "largest", source: str = "image") -> list[Face]:
    """Apply a face policy to a detector's output.

    Args:
        found: the faces found in one image.
        faces: the :data:`FacePolicy`: ``"largest"`` keeps the largest box, ``"one"`` requires exactly
            one face, ``"all"`` keeps every face (largest first).
        source: name of the image, used in error messages.

    Raises:
        NoFaceError: when ``found`` is empty.
        MultipleFacesError: under ``"one"`` when more than one face was found.
        ValueError: an unknown policy.
    """
    policy = face_policy(faces)
    if not found:
        raise NoFaceError(f"{source}: no face found")
    ordered = sorted(found, key=lambda f: f.area, reverse=True)
    if policy == "all":
        return ordered
    if policy == "one" and len(ordered) > 1:
        raise MultipleFacesError(f"{source}: {len(ordered)} faces found, exactly one required")
    return ordered[:1]


def central_face(faces: Sequence[Face], shape: tuple[int, ...]) -> Face:
    """The face whose box centre is nearest the centre of an image of ``shape`` ``(H, W, ...)``: LFW's
    convention, and the right pick for photo sets of one person per image or folder."""
    cx, cy = shape[1] / 2.0, shape[0] / 2.0
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)
