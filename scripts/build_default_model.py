"""Assemble the default model bundle: dlib's imported ResNet (optionally fine-tuned), calibrated and
exported: step 4 of ``facever model build`` (:func:`facever.training.default_recipe.assemble`).
Without ``--weights``: the plain import (no fine-tuning).

Usage: python scripts/build_default_model.py DATA_ROOT LANDMARK_DIR --out OUT
           [--weights runs/ft/NAME/model.keras --history runs/ft/NAME/history.json] [--zooms 1.05 1.10]
"""
from __future__ import annotations

import argparse
import json

from facever.training.default_recipe import assemble


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root"); ap.add_argument("landmark_dir")
    ap.add_argument("--out", required=True, help="bundle directory to write")
    ap.add_argument("--weights", help="fine-tuned model.keras (default: the plain import)")
    ap.add_argument("--history", help="the fine-tuning run's history.json, recorded in the metadata")
    ap.add_argument("--far", type=float, default=1e-2)
    ap.add_argument("--fpir", type=float, default=1e-2)
    ap.add_argument("--zooms", type=float, nargs="+", default=[1.0],
                    help="test-time views: zooms of the aligned crop (each mirrored), averaged")
    args = ap.parse_args()
    result = assemble(args.data_root, args.landmark_dir, args.out, args.weights, args.history, tuple(args.zooms),
                      args.far, args.fpir)
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
