"""MTCNN face detection on onnxruntime, without TensorFlow.

:class:`OnnxMTCNNDetector` runs the three MTCNN networks of the ``mtcnn`` 1.0.0 package, exported to
ONNX by :mod:`facever.training.export_mtcnn` (``models/mtcnn/{pnet,rnet,onet}.onnx``), with the
package's pre- and post-processing ported to NumPy: the same image pyramid, the same
``tf.image.resize`` (area) and ``tf.image.crop_and_resize`` (bilinear) arithmetic in float32, the same
box generation, NMS variants (which suppress a box overlapping *any* earlier box, kept or not), box
refinement, squaring and clipping. It has the constructor arguments, conventions and output of
:class:`facever.detection.MTCNNDetector` (xyxy boxes, landmarks left eye, right eye, nose, left mouth
corner, right mouth corner, faces sorted by score). The crop port is bit-identical to TensorFlow's
CPU kernel; the area resize has TF's taps and float32 weights but sums them in another order
(running sums, see :func:`_resize_area`), ~1e-7 from TF on the normalised pixels. With the
convolutions' round-off (onnxruntime vs TensorFlow, ~1e-7 on the network outputs), boxes and
landmarks agree with TF's to ~1e-3 px and scores to ~1e-6 on the images checked (a score or overlap
lying exactly on a threshold could still flip).

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

#: Up to this many boxes, an NMS over several groups (images, pyramid levels) is one masked overlap
#: matrix; above it, one matrix per group (the matrices grow with the square of the count).
_NMS_JOINT_MAX = 128


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


@lru_cache(maxsize=256)
def _area_rows(in_size: int, out_size: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_area_taps` as rows ``(out * K,)`` of :func:`_pyramid_source`'s table with float32
    weights ``(out, K)``. Up to 3 taps, the taps (rows ``offset + tap``); beyond, as every tap between
    an output's first and last has weight 1 (TF's formula), ``K = 4``: running sums ``hi`` and ``lo``
    (the interior ``[lo, hi)``) and the end taps ``offset + first``, ``offset + last`` (clamped like
    TF's) with weights ``(1, -1, w_first, w_last)``."""
    idx, w, _ = _area_taps(in_size, out_size)
    if idx.shape[1] <= 3:
        table_rows, weights = (offset + idx).ravel(), w.copy()
    else:
        count = np.count_nonzero(w, axis=1)  # the taps in [start, end): each has a weight > 0
        rows = np.arange(out_size)
        lo = idx[:, 0] + 1
        hi = np.maximum(idx[:, 0] + count - 1, lo)  # end - 1 ≤ in_size (the prefix has in_size + 1 rows)
        last = np.where(count > 1, w[rows, count - 1], np.float32(0))
        table_rows = np.stack([hi, lo, offset + idx[:, 0], offset + idx[rows, count - 1]], axis=1).ravel()
        ones = np.ones(out_size, np.float32)
        weights = np.stack([ones, -ones, w[:, 0], last], axis=1).astype(np.float32)
    table_rows.flags.writeable = False
    weights.flags.writeable = False
    return table_rows, weights


