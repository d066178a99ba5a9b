"""MTCNN face detection on onnxruntime, without TensorFlow.

:class:`OnnxMTCNNDetector` runs the three MTCNN networks of the ``mtcnn`` 1.0.0 package, exported to
ONNX by :mod:`facever.training.export_mtcnn` (``models/mtcnn/{pnet,rnet,onet}.onnx``), with the
package's pre- and post-processing ported to NumPy: the same image pyramid, the same
``tf.image.resize`` (area) and ``tf.image.crop_and_resize`` (bilinear) arithmetic in float32, the same
box generation, NMS variants (which suppress a box overlapping *any* earlier box, kept or not), box
refinement, squaring and clipping. It has the constructor arguments, conventions and output of
:class:`facever.detection.MTCNNDetector` (xyxy boxes, landmarks left eye, right eye, nose, left mouth
corner, right mouth corner, faces sorted by score). The resize and crop ports are bit-identical to
TensorFlow's CPU kernels, so the only differences come from the convolutions (onnxruntime vs
TensorFlow round-off, ~1e-7 on the network outputs): boxes and landmarks agree to ~1e-4 px and scores
to ~1e-7 on the images checked (a score or overlap lying exactly on a threshold could still flip).

This module imports only NumPy, OpenCV, onnxruntime (when the first image is detected) and the
standard library: never TensorFlow, keras or ``mtcnn``.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from importlib import resources
from os import PathLike, fspath
from pathlib import Path

import numpy as np

from facever.detection import Detector, MTCNNBase
from facever.errors import ModelError
from facever.runtime import onnx_session

# Defaults of the mtcnn 1.0.0 stages (StagePNet, StageRNet, StageONet), which MTCNNDetector uses.
_MIN_SIZE = 12  # PNet window
_SCALE_FACTOR = 0.709
_THRESHOLD_PNET = 0.6
_NMS_PNET1 = 0.5  # per pyramid scale, "union"
_NMS_PNET2 = 0.7  # across scales, "union"
_THRESHOLD_RNET = 0.7
_NMS_RNET = 0.7  # "union"
_THRESHOLD_ONET = 0.8
_NMS_ONET = 0.7  # "min"

#: Graph file, input name and output names of each stage (see facever.training.export_mtcnn).
_GRAPHS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pnet": ("pnet.onnx", ("bbox_reg", "prob")),
    "rnet": ("rnet.onnx", ("bbox_reg", "prob")),
    "onet": ("onet.onnx", ("bbox_reg", "landmarks", "prob")),
}
_INPUT_NAME = "image"


def default_model_dir():
    """The ``mtcnn`` folder of the installed ``facever_models`` package (the repo's ``models/``)."""
    return resources.files("facever_models") / "mtcnn"


# ---- pre-processing: tf.image.resize(AREA) and tf.image.crop_and_resize, in float32 -------------
@lru_cache(maxsize=256)
def _area_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.float32]:
    """Source indices ``(out, K)``, float32 weights ``(out, K)`` and the scale of TF's ResizeArea.

    The weights are the overlaps TensorFlow computes in float32 (``in_y = y * scale`` etc.); the
    round-off there (~1e-5 at large coordinates) is what makes ``cv2.INTER_AREA`` differ from TF.
    Unused taps have weight 0 (adding ``0`` leaves a float32 sum unchanged) and a clamped index.
    """
    f32 = np.float32
    s = f32(in_size) / f32(out_size)
    o = np.arange(out_size, dtype=np.float32)
    in0 = o * s
    in1 = (o + f32(1)) * s
    start = np.floor(in0).astype(np.int64)
    end = np.ceil(in1).astype(np.int64)
    k = int((end - start).max())
    i = start[:, None] + np.arange(k)[None, :]
    fi = i.astype(np.float32)
    fi1 = (i + 1).astype(np.float32)
    a0, a1 = in0[:, None], in1[:, None]
    w = np.where(fi < a0, np.where(fi1 > a1, s, fi1 - a0), np.where(fi1 > a1, a1 - fi, f32(1)))
    w = np.where(i < end[:, None], w, f32(0)).astype(np.float32)
    idx = np.clip(i, 0, in_size - 1)
    idx.flags.writeable = False
    w.flags.writeable = False
    return idx, w, s


