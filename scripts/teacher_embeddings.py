"""Teacher embeddings for distillation: dlib's ResNet (face_recognition_models) on LFW images.

Runs in a separate environment that has ``face_recognition`` (never a runtime dependency of
facever). The face box handed to dlib comes from LFW's 5-point annotations (centre of the points,
side 2.7 × inter-ocular distance), so no DevTest data and no detector run is involved.

Usage: python scripts/teacher_embeddings.py LFW_ROOT PEOPLE_FILE OUT.npz [WORKERS]
Writes names (relative image paths) and emb (N, 128) float32 (dlib's raw descriptors).
"""
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np


def _box(lm):
    c = lm.mean(0)
    iod = np.linalg.norm(lm[1] - lm[0])
    h = 1.35 * iod
    top, bottom = int(c[1] - h - 2), int(c[1] + h - 2)
    left, right = int(c[0] - h), int(c[0] + h)
    return (top, right, bottom, left)


def _work(args):
    root, items = args
    import face_recognition as fr
    import PIL.Image
    out = []
    for rel, lm in items:
        img = np.array(PIL.Image.open(Path(root) / "lfw-deepfunneled" / rel).convert("RGB"))
        e = fr.face_encodings(img, [_box(lm)], num_jitters=1, model="small")
        out.append(np.asarray(e[0], np.float32))
    return out


def main(root, people_file, out, workers=2):
    root = Path(root)
    ann = {}
    for line in open(root / "annotations" / "lfw_landmark_5pt_original250.txt"):
        p = line.split()
        ann[p[0]] = np.array(p[1:11], np.float32).reshape(5, 2)
    people = set()
    for line in open(people_file).read().splitlines()[1:]:
        if line.strip():
            people.add(line.split()[0])
    names = sorted(k for k in ann if k.split("/")[0] in people)
    chunks = [[(n, ann[n]) for n in names[i:i + 200]] for i in range(0, len(names), 200)]
    embs = []
    with Pool(int(workers)) as pool:
        for k, res in enumerate(pool.imap(_work, [(str(root), c) for c in chunks])):
            embs.extend(res)
            print(f"{len(embs)}/{len(names)}", flush=True)
    np.savez(out, names=np.array(names), emb=np.stack(embs))
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
