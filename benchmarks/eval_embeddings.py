"""Score cached embeddings (``scripts/embed_dataset.py`` output) on the LFW protocols and on
held-out pins/bollywood people: :func:`facever.training.cached_evaluation.evaluate_cached`.

LFW: P1 (View 1, 10-fold accuracy, AUC, EER), P2 (DevTest all pairs: TAR at FAR 1e-2/1e-3/1e-4,
EER), P3 (open-set rank-1 / DIR at FPIR), P4 (View 2). Non-LFW: all genuine and impostor pairs among
the held-out people's images (``--holdout FILE``, one person per line): AUC, EER, TAR at FAR, and the
pair accuracy of a 10-fold cross-validated threshold. Images without a face count as failed pairs.

Usage: python benchmarks/eval_embeddings.py --lfw-root LFW --lfw LFW.npz [--other pins.npz ...]
           [--holdout HOLDOUT.txt] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facever.training.cached_evaluation import evaluate_cached, heldout_pairs, lookup, summary_lines  # noqa: F401


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw-root"); ap.add_argument("--lfw"); ap.add_argument("--other", nargs="*", default=[])
    ap.add_argument("--holdout"); ap.add_argument("--protocols", default="p1,p2,p3,p4"); ap.add_argument("--json")
    args = ap.parse_args()
    holdout = None
    if args.holdout:
        holdout = {line.strip() for line in Path(args.holdout).read_text().splitlines() if line.strip()}
    result = evaluate_cached(args.lfw_root, args.lfw, args.other, holdout, args.protocols.split(","))
    print("\n".join(summary_lines(result)))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