def _resize_area(images_t: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``tf.image.resize(images, (out_h, out_w), AREA)`` for float32 images given TRANSPOSED,
    ``images_t`` = ``(B, W, H, C)`` (contiguous, so that gathering columns copies whole rows);
    returns ``(B, out_h, out_w, C)``.

    Same taps, weights and float32 summation order as TensorFlow's CPU kernel (each source row of a
    patch is summed along x first, then the rows are weighted along y, then the sum is multiplied by
    ``1 / (sy * sx)``), hence bit-identical results.
    """
    _, w, h, _ = images_t.shape
    iy, wy, sy = _area_taps(h, out_h)
    ix, wx, sx = _area_taps(w, out_w)
    scale = np.float32(1.0 / float(np.float32(sy * sx)))
    rows = np.take(images_t, ix[:, 0], axis=1) * wx[None, :, 0, None, None]  # (B, out_w, H, C)
    for k in range(1, ix.shape[1]):
        rows += np.take(images_t, ix[:, k], axis=1) * wx[None, :, k, None, None]
    rows = np.ascontiguousarray(rows.transpose(0, 2, 1, 3))  # (B, H, out_w, C)
    out = np.take(rows, iy[:, 0], axis=1) * wy[None, :, 0, None, None]
    for k in range(1, iy.shape[1]):
        out += np.take(rows, iy[:, k], axis=1) * wy[None, :, k, None, None]
    out *= scale
    return out


def _crop_and_resize(images: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """``mtcnn.utils.images.extract_patches``: ``tf.image.crop_and_resize`` (bilinear, 0 outside).

    Args:
        images: float32 ``(B, H, W, 3)``.
        boxes: ``(N, ≥5)`` rows ``[image_index, x1, y1, x2, y2, ...]`` in pixels.
        size: output side.
    """
    f32 = np.float32
    _, h, w, _ = images.shape
    # mtcnn divides by the image size, TF multiplies by (size - 1): keep both, in the same dtypes.
    coords = (boxes[:, [2, 1, 4, 3]] / np.asarray([[h, w, h, w]])).astype(np.float32)
    y1, x1, y2, x2 = (coords[:, j : j + 1] for j in range(4))
    hm1, wm1, sm1 = f32(h - 1), f32(w - 1), f32(size - 1)
    height_scale = (y2 - y1) * hm1 / sm1
    width_scale = (x2 - x1) * wm1 / sm1
    steps = np.arange(size, dtype=np.float32)[None, :]
    in_y = y1 * hm1 + steps * height_scale  # (N, size)
    in_x = x1 * wm1 + steps * width_scale
    valid_y = ~((in_y < 0) | (in_y > hm1))
    valid_x = ~((in_x < 0) | (in_x > wm1))
    safe_y = np.where(valid_y, in_y, f32(0))
    safe_x = np.where(valid_x, in_x, f32(0))
    top = np.floor(safe_y).astype(np.int64)
    bottom = np.ceil(safe_y).astype(np.int64)
    left = np.floor(safe_x).astype(np.int64)
    right = np.ceil(safe_x).astype(np.int64)
    y_lerp = (safe_y - top.astype(np.float32))[:, :, None, None]
    x_lerp = (safe_x - left.astype(np.float32))[:, None, :, None]
    flat = images.reshape(-1, images.shape[3])
    b = boxes[:, 0].astype(np.int64)[:, None] * h
    top, bottom = ((b + top) * w)[:, :, None], ((b + bottom) * w)[:, :, None]
    left, right = left[:, None, :], right[:, None, :]
    top_left = np.take(flat, top + left, axis=0)
    top_right = np.take(flat, top + right, axis=0)
    bottom_left = np.take(flat, bottom + left, axis=0)
    bottom_right = np.take(flat, bottom + right, axis=0)
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    crops = upper + (lower - upper) * y_lerp
    mask = (valid_y[:, :, None] & valid_x[:, None, :])[..., None]
    return np.ascontiguousarray(np.where(mask, crops, f32(0)), dtype=np.float32)


# ---- post-processing: mtcnn.utils.bboxes, row layout [image, x1, y1, x2, y2, score, lm...] -----
def _scale_pyramid(height: int, width: int, min_face_size: int) -> np.ndarray:
    """``mtcnn.utils.images.build_scale_pyramid`` (with its rounding of the scale count)."""
    min_dim = min(width, height)
    count = round(-((np.log(min_dim / _MIN_SIZE) / np.log(_SCALE_FACTOR)) + 1))
    return (_MIN_SIZE / min_face_size) * _SCALE_FACTOR ** np.arange(count)


def _sort_by_scores(rows: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Descending, with the same (unstable) ``np.argsort`` as the package, so ties land alike."""
    return rows[np.argsort(scores)[::-1]]


