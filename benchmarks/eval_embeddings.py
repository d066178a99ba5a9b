"""Score cached embeddings (``scripts/embed_dataset.py`` output) on the LFW protocols and on
held-out pins/bollywood people.

LFW: P1 (View 1, 10-fold accuracy, AUC, EER), P2 (DevTest all pairs: TAR at FAR 1e-2/1e-3/1e-4,
EER), P3 (open-set rank-1 / DIR at FPIR), P4 (View 2). Non-LFW: all genuine and impostor pairs among
the held-out people's images (``--holdout FILE``, one person per line): AUC, EER, TAR at FAR, and the
pair accuracy of a 10-fold cross-validated threshold. Images without a face keep a NaN embedding and
count as failed pairs (distance beyond every threshold), as in :mod:`facever.training.evaluation`.

Usage: python benchmarks/eval_embeddings.py --lfw-root LFW --lfw LFW.npz [--other pins.npz ...]
           [--holdout HOLDOUT.txt] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from facever.training import evaluation as ev


def lookup(npz: str):
    data = np.load(npz)
    index = {n: i for i, n in enumerate(data["names"].tolist())}
    emb = data["embeddings"]
    return lambda paths: emb[[index[p] for p in paths]], data["names"].tolist(), emb


def heldout_pairs(names: list[str], emb: np.ndarray, people: set[str]) -> dict:
    """Every genuine and impostor pair among the images of ``people`` (:func:`facever.training.evaluation.evaluate_identity_pairs`)."""
    idx = [i for i, n in enumerate(names) if n.split("/")[0] in people]
    labels = np.array([names[i].split("/")[0] for i in idx])
    return ev.evaluate_identity_pairs(emb[idx], labels)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lfw-root"); ap.add_argument("--lfw"); ap.add_argument("--other", nargs="*", default=[])
    ap.add_argument("--holdout"); ap.add_argument("--protocols", default="p1,p2,p3,p4"); ap.add_argument("--json")
    args = ap.parse_args()
    out: dict = {}
    if args.lfw:
        embed, _, _ = lookup(args.lfw)
        r = ev.evaluate_all(args.lfw_root, embed, protocols=args.protocols.split(","))
        out["lfw"] = r
        if "p1" in r:
            print(f"P1 acc {r['p1']['accuracy']:.4f} ± {r['p1']['stderr']:.4f}  AUC {r['p1']['roc_auc']:.4f}  EER {r['p1']['eer']:.4f}")
        if "p2" in r:
            print(f"P2 TAR@FAR {r['p2']['metrics']['tar_at_far'] if 'metrics' in r['p2'] else r['p2'].get('tar_at_far')}  EER {r['p2'].get('eer')}")
        if "p3" in r:
            print("P3", {k: v for k, v in r["p3"].items() if k not in ("per_enroll",)} if False else json.dumps(r["p3"])[:400])
        if "p4" in r:
            print(f"P4 acc {r['p4']['accuracy']:.4f} ± {r['p4']['stderr']:.4f}")
    if args.other:
        people = {l.strip() for l in open(args.holdout) if l.strip()} if args.holdout else None
        names, embs = [], []
        for f in args.other:
            _, n, e = lookup(f)
            names += n; embs.append(e)
        emb = np.concatenate(embs)
        people = people or {n.split("/")[0] for n in names}
        r = heldout_pairs(names, emb, people)
        out["heldout"] = r
        print(f"held-out {r['n_people']} people / {r['n_images']} images: AUC {r['roc_auc']:.5f} EER {r['eer']:.4f} "
              f"TAR@FAR {r['tar_at_far']} pair-acc {r['pair_accuracy']:.4f} failed {r['failed_images']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
