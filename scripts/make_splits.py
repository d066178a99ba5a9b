"""Split the people of pins and bollywood by identity into train / val / test (seed 0).

train: fine-tuning; val: checkpoint choice and threshold calibration; test: reported figures only.
About 50 % / 25 % / 25 % of each dataset's people. Writes facever/training/splits/{dataset}_{part}.txt.
Usage: python scripts/make_splits.py DATA_ROOT
"""
import sys
from pathlib import Path

import numpy as np

root = Path(sys.argv[1])
out = Path(__file__).resolve().parent.parent / "facever" / "training" / "splits"
out.mkdir(exist_ok=True)
for name in ("pins", "bollywood"):
    people = sorted(p.name for p in (root / name).iterdir() if p.is_dir())
    order = [people[i] for i in np.random.default_rng(0).permutation(len(people))]
    n_val = n_test = len(people) // 4
    parts = {"test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:]}
    for part, names in parts.items():
        (out / f"{name}_{part}.txt").write_text("\n".join(sorted(names)) + "\n")
        print(name, part, len(names))
