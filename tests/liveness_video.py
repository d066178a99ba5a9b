"""Webcam clips for the liveness tests of the web page: a live head turning, and a photo tilted.

There is no video of a real head here, so one is rendered: Eileen Collins' photo (scikit-image's
``astronaut``, public domain) is mapped onto a head-like relief and turned left and right in front of
a pinhole camera.

* :class:`HeadRelief`: the photo on a height field (an ellipsoid for the head, a ridge and a tip for
  the nose), placed with facever's own MTCNN landmarks; :meth:`HeadRelief.render` turns it about a
  vertical axis through the head and forward-projects every (supersampled) texel with a z-buffer.
  ``flat=True`` gives the same photo with no relief (a print turned as a rigid plane).
* :func:`tilted_print`: the photo as a flat print turned about its vertical axis with
  ``cv2.warpPerspective`` (the classic print attack).
* :func:`turn_yaws` / :func:`clip`: a clip's timeline (frontal, then each step's turn and return),
  frame by frame, for either challenge order; :func:`write_y4m_clip` writes what Chromium's fake
  camera plays (``--use-file-for-fake-video-capture``), and :class:`FakeCamera` swaps that file for a
  clip answering the challenge the server just issued.

Camera conventions follow ``benchmarks/liveness_render.py``: camera at the origin looking along +z,
x right, y down, pixels ``(x, y)``. Directions in a challenge are the subject's own: the subject
turning to *their* left moves the nose towards the image right of an unmirrored camera.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

import service_photos as photos

#: Frame size of the clips (pixels) and the part of the astronaut photo they show, scaled ×2.
WIDTH, HEIGHT = 640, 480
CROP = (63, 0, 383, 240)  # x0, y0, x1, y1 in the 512 × 512 photo: the face in the middle
#: Yaw of a turn, degrees: the head sweeps from TURN_DEG - SWEEP_DEG to TURN_DEG + SWEEP_DEG while it
#: holds the turn (a real head is never still; each frame gives MTCNN another chance). MTCNN's nose on
#: this face saturates near a yaw proxy of 0.3–0.4 whatever the relief, and is erratic beyond 30°.
TURN_DEG, SWEEP_DEG = 37.0, 6.0
#: Yaw that faces the camera: Eileen Collins looks a little to her left in the photo (yaw proxy ≈ 0.04);
#: a 3° turn back centres her (≈ 0.01), so both turns start from a frontal face.
FRONT_DEG = 3.0


def frame_photo() -> np.ndarray:
    """The astronaut photo cropped around the face and scaled to ``(HEIGHT, WIDTH, 3)`` uint8 RGB."""
    x0, y0, x1, y1 = CROP
    return cv2.resize(photos.astronaut_rgb()[y0:y1, x0:x1], (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)


@functools.lru_cache(maxsize=None)
def frame_landmarks() -> np.ndarray:
    """facever's MTCNN landmarks of :func:`frame_photo`: ``(5, 2)`` pixels (eyes, nose, mouth corners)."""
    from facever.mtcnn_onnx import default_detector

    faces = default_detector().detect(frame_photo())
    if not faces:
        raise RuntimeError("MTCNN found no face in the astronaut photo")
    face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return np.asarray(face.landmarks, np.float64)


@dataclass(frozen=True)
class Relief:
    """Shape of the head in units of the inter-ocular distance (IOD), measured from the landmarks.

    Attributes:
        half_width / half_height: semi-axes of the head ellipse in the image plane.
        depth: how far the ellipsoid's front stands out of the photo plane.
        nose: how far the nose tip stands out of the ellipsoid's surface.
        nose_width: Gaussian width (σ) of the nose ridge.
    """

    half_width: float = 1.3
    half_height: float = 1.75
    depth: float = 1.3
    nose: float = 0.4
    nose_width: float = 0.18


