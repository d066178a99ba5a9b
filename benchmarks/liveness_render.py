"""Presentation attacks rendered from real photos for ``benchmarks/liveness.py``: a photo printed flat,
printed and bent (mapped onto a cylinder), or shown on a screen, posed in 3D in front of a pinhole
camera, then put through the camera's blur, noise and JPEG compression.

Every frame is ray-cast: for each camera pixel the ray from the pinhole is intersected with the
print's surface (a plane, or a cylinder about the print's vertical axis) and the photo is sampled
where it hits (``cv2.remap``), so perspective, bending and foreshortening are exact.

Coordinates: camera at the origin looking along +z, x right, y down. The print's own frame has x
along its width (−W/2..W/2, W = 1), y along its height, z away from the camera; it is rotated by
yaw (about y), pitch (about x) and roll (about z), then moved to distance ``distance`` along z.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Pose:
    """Pose of the print: angles in degrees, offset of its centre in print widths, distance in print widths."""

    yaw: float
    pitch: float
    roll: float
    dx: float = 0.0
    dy: float = 0.0


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: square image of ``size`` px, horizontal field of view ``fov`` degrees; the
    print, seen frontally, spans ``fill`` of the image width."""

    size: int = 360
    fov: float = 60.0
    fill: float = 0.7

    @property
    def focal(self) -> float:
        return (self.size / 2.0) / np.tan(np.radians(self.fov) / 2.0)

    @property
    def distance(self) -> float:
        """Distance of the print (print widths) that makes it span ``fill`` of the image."""
        return self.focal / (self.fill * self.size)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``(3, 3)`` rotation: yaw about y, then pitch about x, then roll about z (degrees)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def _surface_hits(o: np.ndarray, d: np.ndarray, bend: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where rays ``o + t d`` (print frame, ``(N, 3)``) hit the print: ``(u, v, valid)`` in print
    units along the surface. ``bend`` = half-width angle of the cylinder in degrees (0: flat; > 0:
    convex, the middle nearer the camera; < 0: concave)."""
    if abs(bend) < 1e-6:
        t = -o[:, 2] / np.where(np.abs(d[:, 2]) < 1e-12, 1e-12, d[:, 2])
        hit = o + t[:, None] * d
        return hit[:, 0], hit[:, 1], t > 0
    radius = 0.5 / np.radians(abs(bend))
    zc = radius if bend > 0 else -radius  # circle centre in the x-z plane
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (o[:, 0] * d[:, 0] + (o[:, 2] - zc) * d[:, 2])
    c = o[:, 0] ** 2 + (o[:, 2] - zc) ** 2 - radius ** 2
    disc = b * b - 4 * a * c
    root = np.sqrt(np.maximum(disc, 0.0))
    # convex: the near side of the circle; concave: its far side
    t = (-b - root) / (2 * a) if bend > 0 else (-b + root) / (2 * a)
    hit = o + t[:, None] * d
    phi = np.arctan2(hit[:, 0], zc - hit[:, 2]) if bend > 0 else np.arctan2(hit[:, 0], hit[:, 2] - zc)
    return radius * phi, hit[:, 1], (disc >= 0) & (t > 0)


def render(texture: np.ndarray, pose: Pose, camera: Camera, background: np.ndarray, bend: float = 0.0) -> np.ndarray:
    """The camera's view of ``texture`` (``(h, w, 3)`` uint8, the printed or displayed picture,
    width 1 print unit) posed by ``pose`` over ``background`` (``(size, size, 3)`` uint8)."""
    h, w = texture.shape[:2]
    height = h / w
    n, f, dist = camera.size, camera.focal, camera.distance
    step = 4  # rays are cast on a 4× coarser grid and the (smooth) maps interpolated: same picture, 16× less work
    m = n // step + 1
    uu, vv = np.meshgrid(np.arange(m, dtype=np.float64) * step, np.arange(m, dtype=np.float64) * step)
    rays = np.stack([(uu.ravel() - n / 2) / f, (vv.ravel() - n / 2) / f, np.ones(m * m)], axis=1)
    rot = rotation(pose.yaw, pose.pitch, pose.roll)
    centre = np.array([pose.dx, pose.dy, dist])
    o = np.tile(rot.T @ (-centre), (m * m, 1))
    d = rays @ rot  # = (rot.T @ ray) for each row
    u, v, valid = _surface_hits(o, d, bend)
    valid &= (np.abs(u) <= 0.5) & (np.abs(v) <= height / 2)

    fine = np.arange(n, dtype=np.float32) / step
    gx, gy = np.meshgrid(fine, fine)

    def full(a: np.ndarray) -> np.ndarray:  # bilinear from the coarse grid (spacing step) to every pixel
        return cv2.remap(a.reshape(m, m).astype(np.float32), gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    map_x = ((full(u) + 0.5) * w - 0.5).astype(np.float32)
    map_y = ((full(v) / height + 0.5) * h - 0.5).astype(np.float32)
    mask = full(valid.astype(np.float32)) > 0.5
    warped = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    out = background.copy()
    out[mask] = warped[mask]
    return out


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plausible room behind the print: a smooth random colour field with some texture."""
    coarse = rng.integers(30, 230, (4, 4, 3)).astype(np.float32)
    img = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def print_texture(photo: np.ndarray, margin: float = 0.04) -> np.ndarray:
    """The photo as printed: a white margin of ``margin`` × its width around it, slightly washed out."""
    m = max(1, round(margin * photo.shape[1]))
    paper = photo.astype(np.float32) * 0.92 + 12.0
    return cv2.copyMakeBorder(np.clip(paper, 0, 255).astype(np.uint8), m, m, m, m, cv2.BORDER_CONSTANT,
                              value=(245, 245, 240))


