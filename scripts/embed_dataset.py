"""Embed every image of a dataset from cached landmarks (``scripts/detect_landmarks.py`` output) with a
bundle's encoder on onnxruntime, exactly as at inference (``--model``), or with the imported dlib
ResNet in Keras (``--dlib-import``): :mod:`facever.training.cached_evaluation`. Writes ``OUT.npz``:
``names``, ``embeddings`` ``(N, 128)`` float32 unit rows (NaN where no face was found), ``found``.

Usage: python scripts/embed_dataset.py IMAGE_ROOT LANDMARKS.npz OUT.npz
       [--model BUNDLE_DIR | --dlib-import] [--template dlib|arcface] [--size 150] [--no-flip]
"""
from __future__ import annotations

import argparse
import time

from facever.training.cached_evaluation import bundle_embedder, dlib_import_embedder, embed_cached, save_embeddings
from facever.training.landmarks import load_landmarks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root"); ap.add_argument("landmarks"); ap.add_argument("out")
    ap.add_argument("--model"); ap.add_argument("--dlib-import", action="store_true")
    ap.add_argument("--template", default="dlib"); ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--no-flip", action="store_true")
    args = ap.parse_args()
    embedder = (dlib_import_embedder(args.size, args.template, flip=not args.no_flip) if args.dlib_import
                else bundle_embedder(args.model, flip=not args.no_flip))
    t0 = time.time()
    cache = embed_cached(args.root, load_landmarks(args.landmarks), embedder)
    save_embeddings(args.out, cache)
    print(f"{cache['found'].sum()}/{len(cache['found'])} embedded in {time.time() - t0:.0f}s -> {args.out}")


if __name__ == "__main__":
    main()