class HeadRelief:
    """The photo mapped onto a head-shaped height field, rendered turned by a pinhole camera.

    Args:
        texture: ``(H, W, 3)`` uint8 RGB, the photo as the camera sees it from the front.
        landmarks: ``(5, 2)`` pixel landmarks of the face in ``texture``.
        relief: the shape (:class:`Relief`); ``flat=True`` keeps the photo plane (no relief).
        distance_iod: camera distance in IOD (8 ≈ 50 cm for an adult).
        supersample: texels per pixel along each axis (2: no holes for turns up to ~45°).
    """

    def __init__(self, texture: np.ndarray, landmarks: np.ndarray, relief: Relief = Relief(), flat: bool = False,
                 distance_iod: float = 8.0, supersample: int = 2) -> None:
        self.h, self.w = texture.shape[:2]
        lm = np.asarray(landmarks, np.float64)
        iod = float(np.linalg.norm(lm[1] - lm[0]))
        eyes, mouth = (lm[0] + lm[1]) / 2, (lm[3] + lm[4]) / 2
        # the head ellipse: from ~1.2 IOD above the eyes to ~0.9 IOD below the mouth
        centre = np.array([(eyes[0] + mouth[0]) / 2, (eyes[1] - 1.2 * iod + mouth[1] + 0.9 * iod) / 2])
        pad = self.w // 4  # texels beyond the frame (edge replicated) so a turn exposes no void
        s = supersample
        tex = cv2.copyMakeBorder(texture, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        tex = cv2.resize(tex, (tex.shape[1] * s, tex.shape[0] * s), interpolation=cv2.INTER_LINEAR)
        v, u = np.mgrid[0:tex.shape[0], 0:tex.shape[1]].astype(np.float64)
        u, v = (u + 0.5) / s - 0.5 - pad, (v + 0.5) / s - 0.5 - pad  # frame pixel coordinates
        height = np.zeros_like(u) if flat else self._height(u, v, centre, eyes, lm[2], iod, relief)
        self.colours = tex.reshape(-1, 3)
        self.u, self.v, self.height = (a.ravel().astype(np.float32) for a in (u, v, height))
        self.axis_x = float(centre[0])
        self.distance = distance_iod * iod  # pixels; the focal length equals it (frontal scale 1:1)
        self.iod = iod

    @staticmethod
    def _height(u: np.ndarray, v: np.ndarray, centre: np.ndarray, eyes: np.ndarray, nose: np.ndarray, iod: float,
                r: Relief) -> np.ndarray:
        """Height above the photo plane, pixels: ellipsoid + nose ridge (eye line → tip) + tip."""
        q = ((u - centre[0]) / (r.half_width * iod)) ** 2 + ((v - centre[1]) / (r.half_height * iod)) ** 2
        head = r.depth * iod * np.sqrt(np.clip(1.0 - q, 0.0, None))
        # the ridge: distance to the segment from just below the eye line to the nose tip
        a = eyes + np.array([0.0, 0.15 * iod])
        ab = nose - a
        t = np.clip(((u - a[0]) * ab[0] + (v - a[1]) * ab[1]) / float(ab @ ab), 0.0, 1.0)
        d2 = (u - a[0] - t * ab[0]) ** 2 + (v - a[1] - t * ab[1]) ** 2
        sigma = r.nose_width * iod
        ridge = r.nose * iod * (0.35 + 0.65 * t) * np.exp(-d2 / (2 * sigma ** 2))
        tip = 0.25 * r.nose * iod * np.exp(-((u - nose[0]) ** 2 + (v - nose[1]) ** 2) / (2 * (1.6 * sigma) ** 2))
        return head + np.where(q < 1.0, ridge + tip, 0.0)

    def render(self, yaw_deg: float) -> np.ndarray:
        """The relief turned by ``yaw_deg`` about the vertical axis through the head, as the camera
        sees it: ``(H, W, 3)`` uint8 RGB. Positive yaw moves the nose towards the image *left*
        (the subject turning to their right, in an unmirrored camera)."""
        th = np.radians(yaw_deg)
        x = self.u - self.axis_x
        z = -self.height  # relative to the photo plane at depth `distance`; the relief is nearer the camera
        xr = x * np.cos(th) + z * np.sin(th)
        zr = self.distance - x * np.sin(th) + z * np.cos(th)
        f = self.distance
        cx, cy = self.w / 2.0, self.h / 2.0
        px = np.rint(cx + f * (xr + self.axis_x - cx) / zr).astype(np.int64)
        py = np.rint(cy + f * (self.v - cy) / zr).astype(np.int64)
        ok = (px >= 0) & (px < self.w) & (py >= 0) & (py < self.h)
        idx, depth, colours = (py * self.w + px)[ok], zr[ok], self.colours[ok]
        # z-buffer by writing order: the photo plane first (it never hides the relief, which stands on the
        # side of it that faces the camera), then the relief far to near, so the nearest texel is written last
        raised = self.height[ok] > 0
        order = np.concatenate([np.flatnonzero(~raised), np.flatnonzero(raised)[np.argsort(-depth[raised])]])
        out = np.zeros((self.h * self.w, 3), np.uint8)
        zbuf = np.full(self.h * self.w, np.inf, np.float32)
        out[idx[order]] = colours[order]
        zbuf[idx[order]] = depth[order]
        out, zbuf = out.reshape(self.h, self.w, 3), zbuf.reshape(self.h, self.w)
        # holes: no texel landed, or one from a surface behind showed through a gap in a nearer one
        # (its depth well beyond the nearest of its 3×3 neighbours): filled from around
        nearest = cv2.erode(np.where(np.isfinite(zbuf), zbuf, 1e9).astype(np.float32), np.ones((3, 3), np.uint8))
        holes = (~np.isfinite(zbuf) | (zbuf > nearest + 0.1 * self.iod)).astype(np.uint8)
        return cv2.inpaint(out, holes, 2, cv2.INPAINT_TELEA) if holes.any() else out


def tilted_print(yaw_deg: float, texture: np.ndarray | None = None) -> np.ndarray:
    """The photo as a flat print turned by ``yaw_deg`` about its vertical axis (``cv2.warpPerspective``
    of a pinhole view of a plane): ``(H, W, 3)`` uint8 RGB, edges replicated. Positive yaw brings the
    print's right edge nearer the camera."""
    tex = frame_photo() if texture is None else texture
    h, w = tex.shape[:2]
    f = 1.2 * w  # pinhole focal, pixels; the print at distance f fills the frame when frontal
    th = np.radians(yaw_deg)
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    x = corners[:, 0] - w / 2
    xr, zr = x * np.cos(th), f - x * np.sin(th)
    dst = np.stack([w / 2 + f * xr / zr, h / 2 + f * (corners[:, 1] - h / 2) / zr], axis=1).astype(np.float32)
    m = cv2.getPerspectiveTransform(corners, dst)
    return cv2.warpPerspective(tex, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def turn_yaws(steps: Sequence[str], fps: float = 10.0, lead_s: float = 1.6, ramp_s: float = 0.4,
              hold_s: float = 1.0, rest_s: float = 0.4, tail_s: float = 1.5) -> list[float]:
    """The head's yaw (degrees, :meth:`HeadRelief.render`'s sign) at each frame of a clip: frontal
    (:data:`FRONT_DEG`) for ``lead_s``, then per step a turn (ramp, hold while sweeping ±:data:`SWEEP_DEG`
    about :data:`TURN_DEG`, ramp back, rest), then frontal for ``tail_s``. ``steps`` are the subject's
    directions (``"left"``: nose to the image right, negative yaw)."""
    sign = {"left": -1.0, "right": 1.0}
    n_ramp, n_hold = round(ramp_s * fps), round(hold_s * fps)
    low, high = TURN_DEG - SWEEP_DEG, TURN_DEG + SWEEP_DEG
    ramp = [(1 - np.cos(np.pi * (i + 1) / (n_ramp + 1))) / 2 for i in range(n_ramp)]  # (0, 1), ends excluded
    seq = [FRONT_DEG] * round(lead_s * fps)
    for step in steps:
        s = sign[step]
        turn = [FRONT_DEG + r * (s * low - FRONT_DEG) for r in ramp]
        turn += [s * a for a in np.linspace(low, high, n_hold)]
        turn += [FRONT_DEG + r * (s * high - FRONT_DEG) for r in ramp[::-1]]
        seq += [round(float(y), 2) for y in turn] + [FRONT_DEG] * round(rest_s * fps)
    return seq + [FRONT_DEG] * round(tail_s * fps)


@functools.lru_cache(maxsize=2)
def _relief(flat: bool) -> HeadRelief:
    return HeadRelief(frame_photo(), frame_landmarks(), flat=flat)


@functools.lru_cache(maxsize=256)
def view(kind: str, yaw_deg: float) -> np.ndarray:
    """One frame: ``kind`` ``"head"`` (the relief turned by ``yaw_deg``), ``"flat"`` (the same renderer,
    no relief: a rigid print) or ``"print"`` (:func:`tilted_print`). ``(HEIGHT, WIDTH, 3)`` uint8 RGB;
    cached (read-only)."""
    if kind == "print":
        img = tilted_print(yaw_deg)
    elif kind in ("head", "flat"):
        img = _relief(kind == "flat").render(yaw_deg)
    else:
        raise ValueError(f"kind must be head, flat or print, not {kind!r}")
    img.setflags(write=False)
    return img


def clip(steps: Sequence[str], kind: str = "head", fps: float = 10.0) -> list[np.ndarray]:
    """Frames of a clip answering ``steps`` (:func:`turn_yaws`), each a :func:`view` of ``kind``; a
    print cannot turn for the subject, it is turned about its vertical axis by the same yaws."""
    return [view(kind, y) for y in turn_yaws(steps, fps)]


def write_y4m_clip(path: Path, frames: Sequence[np.ndarray], fps: int = 10) -> None:
    """Write RGB uint8 frames ``(H, W, 3)`` (H, W even, all the same size) as a 4:2:0 YUV4MPEG2 clip,
    what Chromium's fake camera plays (it loops the clip)."""
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs an even width and height, not {w}×{h}")
    tmp = Path(path).with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420).tobytes())
    tmp.replace(path)  # atomic: a camera opening the file meanwhile reads the old clip or the new one


