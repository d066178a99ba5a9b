"""Five-point geometry of a head turn: yaw proxy, canonical nose, homography residual (NumPy only).

A photo is a plane: however it is tilted in front of a pinhole camera, the images of its points are
related by a homography. Four points fix a homography exactly, so the four *outer* landmarks (both
eyes, both mouth corners) of a frame determine the map from that frame to a fixed frontal template;
the fifth point, the nose tip, is then free. For a plane it lands on the same template position in
every frame (up to detector noise). For a live head the nose tip stands out of the plane of the eyes
and mouth corners, so when the head turns it moves sideways in the template frame: parallax.

Conventions: landmarks are ``(5, 2)`` arrays of ``(x, y)`` pixels ordered left eye, right eye, nose
tip, left mouth corner, right mouth corner (left = image left), as :mod:`facever.detection` gives
them. Lengths are in units of the inter-ocular distance (IOD): of the frame for the yaw proxy, of the
frontal template (a face seen from the front) for canonical positions.
"""

from __future__ import annotations

import numpy as np

from facever.alignment import TEMPLATE_DLIB_150

#: Indices of the outer landmarks (left eye, right eye, left mouth corner, right mouth corner).
OUTER = (0, 1, 3, 4)
#: Index of the nose tip.
NOSE = 2

#: The frontal template in IOD units: eye midpoint at the origin, eyes at x = ∓0.5, y down.
_T = TEMPLATE_DLIB_150.astype(np.float64)
_T_IOD = float(np.linalg.norm(_T[1] - _T[0]))
TEMPLATE = (_T - (_T[0] + _T[1]) / 2.0) / _T_IOD

#: Smallest area of the outer quadrilateral, in squared IOD of the frame, for a usable homography.
MIN_QUAD_AREA = 0.2