def _pyramid_source(image: np.ndarray) -> tuple[np.ndarray, int]:
    """An RGB image ``(H, W, 3)`` → the table ``(offset + W, H * 3)`` that :func:`_resize_area` reads,
    and ``offset``. Rows ``offset + j``: image column ``j``, normalised as the package does,
    ``(x - 127.5) / 128`` in float32; rows ``[0, W]``: their running sums (row ``i`` = sum of the columns
    ``< i``). For uint8 images (multiples of 1/256 in (-1, 1)) the running sums and their differences are
    exact in float32 (below 65536 columns); any other dtype gets a float64 table."""
    import cv2

    h, w, c = image.shape
    block = 16  # running sums within blocks of rows (vectorised over the blocks), then carried on
    offset = 1 + -(-w // block) * block
    exact = image.dtype == np.uint8
    table = np.empty((offset + w, h * c), np.float32 if exact else np.float64)
    columns = table[offset:]
    if exact:  # (x - 127.5) / 128 is exact in float32, as in the package's float64
        np.subtract(cv2.transpose(image).reshape(w, h * c), np.float32(127.5), out=columns, dtype=np.float32)
        columns *= np.float32(1 / 128)
    else:
        normalised = ((image - 127.5) / 128).astype(np.float32)
        columns[:] = normalised.transpose(1, 0, 2).reshape(w, h * c)
    table[0] = 0
    table[1 : w + 1] = columns
    table[w + 1 : offset] = 0
    blocks = table[1:offset].reshape(-1, block, h * c)
    for j in range(1, block):
        blocks[:, j] += blocks[:, j - 1]
    for i in range(block + 1, w + 1, block):
        table[i : i + block] += table[i - 1 : i]
    return table, offset


def _resize_area(table: np.ndarray, offset: int, out_h: int, out_w: int) -> np.ndarray:
    """``tf.image.resize(image, (out_h, out_w), AREA)`` of the float32 image ``(H, W, 3)`` that
    :func:`_pyramid_source` made ``table`` and ``offset`` of; returns ``(out_h, out_w, 3)`` float32.

    TensorFlow's taps and float32 weights (:func:`_area_taps`): along x, the weighted taps (with
    more than 3, the interior ones, of weight 1, as a difference of running sums); along y, the
    weighted taps with TF's final ``1 / (sy * sx)`` folded into the weights. Only the rounding
    order differs from TF's CPU kernel (~1e-7 on values in [-1, 1]).
    """
    import cv2

    w, n = table.shape[0] - offset, table.shape[1]
    h = n // 3
    rows_x, weights_x = _area_rows(w, out_w, offset)
    gathered = np.take(table, rows_x, axis=0).reshape(out_w, weights_x.shape[1], n)
    cols = np.einsum("ok,okn->on", weights_x, gathered).astype(np.float32, copy=False)
    rows = cv2.transpose(cols.reshape(out_w, h, 3)).reshape(h, out_w * 3)  # (H, out_w * 3)
    idx, weights_y, sy = _area_taps(h, out_h)
    weights_y = weights_y * np.float32(1.0 / float(np.float32(sy * _area_taps(w, out_w)[2])))
    gathered = np.take(rows, idx.ravel(), axis=0).reshape(out_h, idx.shape[1], out_w * 3)
    return np.einsum("ok,okn->on", weights_y, gathered).reshape(out_h, out_w, 3)


def _crop_and_resize(columns: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """``mtcnn.utils.images.extract_patches``: ``tf.image.crop_and_resize`` (bilinear, 0 outside).

    Args:
        columns: one float32 image TRANSPOSED, with a 4th channel (ignored): ``(W, H, 4)``. NumPy
            gathers 16-byte pixels ~3 times faster than 12-byte ones.
        boxes: ``(N, ≥5)`` rows ``[image_index, x1, y1, x2, y2, ...]`` in pixels of that image.
        size: output side.
    Returns:
        float32 ``(N, size, size, 3)``: TensorFlow's sampling points and lerps, in float32.
    """
    import cv2

    f32 = np.float32
    w, h, _ = columns.shape
    # mtcnn divides by the image size, TF multiplies by (size - 1): keep both, in the same dtypes.
    coords = (boxes[:, [2, 1, 4, 3]] / np.asarray([[h, w, h, w]])).astype(np.float32)
    y1, x1, y2, x2 = (coords[:, j : j + 1] for j in range(4))
    hm1, wm1, sm1 = f32(h - 1), f32(w - 1), f32(size - 1)
    steps = np.arange(size, dtype=np.float32)[None, :]
    in_y = y1 * hm1 + steps * ((y2 - y1) * hm1 / sm1)  # (N, size)
    in_x = x1 * wm1 + steps * ((x2 - x1) * wm1 / sm1)
    valid_y = (in_y >= 0) & (in_y <= hm1)
    valid_x = (in_x >= 0) & (in_x <= wm1)
    in_y = np.where(valid_y, in_y, f32(0))
    in_x = np.where(valid_x, in_x, f32(0))
    top, left = np.floor(in_y), np.floor(in_x)
    n = len(boxes)
    y_lerp = (in_y - top)[:, :, None]  # (N, size, 1)
    x_lerp = np.repeat(in_x - left, 4, axis=1)[:, None, :]  # (N, 1, size * 4): per pixel and channel
    rows = [r.astype(np.intp)[:, :, None] for r in (top, np.ceil(in_y))]  # pixel (y, x) is x * h + y
    cols = [(c.astype(np.intp) * h)[:, None, :] for c in (left, np.ceil(in_x))]
    idx = np.empty((4, n, size, size), np.intp)
    for k, (row, col) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        np.add(rows[row], cols[col], out=idx[k])
    px = np.take(columns.reshape(-1, 4), idx, axis=0).reshape(4, n, size, size * 4)
    edges = px[1::2] - px[0::2]  # TF: top = tl + (tr - tl) * x_lerp, bottom alike,
    edges *= x_lerp
    edges += px[0::2]
    upper, lower = edges  # then top + (bottom - top) * y_lerp
    lower -= upper
    lower *= y_lerp
    upper += lower
    crops = cv2.cvtColor(upper.reshape(n * size, size, 4), cv2.COLOR_RGBA2RGB).reshape(n, size, size, 3)
    if not valid_y.all():
        crops[~valid_y] = 0
    if not valid_x.all():
        crops.transpose(0, 2, 1, 3)[~valid_x] = 0
    return crops


def _extract_patches(columns: list[np.ndarray], boxes: np.ndarray, size: int) -> np.ndarray:
    """:func:`_crop_and_resize` of ``boxes`` over several images (``columns[b]`` for ``image_index`` b)."""
    if len(columns) == 1:
        return _crop_and_resize(columns[0], boxes, size)
    crops = np.empty((len(boxes), size, size, 3), np.float32)
    for b, image in enumerate(columns):
        mine = boxes[:, 0] == b
        if mine.any():
            crops[mine] = _crop_and_resize(image, boxes[mine], size)
    return crops


# ---- post-processing: mtcnn.utils.bboxes, row layout [image, x1, y1, x2, y2, score, lm...] -----
def _scale_pyramid(height: int, width: int, min_face_size: int) -> np.ndarray:
    """``mtcnn.utils.images.build_scale_pyramid`` (with its rounding of the scale count)."""
    min_dim = min(width, height)
    count = round(-((np.log(min_dim / _MIN_SIZE) / np.log(_SCALE_FACTOR)) + 1))
    return (_MIN_SIZE / min_face_size) * _SCALE_FACTOR ** np.arange(count)


def _generate_bounding_boxes(maps: list[tuple[np.ndarray, np.ndarray]], scales: np.ndarray,
                             threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """PNet maps per pyramid level, ``(B, h, w, 4)`` and ``(B, h, w, 2)``, → rows
    ``[b, x1, y1, x2, y2, score]`` in input pixels and their level indices.

    Each cell is a 12 px window at stride 2 in the scaled image: ``x1 = 2x + 1 + 11 dx1``,
    ``x2 = 2x + 12 + 11 dx2`` (the package's own convention, in float64), divided by the level's
    scale. The rows come level by level, each level sorted by score (the package's unstable sort
    of the float64 scores, so that ties land alike).
    """
    found = []  # per level with candidates: sort order, cells (batch, y, x), offsets, scores, level
    count = 0
    for level, (reg, prob) in enumerate(maps):
        score = prob[:, :, :, 1]
        where = np.nonzero(score > threshold)
        if len(where[0]):
            scores = score[where].astype(np.float64)
            found.append((count + np.argsort(scores)[::-1], np.stack(where, axis=1), reg[where], scores,
                          np.full(len(scores), level)))
            count += len(scores)
    if count == 0:
        return np.empty((0, 6)), np.empty(0, np.int64)
    order, cell, reg, score, level = (np.concatenate(parts) for parts in zip(*found))
    cell, level = cell[order], level[order]
    rows = np.empty((count, 6))
    rows[:, 0] = cell[:, 0]
    rows[:, 1:5] = reg[order]
    rows[:, 1:5] *= 11
    rows[:, 1:5] += cell[:, [2, 1, 2, 1]] * 2 + np.asarray([1, 1, 12, 12])
    rows[:, 1:5] /= np.asarray(scales)[level][:, None]
    rows[:, 5] = score[order]
    return rows, level


def _iou(boxes: np.ndarray, method: str) -> np.ndarray:
    """Pairwise overlaps ``(n, n)`` of xyxy boxes ``(n, 4)``: intersection over union or over the
    smaller area (the package's formulas, in float64)."""
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    inter = np.minimum.outer(x2, x2)
    inter -= np.maximum.outer(x1, x1)
    np.maximum(inter, 0, out=inter)
    height = np.minimum.outer(y2, y2)
    height -= np.maximum.outer(y1, y1)
    np.maximum(height, 0, out=height)
    inter *= height
    if method == "union":
        denominator = np.add.outer(area, area)
        denominator -= inter
    else:
        denominator = np.minimum.outer(area, area)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(inter, denominator, out=denominator)


@lru_cache(maxsize=64)
def _earlier(n: int) -> np.ndarray:
    """``(n, n)`` bool: ``[i, j]`` is True where box ``i`` comes before box ``j``."""
    mask = np.triu(np.ones((n, n), bool), k=1)
    mask.flags.writeable = False
    return mask


def _nms(rows: np.ndarray, threshold: float, method: str, initial_sort: bool,
         groups: np.ndarray | None = None) -> np.ndarray:
    """``mtcnn.utils.bboxes.smart_nms_from_bboxes``: per group (by default per image, else by the
    labels ``groups`` aligned with ``rows``), drop every box whose overlap with *any* earlier box of
    its group (in row order, suppressed or not) exceeds ``threshold``. The kept rows come grouped by
    ascending label, each group in row order (as the package's loop over images returns them)."""
    if len(rows) == 0:
        return np.empty((0, 6))
    if initial_sort:
        order = np.argsort(rows[:, 5])[::-1]  # the package's (unstable) sort, so ties land alike
        rows = rows[order]
        groups = None if groups is None else groups[order]
    labels = rows[:, 0] if groups is None else groups
    single = bool((labels == labels[0]).all())
    if single or len(rows) <= _NMS_JOINT_MAX:  # one overlap matrix, pairs across groups masked
        drop = _iou(rows[:, 1:5], method) > threshold
        if not single:
            drop &= labels[:, None] == labels[None, :]
        drop &= _earlier(len(rows))
        keep = ~drop.any(axis=0)
        return rows[keep] if single else rows[keep][np.argsort(labels[keep], kind="stable")]
    kept = []
    for label in sorted(set(labels.tolist())):  # np.unique would import numpy.ma (~20 ms cold)
        sub = rows[labels == label]
        drop = (_iou(sub[:, 1:5], method) > threshold) & _earlier(len(sub))
        kept.append(sub[~drop.any(axis=0)])
    return np.concatenate(kept, axis=0)


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
    PRUNES_PYRAMID = True

    def _detect_rows(self, images: list[np.ndarray], min_box: float | None = None) -> np.ndarray:
        return self._cascade(images, min_box)

    def _pnet(self, tables: list[tuple[np.ndarray, int]], h: int, w: int, min_box: float | None = None) -> np.ndarray:
        """PNet over the image pyramid of same-shape images ``(H, W)`` given as
        :func:`_pyramid_source` tables → candidate rows ``[image, x1, y1, x2, y2, score]``, squared.
        ``min_box``: only the levels whose 12 px window covers at least this many pixels."""
        scales = _scale_pyramid(h, w, self.NATIVE_MIN_FACE)
        if min_box is not None:
            scales = scales[_MIN_SIZE / scales >= min_box]
        sizes = [(np.asarray([h, w]) * scale).astype(np.int32) for scale in scales]
        # every level at once, while the tables are in the cache
        levels = [[_resize_area(*table, int(oh), int(ow)) for table in tables] for oh, ow in sizes]
        maps = [self._run("pnet", lv[0][None] if len(lv) == 1 else np.stack(lv)) for lv in levels]
        rows, level = _generate_bounding_boxes(maps, scales, _THRESHOLD_PNET)
        # NMS per pyramid level and image, then across levels
        rows = _nms(rows, _NMS_PNET1, "union", initial_sort=False, groups=level * len(tables) + rows[:, 0])
        return _square(_nms(rows, _NMS_PNET2, "union", initial_sort=True))

    def _cascade(self, images: list[np.ndarray], min_box: float | None = None) -> np.ndarray:
        """PNet → RNet → ONet on same-shape RGB images ``(H, W, 3)``; rows ``(n, 16)`` as the package
        returns them (``[image, x1, y1, x2, y2, score, x×5, y×5]``, clipped to the image)."""
        import cv2

        empty = np.empty((0, 16))
        h, w = images[0].shape[:2]
        tables = [_pyramid_source(image) for image in images]
        rows = self._pnet(tables, h, w, min_box)
        # RNet (TF's crop_and_resize rejects non-finite boxes; the package then reports no face)
        if len(rows) == 0 or not np.isfinite(rows[:, 1:5]).all():
            return empty
        # the images transposed, with 16-byte pixels for the crops
        columns = [cv2.cvtColor(t[o:].reshape(w, h, 3).astype(np.float32, copy=False), cv2.COLOR_RGB2RGBA)
                   for t, o in tables]
        reg, prob = self._run("rnet", _extract_patches(columns, rows, 24))
        rows[:, -1] = prob[:, -1]
        rows = _refine(rows, reg)
        rows = _pick(rows, _THRESHOLD_RNET)
        rows = _square(_nms(rows, _NMS_RNET, "union", initial_sort=True))

        # ONet
        if len(rows) == 0 or not np.isfinite(rows[:, 1:5]).all():
            return empty
        reg, points, prob = self._run("onet", _extract_patches(columns, rows, 48))
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
