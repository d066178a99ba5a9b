"""Detect and align every LFW image once with facever's pipeline; cache crops + landmarks.

Writes ``OUT.npz`` with: names (relative paths), crops (N,112,112,3 uint8), landmarks (N,5,2),
boxes (N,4), scores (N,), n_faces (N,), detected (N, bool; False = fell back to the annotation
landmarks for the crop). Usage: python scripts/detect_lfw.py LFW_ROOT OUT.npz
"""
import sys, time
from pathlib import Path

import cv2
import numpy as np

from facever.alignment import align_face
from facever.mtcnn_onnx import MTCNNDetector  # MTCNN on onnxruntime


def main(root: str, out: str, batch: int = 32) -> None:
    root = Path(root)
    ann = {}
    for line in open(root / "annotations" / "lfw_landmark_5pt_original250.txt"):
        parts = line.split()
        ann[parts[0]] = np.array(parts[1:11], dtype=np.float32).reshape(5, 2)
    names = sorted(ann)
    det = MTCNNDetector(min_face_size=20)
    n = len(names)
    crops = np.zeros((n, 112, 112, 3), np.uint8)
    lms = np.zeros((n, 5, 2), np.float32); boxes = np.zeros((n, 4), np.float32)
    scores = np.zeros(n, np.float32); nf = np.zeros(n, np.int32); detected = np.zeros(n, bool)
    t0 = time.time()
    for s in range(0, n, batch):
        chunk = names[s:s + batch]
        imgs = [cv2.cvtColor(cv2.imread(str(root / "lfw-deepfunneled" / p)), cv2.COLOR_BGR2RGB) for p in chunk]
        res = det.detect_batch(imgs)
        for j, (p, im, faces) in enumerate(zip(chunk, imgs, res)):
            i = s + j
            nf[i] = len(faces)
            if faces:
                c = np.array([im.shape[1] / 2, im.shape[0] / 2])
                f = min(faces, key=lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - c[0], (f.box[1] + f.box[3]) / 2 - c[1]))
                lms[i] = f.landmarks; boxes[i] = f.box; scores[i] = f.score; detected[i] = True
            else:
                lms[i] = ann[p]
            crops[i] = align_face(im, lms[i], 112)
        if s % (batch * 20) == 0:
            print(f"{s + len(chunk)}/{n} {time.time() - t0:.0f}s found={detected[:s + len(chunk)].mean():.4f}", flush=True)
    np.savez(out, names=np.array(names), crops=crops, landmarks=lms, boxes=boxes, scores=scores,
             n_faces=nf, detected=detected, annotations=np.stack([ann[p] for p in names]))
    print("done", time.time() - t0, "found", detected.mean(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
