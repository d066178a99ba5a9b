"""The clips the web page's liveness tests play (tests/liveness_video.py), checked by the library first:
the rendered head turning is live in either challenge order, and the same photo turned flat is not.

This is what the browser tests rely on, without a browser: if the rendered head stopped passing (a
new calibration, another detector), this says so with the figures, before any page is involved.
"""

from __future__ import annotations

import numpy as np
import pytest

import liveness_video as video
from facever.liveness import LivenessThresholds, decide, observe_frames
from facever.liveness import geometry as geo

pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def verifier():
    from facever import FaceVerifier

    return FaceVerifier()


def page_frames(steps, kind: str) -> list[np.ndarray]:
    """What the page would send, thinned to 5 frames per second (the page takes 8) to keep this quick:
    from 0.2 s after the camera opens, for the page's 0.8 s lead, 2 s per step and 0.6 s tail."""
    frames = video.clip(steps, kind)
    end = round(10 * (0.2 + 0.8 + 2.0 * len(steps) + 0.6))
    return frames[2:end:2]


def test_the_relief_gives_parallax_and_the_flat_render_none():
    # The canonical nose (the nose mapped by the homography of the eyes and mouth corners onto a
    # frontal template) moves with a turning head, one way for each side; on the same photo turned
    # flat it stays put, up to MTCNN's noise. Medians over the angles a clip sweeps while it holds a turn.
    from facever.mtcnn_onnx import default_detector

    detector = default_detector()
    sweep = np.linspace(video.TURN_DEG - video.SWEEP_DEG, video.TURN_DEG + video.SWEEP_DEG, 7)

    def nose_dx(kind: str, yaws) -> float:
        found = [detector.detect(video.view(kind, float(y))) for y in yaws]
        return float(np.median([geo.canonical_nose(f[0].landmarks)[0] for f in found if f]))

    for kind, low, high in (("head", 0.2, 1.0), ("flat", -0.05, 0.05)):
        front = nose_dx(kind, [video.FRONT_DEG])
        left, right = nose_dx(kind, -sweep) - front, nose_dx(kind, sweep) - front  # subject's left: nose to image right
        assert low < left < high and low < -right < high, (kind, left, right)


@pytest.mark.parametrize("steps", [("left", "right"), ("right", "left")])
def test_rendered_head_is_live_in_either_order(verifier, steps):
    t = LivenessThresholds.from_metadata(verifier.bundle.metadata)
    tau = float(verifier.threshold)
    head = observe_frames(page_frames(steps, "head"), verifier, t)
    r = decide(head, list(steps), t, tau)
    assert r.live, (r.code, r.reason, r.checks)
    assert r.steps_seen == list(steps)
    # the same capture does not answer the other order (a replay of a recorded turn)
    assert decide(head, list(steps[::-1]), t, tau).code == "wrong_order"


@pytest.mark.parametrize("kind", ["flat", "print"])
def test_the_photo_turned_flat_is_not_live(verifier, kind):
    t = LivenessThresholds.from_metadata(verifier.bundle.metadata)
    steps = ["left", "right"]
    r = decide(observe_frames(page_frames(steps, kind), verifier, t), steps, t, float(verifier.threshold))
    assert not r.live and r.code in ("turns_not_seen", "no_parallax"), (r.code, r.checks)
