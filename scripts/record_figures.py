"""Store an evaluation summary (benchmarks/eval_embeddings.py JSON) in a bundle's metadata.

Only ``metadata.json`` changes (``figures.evaluation``); the model version (hash of the graph) does not.
Usage: python scripts/record_figures.py BUNDLE_DIR EVAL.json
"""
from __future__ import annotations

import json
import sys

from facever.bundle import read_metadata, write_metadata


def summary(result: dict) -> dict:
    out: dict = {}
    lfw = result.get("lfw", {})
    if "p1" in lfw:
        p1 = lfw["p1"]
        out["p1"] = {"accuracy": p1["accuracy"], "stderr": p1["stderr"], "roc_auc": p1["roc_auc"], "eer": p1["eer"]}
    if "p2" in lfw:
        p2 = lfw["p2"]
        m = p2.get("metrics", p2)
        out["p2"] = {"eer": m.get("eer"), "tar_at_far": {k: v["tar"] for k, v in m["tar_at_far"].items()}}
    if "p3" in lfw:
        out["p3"] = {k: {"rank1": v["nearest"]["rank1"],
                         "dir_at_fpir": {f: x["dir"] for f, x in v["nearest"]["dir_at_fpir"].items()}}
                     for k, v in lfw["p3"]["enroll"].items()}
    if "p4" in lfw:
        out["p4"] = {"accuracy": lfw["p4"]["accuracy"], "stderr": lfw["p4"]["stderr"], "contaminated": "see MODEL_CARD.md"}
    if "heldout" in result:
        h = result["heldout"]
        out["pins_bollywood_test"] = {k: h[k] for k in ("n_people", "n_images", "failed_images", "roc_auc", "eer", "pair_accuracy")}
        out["pins_bollywood_test"]["tar_at_far"] = {k: v["tar"] for k, v in h["tar_at_far"].items()}
    return out


def main(bundle: str, eval_json: str) -> None:
    meta = read_metadata(bundle)
    meta.figures["evaluation"] = summary(json.load(open(eval_json)))
    write_metadata(bundle, meta)
    print(json.dumps(meta.figures["evaluation"], indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
