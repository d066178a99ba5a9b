"""MTCNN on TensorFlow (the ``mtcnn`` 1.0.0 package): the training-side reference detector.

The inference path uses :class:`facever.mtcnn_onnx.OnnxMTCNNDetector`, a port of this pipeline on
the same networks exported to ONNX (:mod:`facever.training.export_mtcnn`); this class stays as the
reference its parity tests compare against.
"""

from __future__ import annotations

import os
import numpy as np

from facever.detection import MTCNNBase


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


class TFMTCNNDetector(MTCNNBase):
    """MTCNN (Zhang et al. 2016) from the ``mtcnn`` package, on TensorFlow (see :class:`MTCNNBase`
    for the arguments); the reference the onnxruntime port is tested against."""

    def __init__(self, min_face_size: int = 20, max_side: int = 640, min_score: float = 0.9) -> None:
        super().__init__(min_face_size, max_side, min_score)
        self._mtcnn = None

    def _model(self):
        if self._mtcnn is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from mtcnn import MTCNN

            self._mtcnn = MTCNN(device="CPU:0")
            _compile_stages(self._mtcnn)
        return self._mtcnn

    def _detect_rows(self, images: list[np.ndarray]) -> np.ndarray:
        return np.asarray(self._model().detect_faces(images, output_type="numpy", box_format="xyxy",
                                                     min_face_size=self.NATIVE_MIN_FACE), np.float64)
