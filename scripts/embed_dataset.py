"""Embed every image of a dataset from cached landmarks (``scripts/detect_landmarks.py`` output).

Aligns each image to a template and embeds it (flip test-time augmentation: the mean of the crop's
and its mirror's embeddings, renormalised) with a bundle's exported encoder on onnxruntime, exactly
as at inference (``--model``), or with the imported dlib ResNet in Keras (``--dlib-import``). Writes ``OUT.npz``: ``names``, ``embeddings`` ``(N, 128)`` float32 unit rows
(NaN where no face was found), ``found``.

Usage: python scripts/embed_dataset.py IMAGE_ROOT LANDMARKS.npz OUT.npz
       [--model BUNDLE_DIR | --dlib-import] [--template dlib|arcface] [--size 150] [--no-flip]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from facever.alignment import align_face
from facever.imaging import load_image


def load_embedder(args):
    """A :class:`facever.embedding.FaceEmbedder` over the bundle's ONNX graph, or over the imported
    dlib ResNet in Keras (wrapped as a bundle encoder): crops are embedded exactly as at inference."""
    from facever.embedding import FaceEmbedder

    if args.dlib_import:
        import tensorflow as tf

        from facever.bundle import BundleMetadata, ModelBundle
        from facever.training.pretrained import import_dlib_resnet

        model = import_dlib_resnet(normalize=True)[0]
        forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        meta = BundleMetadata(architecture="dlib_resnet", input_size=args.size, alignment=args.template,
                              flip_tta=not args.no_flip)
        bundle = ModelBundle(lambda x: np.asarray(forward(x)), meta, version="dlib-import")
    else:
        from facever.bundle import load_bundle

        bundle = load_bundle(args.model, threads=2)
        bundle.metadata.flip_tta = bundle.metadata.flip_tta and not args.no_flip
        args.template, args.size = bundle.metadata.alignment, bundle.metadata.input_size
    return FaceEmbedder(bundle)  # landmarks are cached: its detector is never loaded


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root"); ap.add_argument("landmarks"); ap.add_argument("out")
    ap.add_argument("--model"); ap.add_argument("--dlib-import", action="store_true")
    ap.add_argument("--template", default="dlib"); ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--no-flip", action="store_true")
    args = ap.parse_args()
    data = np.load(args.landmarks)
    names, lms, found = data["names"].tolist(), data["landmarks"], data["found"]
    embedder = load_embedder(args)
    t0 = time.time()
    idx = np.flatnonzero(found)
    crops = np.stack([align_face(load_image(Path(args.root) / names[i]), lms[i], args.size, args.template) for i in idx])
    t1 = time.time()
    emb = np.full((len(names), 128), np.nan, np.float32)
    emb[idx] = embedder.embed_crops(crops)
    np.savez(args.out, names=np.array(names), embeddings=emb, found=found)
    print(f"{len(idx)}/{len(names)} embedded; align {t1 - t0:.0f}s, embed {time.time() - t1:.0f}s -> {args.out}")


if __name__ == "__main__":
    main()
