"""Detection figures on LFW: share of images with a face, landmark error, time per image.

Usage:
    python benchmarks/detection.py [--lfw ../shared/data/lfw] [--limit N] [--timing-only] [--min-face 20]

* Found share: images (of all 13,233, or the first N) where MTCNN finds a face.
* Landmark error: mean distance between facever's 5 points (the face nearest the image centre) and
  ``lfw/annotations`` (LFW's 5-point file), divided by the annotated inter-ocular distance; also the
  median and the share of images above 0.1.
* Time per image (detection + alignment), one image per call, at 250×250 and at 1000×750 (an LFW
  image upscaled and padded), and batched (32 images per call) at 250×250.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
import numpy as np

from facever.alignment import CANONICAL_SIZE, CANONICAL_TEMPLATE, align_face
from facever.mtcnn_onnx import MTCNNDetector  # MTCNN on onnxruntime
from facever.training.datasets import lfw_annotations


def _nearest_centre(faces, shape):
    c = np.array([shape[1] / 2, shape[0] / 2])
    return min(faces, key=lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - c[0], (f.box[1] + f.box[3]) / 2 - c[1]))


def accuracy(det: MTCNNDetector, lfw: Path, limit: int | None) -> dict:
    ann = lfw_annotations(lfw)
    names = sorted(ann)[:limit] if limit else sorted(ann)
    found, errors = 0, []
    for s in range(0, len(names), 32):
        chunk = names[s:s + 32]
        imgs = [cv2.cvtColor(cv2.imread(str(lfw / "lfw-deepfunneled" / n)), cv2.COLOR_BGR2RGB) for n in chunk]
        for n, img, faces in zip(chunk, imgs, det.detect_batch(imgs)):
            if not faces:
                continue
            found += 1
            lm, truth = _nearest_centre(faces, img.shape).landmarks, ann[n]
            iod = np.linalg.norm(truth[1] - truth[0])
            errors.append(float(np.linalg.norm(lm - truth, axis=1).mean() / iod))
    e = np.array(errors)
    return {"images": len(names), "found": found, "found_share": found / len(names),
            "nme_mean": float(e.mean()), "nme_median": float(np.median(e)), "share_nme_over_0.1": float((e > 0.1).mean())}


def _time(fn, repeats: int) -> list[float]:
    fn()  # warm-up (graph tracing)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def timing(det: MTCNNDetector, lfw: Path, repeats: int) -> dict:
    paths = sorted((lfw / "lfw-deepfunneled").glob("*/*.jpg"))[:32]
    imgs = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    small = imgs[0]
    big = cv2.resize(small, (750, 750))
    big = cv2.copyMakeBorder(big, 0, 0, 125, 125, cv2.BORDER_REPLICATE)  # 1000×750

    def one(img):
        faces = det.detect(img)
        if faces:
            align_face(img, faces[0].landmarks, CANONICAL_SIZE, CANONICAL_TEMPLATE)

    res = {}
    for label, img in (("250x250", small), ("1000x750", big)):
        ms = _time(lambda: one(img), repeats)
        res[f"single_{label}_ms"] = {"median": statistics.median(ms), "min": min(ms), "max": max(ms)}
    ms = _time(lambda: det.detect_batch(imgs), max(2, repeats // 5))
    res["batched_250x250_ms_per_image"] = {"median": statistics.median(ms) / len(imgs), "min": min(ms) / len(imgs)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=Path("../shared/data/lfw"))
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--min-face", type=int, default=20)
    ap.add_argument("--timing-only", action="store_true")
    args = ap.parse_args()
    det = MTCNNDetector(min_face_size=args.min_face)
    print(f"detector: MTCNN (mtcnn 1.0.0), min_face_size={args.min_face}, max_side={det.max_side}")
    for k, v in timing(det, args.lfw, args.repeats).items():
        print(f"{k:<32} " + "  ".join(f"{a}={b:.1f}" for a, b in v.items()))
    if not args.timing_only:
        r = accuracy(det, args.lfw, args.limit)
        print(f"found a face in {r['found']}/{r['images']} LFW images ({r['found_share']:.2%})")
        print(f"landmark error / inter-ocular distance: mean {r['nme_mean']:.4f}, median {r['nme_median']:.4f}, "
              f"share > 0.1: {r['share_nme_over_0.1']:.2%}")


if __name__ == "__main__":
    main()
