"""Real face photos that packages ship (public domain), as encoded bytes for upload tests.

* Eileen Collins: ``skimage.data.astronaut()`` (NASA); a mirrored copy serves as a second photo of her.
* Grace Hopper: matplotlib's ``grace_hopper.jpg`` sample (US Navy).
* A look-alike photo of Eileen Collins: the astronaut blurred and made noisy (seeded), far enough
  from the original to pass the strict duplicate gate, near enough to be named by identification.
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


@functools.lru_cache(maxsize=None)
def astronaut_degraded_rgb() -> np.ndarray:
    """Eileen Collins again, as a worse photo: blurred (σ 3 px), then Gaussian noise (σ 12, seed 0).

    The shipped model puts it ≈ 0.35 from the original: beyond the duplicate gate of a one-person
    gallery (≈ 0.29), within its identification threshold (≈ 0.43). Sharp enough (noise) to pass the
    enrolment quality bar."""
    noisy = cv2.GaussianBlur(astronaut_rgb(), (0, 0), 3) + np.random.default_rng(0).normal(0, 12, (512, 512, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def astronaut_degraded() -> bytes:
    return jpeg(astronaut_degraded_rgb())


def hopper() -> bytes:
    return jpeg(hopper_rgb())


def hopper_mirrored() -> bytes:
    return jpeg(hopper_rgb()[:, ::-1])


def blank() -> bytes:
    """A grey picture with no face."""
    return jpeg(np.full((200, 200, 3), 128, np.uint8))