def _generate_bounding_box(reg: np.ndarray, prob: np.ndarray, threshold: float) -> np.ndarray:
    """PNet maps ``(B, h, w, 4)``, ``(B, h, w, 2)`` → rows ``[b, x1, y1, x2, y2, score]``.

    Each cell is a 12 px window at stride 2 in the scaled image: ``x1 = 2x + 1 + 11 dx1``,
    ``x2 = 2x + 12 + 11 dx2`` (the package's own convention), sorted by score.
    """
    score = prob[:, :, :, 1]
    idx = np.stack(np.where(score > threshold))  # (3, K): batch, y, x
    dx1, dy1, dx2, dy2 = np.transpose(reg[idx[0], idx[1], idx[2]], (1, 0))
    strides = np.asarray([[1], [2], [2]])
    up_left = idx * strides + np.asarray([[0], [1], [1]])
    bottom_right = idx * strides + np.asarray([[0], [12], [12]])
    reg_w = bottom_right[2] - up_left[2]
    reg_h = bottom_right[1] - up_left[1]
    rows = np.stack([
        idx[0],
        up_left[2] + dx1 * reg_w,
        up_left[1] + dy1 * reg_h,
        bottom_right[2] + dx2 * reg_w,
        bottom_right[1] + dy2 * reg_h,
        score[idx[0], idx[1], idx[2]],
    ], axis=0).T
    return _sort_by_scores(rows, rows[:, -1])


def _iou(boxes: np.ndarray, method: str) -> np.ndarray:
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    a, b = boxes[None, :, :], boxes[:, None, :]
    inter = (np.maximum(0, np.minimum(a[:, :, 2], b[:, :, 2]) - np.maximum(a[:, :, 0], b[:, :, 0]))
             * np.maximum(0, np.minimum(a[:, :, 3], b[:, :, 3]) - np.maximum(a[:, :, 1], b[:, :, 1])))
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "union":
            return inter / (area[:, None] + area[None, :] - inter)
        return inter / np.minimum(area[:, None], area[None, :])


def _nms(rows: np.ndarray, threshold: float, method: str, initial_sort: bool) -> np.ndarray:
    """``mtcnn.utils.bboxes.smart_nms_from_bboxes``: per image, drop every box whose overlap with
    *any* earlier box (in score order, suppressed or not) exceeds ``threshold``."""
    if initial_sort:
        rows = _sort_by_scores(rows, rows[:, 5])
    kept = []
    for image_id in sorted(set(rows[:, 0].tolist())):  # np.unique would import numpy.ma (~20 ms cold)
        sub = rows[rows[:, 0] == image_id]
        overlap = _iou(sub[:, 1:5], method) > threshold
        suppressed = np.triu(overlap, k=1).any(axis=0)
        kept.append(sub[~suppressed])
    return np.concatenate(kept, axis=0) if kept else np.empty((0, 6))


