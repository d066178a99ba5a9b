"""Fine-tune the imported dlib ResNet on LFW DevTrain + pins/bollywood training people: steps 2 and 3
of ``facever model build`` (:mod:`facever.training.default_recipe`), kept as two commands so that
several settings can be compared on the same precomputed trunk features:

  python scripts/finetune_dlib.py prepare DATA_ROOT LANDMARK_DIR WORK_DIR [--zooms 1.05 1.10]
  python scripts/finetune_dlib.py run WORK_DIR NAME [--loss semi_hard --margin 0.1 --distill 1 --lr 3e-5 ...]

The people split and the crops: :mod:`facever.training.default_data` (re-exported here).
"""
from __future__ import annotations

import argparse
import sys

from facever.training.default_data import (DATASETS, LFW_CALIBRATION_PEOPLE, SPLITS_DIR as SPLITS,  # noqa: F401
                                           load_crops, split_people)
from facever.training.default_recipe import finetune, prepare as _prepare


def _print(event) -> None:
    if event.kind in ("done", "skip") or (event.kind == "progress" and event.detail):
        print(event.detail or f"{event.step}: {event.kind}", flush=True)


def prepare(data_root: str, landmark_dir: str, work: str, zooms: tuple[float, ...] = (1.0,)) -> None:
    """Trunk features of the train / val / val_lfw people in ``work`` (:func:`default_recipe.prepare`)."""
    _prepare(data_root, landmark_dir, work, zooms, report=_print)


def run(work: str, name: str, val_parts: tuple[str, ...] = ("val",), **overrides) -> None:
    """Fine-tune on ``work``'s features into ``work/name`` (:func:`default_recipe.finetune`)."""
    finetune(work, name, val_parts, report=_print, **overrides)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare"); p.add_argument("data_root"); p.add_argument("landmark_dir"); p.add_argument("work")
    p.add_argument("--zooms", type=float, nargs="+", default=[1.0], help="test-time views (crop zooms), each mirrored")
    r = sub.add_parser("run"); r.add_argument("work"); r.add_argument("name")
    for opt, typ in (("loss", str), ("margin", float), ("distill", float), ("lr", float), ("epochs", int),
                     ("p", int), ("k", int), ("cut", str), ("seed", int), ("weight_decay", float),
                     ("cosface", float), ("cosface_scale", float), ("cosface_margin", float), ("focus_fraction", float),
                     ("freeze_until", str)):
        r.add_argument(f"--{opt.replace('_', '-')}", type=typ)
    r.add_argument("--soft", action="store_true", default=None)
    r.add_argument("--val-parts", nargs="+", default=["val"], choices=["val", "val_lfw"],
                   help="validation people the epoch is chosen on (several: mean of their scores)")
    args = vars(ap.parse_args())
    cmd = args.pop("cmd")
    if cmd == "prepare":
        prepare(args["data_root"], args["landmark_dir"], args["work"], tuple(args["zooms"]))
    else:
        run(args.pop("work"), args.pop("name"), tuple(args.pop("val_parts")), **args)


if __name__ == "__main__":
    sys.exit(main())