def screen_texture(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo on a phone or monitor: resampled to the screen's pixels, drawn as RGB sub-pixel
    stripes (the camera aliases them into moiré), with a raised black level, a glare spot and a
    black bezel."""
    pixels = int(rng.integers(180, 420))  # screen pixels across the picture
    h, w = photo.shape[:2]
    shown = cv2.resize(photo, (pixels, max(1, round(pixels * h / w))), interpolation=cv2.INTER_AREA).astype(np.float32)
    shown = 255.0 * (shown / 255.0) ** rng.uniform(0.8, 1.2)
    shown = shown * rng.uniform(0.75, 0.95) + rng.uniform(10, 35)  # black level, contrast
    cells = np.repeat(np.repeat(shown, 3, axis=0), 3, axis=1)  # each screen pixel: 3×3 texels
    mask = np.full(cells.shape, rng.uniform(0.3, 0.5), np.float32)
    for c in range(3):
        mask[:, c::3, c] = 1.0  # column c of each pixel lights sub-pixel c
    tex = cells * mask / mask.mean(axis=(0, 1), keepdims=True)
    th, tw = tex.shape[:2]
    gy, gx = np.mgrid[0:th:4, 0:tw:4].astype(np.float32)  # the glare is smooth: computed at 1/4 resolution
    cx, cy = rng.uniform(0, tw), rng.uniform(0, th)
    sigma = rng.uniform(0.15, 0.4) * tw
    glare = rng.uniform(40, 140) * np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * sigma ** 2))
    glare = cv2.resize(glare, (tw, th), interpolation=cv2.INTER_LINEAR)
    tex = np.clip(tex + glare[..., None], 0, 255).astype(np.uint8)
    bezel = max(2, round(0.05 * tw))
    return cv2.copyMakeBorder(tex, bezel, bezel, bezel, bezel, cv2.BORDER_CONSTANT, value=(12, 12, 14))


def camera_effects(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Defocus blur, sensor noise and JPEG compression, as a webcam adds them."""
    img = frame.astype(np.float32)
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img += rng.normal(0, rng.uniform(1.0, 4.0), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(rng.integers(70, 96))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