def _as_points(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (5, 2):
        raise ValueError(f"landmarks must be (5, 2) (x, y) pixels, got shape {lm.shape}")
    return lm


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the two eye landmarks, pixels."""
    lm = _as_points(landmarks)
    return float(np.linalg.norm(lm[1] - lm[0]))


def yaw_proxy(landmarks: np.ndarray) -> float:
    """Apparent yaw: offset of the nose tip from the eye midpoint along the eye axis, in frame IOD.

    0 for a frontal face; for a head turned by θ it grows like ~0.5·tan θ (≈ 0.29 at 30°).
    Positive when the nose moves towards the image right, which in an unmirrored camera image is
    the subject turning to *their* left. Independent of roll and scale. A tilted photo changes it
    only through perspective and detector noise (issue 21: ≤ 0.21 at p99).
    """
    lm = _as_points(landmarks)
    axis = lm[1] - lm[0]
    iod = float(np.linalg.norm(axis))
    if iod <= 1e-9:
        raise ValueError("degenerate landmarks: both eyes at one point")
    return float(np.dot(lm[2] - (lm[0] + lm[1]) / 2.0, axis / iod) / iod)


def quad_area(landmarks: np.ndarray) -> float:
    """Signed area of the outer quadrilateral (eyes, right mouth corner, left mouth corner), in
    squared frame IOD; positive for an upright, unmirrored face in image coordinates (y down)."""
    lm = _as_points(landmarks)
    quad = lm[[0, 1, 4, 3]]
    x, y = quad[:, 0], quad[:, 1]
    area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    iod = inter_ocular(lm)
    return area / max(iod * iod, 1e-12)


def outer_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The ``(3, 3)`` homography mapping the four outer points of ``src`` onto those of ``dst``.

    Args: two ``(5, 2)`` landmark arrays (or ``(4, 2)``/``(5, 2)`` point sets; only :data:`OUTER` is
    used from five points). Exact: four correspondences fix the eight degrees of freedom.
    Raises: ValueError when the points are degenerate (three collinear).
    """
    s = np.asarray(src, np.float64)
    d = np.asarray(dst, np.float64)
    s4 = s[list(OUTER)] if len(s) == 5 else s
    d4 = d[list(OUTER)] if len(d) == 5 else d
    ns, nd = _normaliser(s4), _normaliser(d4)
    s4, d4 = apply_homography(ns, s4), apply_homography(nd, d4)
    # h = [a b c; d e f; g h 1] on normalised points: two linear equations per correspondence (float64)
    a = np.zeros((8, 8))
    b = np.zeros(8)
    for k, ((x, y), (u, v)) in enumerate(zip(s4, d4)):
        a[2 * k] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        a[2 * k + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        b[2 * k], b[2 * k + 1] = u, v
    if not np.all(np.isfinite(a)) or np.linalg.cond(a) > 1e10:
        raise ValueError("degenerate outer landmarks: no homography")
    h = np.linalg.inv(nd) @ np.append(np.linalg.solve(a, b), 1.0).reshape(3, 3) @ ns
    if not np.all(np.isfinite(h)) or abs(h[2, 2]) < 1e-300:
        raise ValueError("degenerate outer landmarks: no homography")
    return h / h[2, 2]


def _normaliser(points: np.ndarray) -> np.ndarray:
    """Similarity moving ``points`` to their centroid and scaling them to a mean distance of √2
    (Hartley's normalisation: keeps the linear system well conditioned whatever the pixel scale)."""
    c = points.mean(0)
    scale = np.sqrt(2.0) / max(float(np.linalg.norm(points - c, axis=1).mean()), 1e-12)
    return np.array([[scale, 0, -scale * c[0]], [0, scale, -scale * c[1]], [0, 0, 1.0]])


def apply_homography(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points through a ``(3, 3)`` homography; returns ``(N, 2)`` float64."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ np.asarray(h, np.float64).T
    return q[:, :2] / q[:, 2:3]


def usable_geometry(landmarks: np.ndarray) -> bool:
    """Whether the outer quadrilateral is a proper, upright-or-rolled face shape (area at least
    :data:`MIN_QUAD_AREA` squared IOD, not mirrored, nose strictly inside the eye–mouth band)."""
    try:
        lm = _as_points(landmarks)
        if inter_ocular(lm) <= 1e-6 or quad_area(lm) < MIN_QUAD_AREA:
            return False
        c = canonical_nose(lm)
    except ValueError:
        return False
    return bool(np.all(np.isfinite(c)) and abs(c[0]) < 1.5 and 0.0 < c[1] + TEMPLATE[NOSE, 1] < TEMPLATE[3, 1])


def canonical_nose(landmarks: np.ndarray) -> np.ndarray:
    """Where the nose tip lands when the frame's outer points are mapped onto the frontal template.

    Returns ``(2,)``: the offset ``(dx, dy)`` from the template's own nose position, in template IOD
    units (x towards the image right, y down). Constant (≈ 0 for an average face) across every view
    of a flat photo; for a live head ``dx`` follows the turn, about d·tan θ with d ≈ 0.3–0.4 the
    depth of the nose tip in front of the eye–mouth plane, in IOD.
    """
    lm = _as_points(landmarks)
    h = outer_homography(lm, TEMPLATE)
    return apply_homography(h, lm[NOSE])[0] - TEMPLATE[NOSE]


def homography_residual(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """Issue 21's statistic: the nose of frame B predicted from frame A by the homography of the
    four outer points, error divided by the IOD of B (unsigned; ≈ 0 for two views of a plane)."""
    a, b = _as_points(landmarks_a), _as_points(landmarks_b)
    pred = apply_homography(outer_homography(a, b), a[NOSE])[0]
    return float(np.linalg.norm(pred - b[NOSE]) / max(inter_ocular(b), 1e-12))


def parallax(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> float:
    """Signed parallax from frame A to frame B: the change of the canonical nose ``dx``, in template
    IOD, with the sign of the yaw change (positive: the nose moved more than the plane of the eyes
    and mouth corners would, in the direction the head turned; a convex face gives > 0, a flat photo
    ≈ 0, a print bent the wrong way < 0)."""
    a, b = _as_points(landmarks_a), _as_points(landmarks_b)
    shift = float(canonical_nose(b)[0] - canonical_nose(a)[0])
    return shift if yaw_proxy(b) >= yaw_proxy(a) else -shift
