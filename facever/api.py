"""The facade most users need: embed, verify (and, through :mod:`facever.gallery`, enroll/identify).

Images may be given as a path, encoded bytes, or an ``(H, W, 3)`` uint8 array in **RGB** order.
OpenCV's ``cv2.imread`` gives **BGR**: convert first (``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)``) or pass
the path instead; a BGR array is not an error, it silently embeds a differently coloured face.
Distances are Euclidean between unit embeddings, in [0, 2]; a pair is the same person when distance ≤ τ.

>>> import facever
>>> result = facever.verify("a.jpg", "b.jpg")      # doctest: +SKIP
>>> result.same, round(result.distance, 3), result.threshold   # doctest: +SKIP
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal

import numpy as np

from facever import config
from facever.detection import Detector, Face, FacePolicy
from facever.detection import face_policy as _face_policy
from facever.embedding import AlignedFace, FaceEmbedder
from facever.bundle import ModelBundle, load_bundle
from facever.errors import ModelError, NoModelError
from facever.matching import VerificationHead, distance

if TYPE_CHECKING:
    from facever.batch import ImageFaces

NO_MODEL_HINT = "pass --model PATH (Python: FaceVerifier(model=PATH)) or set FACEVER_MODEL to a trained bundle"


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a 1:1 comparison.

    Attributes:
        same: distance ≤ threshold.
        distance: Euclidean distance between the two unit embeddings, in [0, 2].
        threshold: τ used for the decision.
        far / frr: false accept / reject rates at τ on the model's calibration pairs (None if unknown).
        probability: P(same person) from the bundle's logistic head, if it has one.
        model_version: content hash of the model that produced the embeddings.
        faces: per input, the detected :class:`~facever.detection.Face` (box, landmarks, score);
            empty when the result was computed from embeddings alone.
    """

    same: bool
    distance: float
    threshold: float
    far: float | None = None
    frr: float | None = None
    probability: float | None = None
    model_version: str = ""
    faces: list[Face] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (faces as dicts)."""
        return {"same": self.same, "distance": round(self.distance, 6), "threshold": self.threshold,
                "far": self.far, "frr": self.frr, "probability": self.probability,
                "model_version": self.model_version, "faces": [f.to_dict() for f in self.faces]}


class FaceVerifier:
    """Holds one loaded model (and detector) for repeated calls.

    Args:
        model: a bundle directory, a loaded :class:`ModelBundle`, or None for the default
            (``FACEVER_MODEL`` or the bundle shipped with the package).
        detector: face detector (default MTCNN).
        faces: which face of each image is used (:data:`~facever.detection.FacePolicy`):
            ``"largest"`` (default) or ``"one"`` (exactly one face, several is an error).
        threshold: override τ (distance in [0, 2]); default is the bundle's calibrated τ.
        calibrated: False loads a model without a calibrated τ (to embed, evaluate or calibrate it);
            deciding (``verify``, ``compare``) then needs ``threshold``.
        face_policy: 0.3's name of ``faces`` (deprecated).

    Images are paths, encoded bytes or ``(H, W, 3)`` uint8 arrays in **RGB** order (OpenCV's BGR
    arrays must be converted first).

    Raises:
        NoModelError: when no trained model is available.
        ModelError: the model has no calibrated τ, ``calibrated`` is True and no ``threshold`` is given.
    """

    def __init__(self, model: str | os.PathLike[str] | ModelBundle | None = None, detector: Detector | None = None,
                 faces: FacePolicy = "largest", threshold: float | None = None, *, calibrated: bool = True,
                 face_policy: FacePolicy | None = None) -> None:
        if face_policy is not None:
            warnings.warn("FaceVerifier(face_policy=...) is now FaceVerifier(faces=...)", DeprecationWarning,
                          stacklevel=2)
            faces = face_policy
        self.default_faces: FacePolicy = _face_policy(faces)
        bundle = model if isinstance(model, ModelBundle) else _load(model)
        self.bundle = bundle
        self.embedder = FaceEmbedder(bundle, detector)
        meta = bundle.metadata
        if threshold is None and meta.threshold is not None:
            threshold = float(meta.threshold.value)
        if threshold is None and calibrated:
            raise ModelError(f"model {bundle.path}: not calibrated (no threshold); run `facever calibrate` or pass a "
                             "threshold (FaceVerifier(model, calibrated=False) loads it to embed or calibrate)")
        self._threshold = None if threshold is None else float(threshold)
        self._head = VerificationHead.from_json(meta.verification_head) if meta.verification_head else None

    @property
    def model_version(self) -> str:
        """Content hash of the loaded model."""
        return self.bundle.version

    @property
    def threshold(self) -> float:
        """τ: two faces are the same person when their distance is ≤ it (in [0, 2]).

        Raises:
            ModelError: an uncalibrated model loaded with ``calibrated=False`` and no ``threshold``.
        """
        if self._threshold is None:
            raise ModelError(f"model {self.bundle.path}: not calibrated (no threshold); run `facever calibrate` "
                             "or pass a threshold")
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = float(value)

    @property
    def face_policy(self) -> FacePolicy:
        """0.3's name of :attr:`default_faces` (deprecated)."""
        return self.default_faces

    def faces(self, image, name: str | None = None) -> list[AlignedFace]:
        """Detected, aligned faces of ``image`` (path, bytes or RGB array) under :attr:`default_faces`."""
        return self.embedder.find_faces(image, faces=self.default_faces, name=name)

    def embed(self, image, name: str | None = None) -> np.ndarray:
        """The ``(D,)`` float32 unit embedding of the (largest) face in ``image`` (path, bytes or RGB array)."""
        return self.embedder.embed_image(image, faces=self.default_faces, name=name)[1][0]

    def embed_with_face(self, image, name: str | None = None) -> tuple[AlignedFace, np.ndarray]:
        """The chosen face of ``image`` and its ``(D,)`` embedding."""
        aligned, emb = self.embedder.embed_image(image, faces=self.default_faces, name=name)
        return aligned[0], emb[0]

    def embed_many(self, images: Iterable[Any], faces: Literal["all", "largest"] = "all", chunk: int = 16,
                   workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> list[ImageFaces]:
        """Embed every face (or the largest, ``faces="largest"``) of many images, in batches on all cores.

        Args:
            images: paths, encoded bytes or ``(H, W, 3)`` uint8 RGB arrays.
            faces: ``"all"`` (largest first) or ``"largest"``.
            chunk: images per detection / encoder batch.
            workers: chunks processed at once (threads; default: one per core).
            progress: ``progress(done, total)`` after each chunk.
        Returns:
            One :class:`facever.batch.ImageFaces` per input, in order: its faces (box, landmarks,
            score, quality, ``(D,)`` unit embedding); an unreadable image has ``error`` set and no
            faces (it is reported, never raised).
        """
        from facever.batch import iter_embed

        return list(iter_embed(self.embedder, images, faces=faces, chunk=chunk, workers=workers, progress=progress))

    def compare(self, emb_a: np.ndarray, emb_b: np.ndarray, faces: list[Face] | None = None) -> VerifyResult:
        """Decide on two embeddings already computed by this model."""
        d = float(distance(emb_a, emb_b))
        meta_t = self.bundle.metadata.threshold
        calibrated = meta_t is not None and abs(meta_t.value - self.threshold) < 1e-12
        prob = float(self._head.predict_proba(emb_a, emb_b)) if self._head is not None else None
        return VerifyResult(same=d <= self.threshold, distance=d, threshold=self.threshold,
                            far=meta_t.far if calibrated else None, frr=meta_t.frr if calibrated else None,
                            probability=prob, model_version=self.model_version, faces=faces or [])

    def verify(self, image_a, image_b, names: tuple[str | None, str | None] = (None, None)) -> VerifyResult:
        """Are the faces in ``image_a`` and ``image_b`` the same person?

        With two or more cores (:func:`facever.config.worker_threads`) the two images are decoded,
        detected and embedded at once, one per thread (onnxruntime and OpenCV release the GIL), so a
        custom detector must be thread-safe (as the service already requires). Errors are raised as
        one after the other would: ``image_a``'s first."""
        if config.worker_threads() > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=1) as pool:  # B in the pool while A runs here
                later = pool.submit(self.embed_with_face, image_b, name=names[1])
                face_a, emb_a = self.embed_with_face(image_a, name=names[0])  # raises first, after B ends
                face_b, emb_b = later.result()
        else:
            face_a, emb_a = self.embed_with_face(image_a, name=names[0])
            face_b, emb_b = self.embed_with_face(image_b, name=names[1])
        return self.compare(emb_a, emb_b, faces=[face_a.face, face_b.face])


def _load(model: str | os.PathLike[str] | None) -> ModelBundle:
    path = config.model_path(model)
    try:
        return load_bundle(path)
    except NoModelError as exc:
        if model is None:
            raise NoModelError(f"no trained model available ({exc}); {NO_MODEL_HINT}") from exc
        raise


_default_verifier: FaceVerifier | None = None


def default_verifier() -> FaceVerifier:
    """The process-wide verifier with the default model (loaded once)."""
    global _default_verifier
    if _default_verifier is None:
        _default_verifier = FaceVerifier()
    return _default_verifier


def embed(image) -> np.ndarray:
    """The ``(128,)`` float32 unit embedding of the largest face in ``image`` (default model)."""
    return default_verifier().embed(image)


def verify(image_a, image_b) -> VerifyResult:
    """Compare the largest faces of two images with the default model and its calibrated τ."""
    return default_verifier().verify(image_a, image_b)
