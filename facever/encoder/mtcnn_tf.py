"""MTCNN on TensorFlow (the ``mtcnn`` 1.0.0 package): the training-side reference detector.

The inference path uses :class:`facever.mtcnn_onnx.OnnxMTCNNDetector`, a port of this pipeline on
the same networks exported to ONNX (:mod:`facever.encoder.export_mtcnn`); this class stays as the
reference its parity tests compare against.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from facever.detection import Face


def _compile_stages(mtcnn) -> None:
    """Run MTCNN's three networks as traced ``tf.function`` graphs instead of eager Keras calls.

    The package calls each network eagerly, once per pyramid scale and stage; on a small image that
    per-call overhead, not the convolutions, is most of the time (LFW 250×250 images, one per call, 2
    cores: 137 → 43 ms, same boxes and landmarks; ``benchmarks/detection.py``). ``reduce_retracing`` lets
    TensorFlow generalise the traced shapes after the first few calls, so the pyramid's many image
    sizes do not each trigger a new trace. (A fixed all-``None`` input signature traced once but ran
    as slowly as eager here.)
    """
    import tensorflow as tf

    for stage in mtcnn.stages:
        stage._model = tf.function(stage._model, reduce_retracing=True)


class TFMTCNNDetector:
    """MTCNN (Zhang et al. 2016) from the ``mtcnn`` package, on the CPU.

    Args:
        min_face_size: smallest face searched for, in pixels of the input image (≥ 20). Above 20
            the image is downscaled so that this size becomes MTCNN's native 20 px, which makes
            detection faster (MTCNN 1.0.0's own ``min_face_size`` breaks its pyramid above 20).
        max_side: images whose longer side exceeds this many pixels are downscaled before detection
            (coordinates are mapped back); this bounds the time on large photos.
        min_score: faces below this ONet confidence are dropped.
    """

    #: MTCNN's native smallest face (its PNet window is 12 px at scale 12/20).
    NATIVE_MIN_FACE = 20

    def __init__(self, min_face_size: int = 20, max_side: int = 640, min_score: float = 0.9) -> None:
        if min_face_size < self.NATIVE_MIN_FACE:
            raise ValueError(f"min_face_size must be >= {self.NATIVE_MIN_FACE}, got {min_face_size}")
        self.min_face_size = min_face_size
        self.max_side = max_side
        self.min_score = min_score
        self._mtcnn = None

    def _model(self):
        if self._mtcnn is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from mtcnn import MTCNN

            self._mtcnn = MTCNN(device="CPU:0")
            _compile_stages(self._mtcnn)
        return self._mtcnn

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        import cv2

        h, w = image.shape[:2]
        scale = min(1.0, self.max_side / max(h, w), self.NATIVE_MIN_FACE / self.min_face_size)
        if scale < 1.0:
            image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image), scale

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        if len(images) == 0:
            return []
        prepared = [self._prepare(im) for im in images]
        # MTCNN pads a batch to its largest image; group by shape so padding never changes results.
        results: list[list[Face]] = [[] for _ in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (im, _) in enumerate(prepared):
            groups.setdefault(im.shape, []).append(i)
        for shape, idx in groups.items():
            if min(shape[:2]) < 12:  # smaller than PNet's receptive field: nothing to find
                continue
            rows = self._model().detect_faces(
                [prepared[i][0] for i in idx], output_type="numpy", box_format="xyxy",
                min_face_size=self.NATIVE_MIN_FACE,
            )
            rows = np.asarray(rows, dtype=np.float64).reshape(-1, 16)
            for row in rows:
                local = int(row[0])
                i = idx[local]
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