def _square(rows: np.ndarray) -> np.ndarray:
    """``resize_to_square``: grow the shorter side about the centre."""
    rows = rows.copy()
    h = rows[:, 4] - rows[:, 2]
    w = rows[:, 3] - rows[:, 1]
    side = np.maximum(w, h)
    rows[:, 1] = rows[:, 1] + w * 0.5 - side * 0.5
    rows[:, 2] = rows[:, 2] + h * 0.5 - side * 0.5
    rows[:, 3:5] = rows[:, 1:3] + np.tile(side, (2, 1)).T
    return rows


def _refine(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``adjust_bboxes``; the package multiplies the offsets by the sizes as float32 tensors."""
    rows = rows.copy()
    w = rows[:, 3] - rows[:, 1] + 1
    h = rows[:, 4] - rows[:, 2] + 1
    sizes = np.stack([w, h, w, h], axis=-1).astype(np.float32)
    rows[:, 1:5] += offsets.astype(np.float32) * sizes
    return rows


def _landmarks(points: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``adjust_landmarks``: ONet's relative x1..x5, y1..y5 → pixels (stored as float32)."""
    out = points.astype(np.float32).copy()
    w = rows[:, 3:4] - rows[:, 1:2] + 1
    h = rows[:, 4:5] - rows[:, 2:3] + 1
    out[:, 0:5] = w * out[:, 0:5] + rows[:, 1:2] - 1
    out[:, 5:10] = h * out[:, 5:10] + rows[:, 2:3] - 1
    return out


def _pick(rows: np.ndarray, threshold: float) -> np.ndarray:
    return rows[np.where(rows[:, 5] > threshold)[0]]


class OnnxMTCNNDetector(MTCNNBase):
    """MTCNN on onnxruntime (CPU), a drop-in for :class:`facever.detection.MTCNNDetector`.

    Args:
        min_face_size: smallest face searched for, in pixels of the input image (≥ 20); above 20
            the image is downscaled so that this size becomes MTCNN's native 20 px.
        max_side: images whose longer side exceeds this many pixels are downscaled before detection
            (coordinates are mapped back).
        min_score: faces below this ONet confidence are dropped.
        model_dir: folder (path or :mod:`importlib.resources` traversable) holding ``pnet.onnx``,
            ``rnet.onnx`` and ``onet.onnx``; default: ``mtcnn`` in the installed ``facever_models``.
        threads: onnxruntime intra-op threads per network (inter-op 1, sequential execution).

    The graphs are loaded on the first detection; a missing or unreadable graph raises
    :class:`~facever.errors.ModelError` naming the file. Nothing is ever printed.
    """

    def __init__(self, min_face_size: int = 20, max_side: int = 640, min_score: float = 0.9,
                 model_dir: str | PathLike | None = None, threads: int = 1) -> None:
        super().__init__(min_face_size, max_side, min_score)
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.model_dir = model_dir
        self.threads = threads
        self._sessions: dict | None = None
        self._lock = threading.Lock()

    # ---- model loading ---------------------------------------------------------------------
    def _graph_dir(self):
        if self.model_dir is None:
            return default_model_dir()
        return self.model_dir if hasattr(self.model_dir, "joinpath") else Path(fspath(self.model_dir))

    def _load(self) -> dict:
        if self._sessions is not None:
            return self._sessions
        with self._lock:
            if self._sessions is None:
                folder = self._graph_dir()
                sessions = {}
                for stage, (filename, outputs) in _GRAPHS.items():
                    path = folder.joinpath(filename)
                    session = onnx_session(path, self.threads)
                    inputs = [i.name for i in session.get_inputs()]
                    names = {o.name for o in session.get_outputs()}
                    if inputs != [_INPUT_NAME] or not set(outputs) <= names:
                        raise ModelError(f"MTCNN graph {path} has inputs {inputs} and outputs "
                                         f"{sorted(names)}, expected [{_INPUT_NAME!r}] and {list(outputs)}")
                    sessions[stage] = (session, list(outputs))
                self._sessions = sessions
        return self._sessions

    def _run(self, stage: str, batch: np.ndarray) -> list[np.ndarray]:
        session, outputs = self._load()[stage]
        return session.run(outputs, {_INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})

    # ---- detection ---------------------------------------------------------------------------
    def _detect_rows(self, images: list[np.ndarray]) -> np.ndarray:
        return self._cascade(np.stack(images))

    def _cascade(self, batch: np.ndarray) -> np.ndarray:
        """PNet → RNet → ONet on same-shape images ``(B, H, W, 3)``; rows ``(n, 16)`` as the package
        returns them (``[image, x1, y1, x2, y2, score, x×5, y×5]``, clipped to the image)."""
        empty = np.empty((0, 16))
        _, h, w, _ = batch.shape
        images = ((batch - 127.5) / 128).astype(np.float32)  # the package normalises in float64
        images_t = np.ascontiguousarray(images.transpose(0, 2, 1, 3))

        # PNet over the pyramid
        per_scale = []
        for scale in _scale_pyramid(h, w, self.NATIVE_MIN_FACE):
            out_h, out_w = (np.asarray([h, w]) * scale).astype(np.int32)
            reg, prob = self._run("pnet", _resize_area(images_t, int(out_h), int(out_w)))
            rows = _generate_bounding_box(reg, prob, _THRESHOLD_PNET)
            rows[:, 1:5] = rows[:, 1:5] / scale
            per_scale.append(_nms(rows, _NMS_PNET1, "union", initial_sort=False))
        rows = np.concatenate(per_scale, axis=0) if per_scale else np.empty((0, 6))
        rows = _square(_nms(rows, _NMS_PNET2, "union", initial_sort=True))
        if len(rows) == 0:
            return empty

        # RNet (TF's crop_and_resize rejects non-finite boxes; the package then reports no face)
        if not np.isfinite(rows[:, 1:5]).all():
            return empty
        reg, prob = self._run("rnet", _crop_and_resize(images, rows, 24))
        rows[:, -1] = prob[:, -1]
        rows = _refine(rows, reg)
        rows = _pick(rows, _THRESHOLD_RNET)
        rows = _square(_nms(rows, _NMS_RNET, "union", initial_sort=True))
        if len(rows) == 0:
            return empty

        # ONet
        if not np.isfinite(rows[:, 1:5]).all():
            return empty
        reg, points, prob = self._run("onet", _crop_and_resize(images, rows, 48))
        points = _landmarks(points, rows)
        rows[:, -1] = prob[:, -1]
        rows = np.concatenate([_refine(rows, reg), points], axis=-1)
        rows = _nms(_pick(rows, _THRESHOLD_ONET), _NMS_ONET, "min", initial_sort=True)
        if len(rows) == 0:
            return empty

        # limit_bboxes(fit_to_image=True, limit_landmarks=False)
        rows[:, [1, 3]] = np.minimum(np.maximum(rows[:, [1, 3]], 0), w - 1)
        rows[:, [2, 4]] = np.minimum(np.maximum(rows[:, [2, 4]], 0), h - 1)
        return rows


#: The default MTCNN implementation (this one), under the name the rest of facever uses.
MTCNNDetector = OnnxMTCNNDetector

_default: OnnxMTCNNDetector | None = None
_default_lock = threading.Lock()


def default_detector() -> Detector:
    """The process-wide default detector: MTCNN on onnxruntime with the shipped graphs (loaded on
    the first image). The same object is returned on every call."""
    global _default
    with _default_lock:
        if _default is None:
            _default = OnnxMTCNNDetector()
        return _default