class FakeCamera:
    """The file Chromium's fake camera plays (``path``: pass it to ``--use-file-for-fake-video-capture``),
    and clips written on demand for any ``(kind, steps)`` into ``folder``.

    Chromium opens the file when a page opens the camera, and plays it from its first frame: swapping
    the file between two openings changes what the next one sees.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "camera.y4m"
        self.clips: dict[tuple[str, tuple[str, ...]], Path] = {}
        self.served: list[tuple[str, list[str]]] = []
        self.play("head", ("left", "right"))  # Chromium wants a file at launch

    def clip(self, kind: str, steps: Sequence[str]) -> Path:
        """The .y4m of :func:`clip` (written once)."""
        key = (kind, tuple(steps))
        if key not in self.clips:
            path = self.folder / f"{kind}-{'-'.join(steps)}.y4m"
            write_y4m_clip(path, clip(steps, kind))
            self.clips[key] = path
        return self.clips[key]

    def play(self, kind: str, steps: Sequence[str]) -> None:
        """Make the camera play ``kind`` answering ``steps`` the next time it is opened."""
        link = self.path.with_suffix(".swap")
        link.unlink(missing_ok=True)
        link.symlink_to(self.clip(kind, steps))
        link.replace(self.path)

    def answer_with(self, kind: str) -> Callable[[Any], None]:
        """A Playwright route handler for ``POST /v1/liveness/challenge``: fetch the challenge from the
        server, play a clip answering its steps, then hand the server's answer to the page unchanged."""
        def handler(route: Any) -> None:
            response = route.fetch()
            steps = response.json()["steps"]
            self.play(kind, steps)
            self.served.append((kind, steps))
            route.fulfill(response=response)
        return handler
