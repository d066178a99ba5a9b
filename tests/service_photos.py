"""Real face photos that packages ship (public domain), as encoded bytes for upload tests.

* Eileen Collins: ``skimage.data.astronaut()`` (NASA); a mirrored copy serves as a second photo of her.
* Grace Hopper: matplotlib's ``grace_hopper.jpg`` sample (US Navy).
The shipped model puts the two women 0.52 apart (> τ): a real "different people" case.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """RGB uint8 ``(H, W, 3)`` → JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


@functools.lru_cache(maxsize=None)
def astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@functools.lru_cache(maxsize=None)
def hopper_rgb() -> np.ndarray:
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def astronaut() -> bytes:
    return jpeg(astronaut_rgb())


def astronaut_mirrored() -> bytes:
    return jpeg(astronaut_rgb()[:, ::-1])


def hopper() -> bytes:
    return jpeg(hopper_rgb())


def hopper_mirrored() -> bytes:
    return jpeg(hopper_rgb()[:, ::-1])


def blank() -> bytes:
    """A grey picture with no face."""
    return jpeg(np.full((200, 200, 3), 128, np.uint8))
