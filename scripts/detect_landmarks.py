"""Detect the face of every image of a folder-per-person dataset once; cache its five landmarks
(:mod:`facever.training.landmarks`; ``facever model build`` runs this as its first step).

Usage: python scripts/detect_landmarks.py IMAGE_ROOT OUT.npz
"""
from __future__ import annotations

import sys

from facever.training.landmarks import detect_landmarks, save_landmarks


def main(root: str, out: str) -> None:
    report = lambda done, total, found: print(f"{done}/{total} found={found / done:.4f}", flush=True)
    cache = detect_landmarks(root, progress=report)
    save_landmarks(out, cache)
    print(f"done: found {cache['found'].sum()}/{len(cache['found'])}, after padding {cache['padded'].sum()}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
