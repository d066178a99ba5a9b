"""Frames of a video file (OpenCV), evenly spaced, as RGB arrays for the liveness check."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facever.errors import ImageError

#: Frames whose longer side exceeds this many pixels are downscaled when read (the detector works at
#: ≤ 640 px anyway; this bounds memory on long high-resolution videos).
MAX_SIDE = 960
#: Most frames decoded from one file (about 5 minutes at 30 frames/s).
MAX_DECODED = 10_000


def read_video_frames(path: str | os.PathLike[str], max_frames: int = 48) -> list[np.ndarray]:
    """Up to ``max_frames`` evenly spaced frames of a video, in order.

    Args:
        path: a video file OpenCV's FFmpeg backend reads (MP4, AVI, MKV, WebM, MOV...).
        max_frames: most frames returned (≥ 2); longer videos are subsampled at a regular stride.
    Returns:
        ``(H, W, 3)`` uint8 RGB arrays, longer side at most :data:`MAX_SIDE` px.
    Raises:
        ImageError: missing file, unreadable video, or no frame decoded.
    """
    import cv2

    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2, got {max_frames}")
    p = Path(path)
    if not p.is_file():
        raise ImageError(f"{p}: no such video file")
    cap = cv2.VideoCapture(str(p))
    try:
        if not cap.isOpened():
            raise ImageError(f"{p}: not a video OpenCV can read")
        kept: list[np.ndarray] = []
        stride, n = 1, 0
        while n < MAX_DECODED:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if n % stride == 0:
                kept.append(_to_rgb(frame))
                if len(kept) >= 2 * max_frames:  # keep every other one and read half as often
                    kept, stride = kept[::2], stride * 2
            n += 1
    finally:
        cap.release()
    if not kept:
        raise ImageError(f"{p}: no frame could be decoded")
    if len(kept) > max_frames:
        idx = np.linspace(0, len(kept) - 1, max_frames).round().astype(int)
        kept = [kept[i] for i in idx]
    return kept


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    h, w = frame.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale < 1.0:
        frame = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
