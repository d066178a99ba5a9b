"""Photos for the web page's browser tests and screenshots (beside service_photos.py).

* :func:`group_photo`: Eileen Collins, Grace Hopper and scikit-image's cameraman (a stranger) side
  by side, for identification with ``faces=all``.
* :func:`write_y4m`: a YUV4MPEG2 clip, what Chromium's fake camera plays
  (``--use-file-for-fake-video-capture``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

import service_photos as photos


def cameraman_rgb() -> np.ndarray:
    """scikit-image's cameraman (grey, public domain) as ``(512, 512, 3)`` uint8 RGB."""
    from skimage import data

    return np.repeat(data.camera()[:, :, None], 3, axis=2)


def group_photo(height: int = 512) -> np.ndarray:
    """Eileen Collins | Grace Hopper | the cameraman, each scaled to ``height`` px: ``(height, W, 3)`` RGB."""
    parts = []
    for rgb in (photos.astronaut_rgb(), photos.hopper_rgb(), cameraman_rgb()):
        width = round(rgb.shape[1] * height / rgb.shape[0])
        parts.append(cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA))
    return np.concatenate(parts, axis=1)


def write_y4m(path: Path, rgb: np.ndarray, frames: int = 3, fps: int = 25) -> None:
    """Write ``frames`` copies of ``rgb`` ``(H, W, 3)`` uint8 (H, W even) as a 4:2:0 YUV4MPEG2 clip."""
    h, w = rgb.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs an even width and height, not {w}×{h}")
    i420 = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + i420.tobytes())
