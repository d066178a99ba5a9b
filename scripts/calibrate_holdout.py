"""Re-run the hold-out calibration of a bundle trained by ``facever train`` (τ, the logistic head and
the open-set identification threshold), on the same identity-disjoint hold-out people.

The hold-out split is rebuilt exactly as ``facever train`` made it (same data, same seed), from the
crop cache; the bundle's weights and version do not change, only its metadata.json.

Usage: python scripts/calibrate_holdout.py BUNDLE LFW_ROOT CACHE_DIR [--seed 0] [--holdout-people 150]
       [--holdout-singletons 300] [--target-far 1e-3] [--target-fpir 1e-2]
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle"); ap.add_argument("lfw"); ap.add_argument("cache")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--holdout-people", type=int, default=150)
    ap.add_argument("--holdout-singletons", type=int, default=300)
    ap.add_argument("--target-far", type=float, default=1e-3, help="FAR at which τ is chosen")
    ap.add_argument("--target-fpir", type=float, default=1e-2, help="FPIR at which the identify threshold is chosen")
    args = ap.parse_args()

    from facever.embedding import FaceEmbedder
    from facever.bundle import load_bundle
    from facever.training.calibration import calibrate_bundle
    from facever.training.scratch_recipe import prepare_data

    bundle = load_bundle(args.bundle)
    meta = bundle.metadata
    prepared = prepare_data(args.lfw, [], args.cache, meta.input_size, meta.alignment, holdout_people=args.holdout_people,
                            holdout_singletons=args.holdout_singletons, seed=args.seed)
    trained = set(bundle.metadata.training.get("data", {}).get("people", []))
    leaked = trained & set(prepared.calib.people)
    if leaked:
        raise SystemExit(f"hold-out people were in training ({len(leaked)}): different split settings?")
    emb = FaceEmbedder(bundle).embed_crops(prepared.calib_crops)
    figures = calibrate_bundle(bundle, emb, prepared.calib.labels,
                               f"{len(prepared.calib.people)} held-out training-source people "
                               f"({len(prepared.calib)} images), not in training nor LFW DevTest",
                               target_far=args.target_far, seed=args.seed, target_fpir=args.target_fpir)
    bundle.save_metadata()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
