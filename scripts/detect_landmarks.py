"""Detect the face of every image of a folder-per-person dataset once; cache its five landmarks.

The landmarks (not crops) are cached so that any alignment template can be applied later without
detecting again. When an image holds several faces, the one nearest the image centre is kept (these
datasets are photos of one person, and it is LFW's convention). When none is found, the detection is
retried once on the image padded on each side (:func:`facever.embedding.detect_padded`, as at
inference: tight crops such as ``bollywood`` leave the detector no context).

Writes ``OUT.npz`` with ``names`` (relative paths, sorted), ``landmarks`` ``(N, 5, 2)`` float32 pixels,
``boxes`` ``(N, 4)`` ``(x1, y1, x2, y2)``, ``scores`` ``(N,)``, ``n_faces`` ``(N,)``, ``found`` ``(N,)``
bool, ``padded`` ``(N,)`` bool (found only after padding). Rows with ``found`` False are NaN.

Usage: python scripts/detect_landmarks.py IMAGE_ROOT OUT.npz
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from facever.detection import central_face
from facever.mtcnn_onnx import MTCNNDetector  # MTCNN on onnxruntime
from facever.embedding import detect_padded
from facever.imaging import load_image

EXTENSIONS = {".jpg", ".jpeg", ".png", ".pgm", ".bmp"}


def main(root: str, out: str, batch: int = 32) -> None:
    root = Path(root)
    names = sorted(str(p.relative_to(root)) for p in root.glob("*/*") if p.suffix.lower() in EXTENSIONS)
    n = len(names)
    lms = np.full((n, 5, 2), np.nan, np.float32)
    boxes = np.full((n, 4), np.nan, np.float32)
    scores = np.zeros(n, np.float32)
    n_faces = np.zeros(n, np.int32)
    found = np.zeros(n, bool)
    padded = np.zeros(n, bool)
    det = MTCNNDetector(min_face_size=20)
    t0 = time.time()
    for s in range(0, n, batch):
        chunk = list(range(s, min(s + batch, n)))
        images = [load_image(root / names[i]) for i in chunk]
        for i, im, faces in zip(chunk, images, det.detect_batch(images)):
            if not faces:  # tight crops: the inference pipeline's second pass on a padded copy
                faces = detect_padded(det, im)
                padded[i] = bool(faces)
            if faces:
                f = central_face(faces, im.shape)
                lms[i], boxes[i], scores[i], n_faces[i], found[i] = f.landmarks, f.box, f.score, len(faces), True
        if (s // batch) % 20 == 0:
            done = chunk[-1] + 1
            print(f"{done}/{n} {time.time() - t0:.0f}s found={found[:done].mean():.4f}", flush=True)
    np.savez(out, names=np.array(names), landmarks=lms, boxes=boxes, scores=scores, n_faces=n_faces,
             found=found, padded=padded)
    print(f"done {time.time() - t0:.0f}s found {found.sum()}/{n} ({found.mean():.4%}), after padding {padded.sum()}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
