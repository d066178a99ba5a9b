"""Fine-tune the imported dlib ResNet on LFW DevTrain + pins/bollywood training people.

Two steps, so that several settings can be compared on the same precomputed trunk features:

  python scripts/finetune_dlib.py prepare DATA_ROOT LANDMARK_DIR WORK_DIR
  python scripts/finetune_dlib.py run WORK_DIR NAME [--loss semi_hard --margin 0.1 --distill 1 --lr 3e-5 ...]

Data (people are split by identity; no LFW DevTest person and no pins/bollywood val or test person
is ever trained on):
* train: LFW ``peopleDevTrain`` minus ``LFW_CALIBRATION_PEOPLE`` people kept back for calibration
  (seed 0, people with ≥ 2 images), plus ``scripts/splits/{pins,bollywood}_train.txt``;
* val: ``scripts/splits/{pins,bollywood}_val.txt`` (checkpoint choice);
* the test people (``*_test.txt``) and LFW DevTest are only used by the evaluation afterwards.

``LANDMARK_DIR`` holds ``lfw.npz``, ``pins.npz``, ``bollywood.npz`` from ``scripts/detect_landmarks.py``.
``run`` writes ``WORK_DIR/NAME/model.keras`` (the whole network at the best validation epoch) and
``history.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from facever.training import lfw
from facever.alignment import align_face
from facever.imaging import load_image

SPLITS = Path(__file__).parent / "splits"
LFW_CALIBRATION_PEOPLE = 300
DATASETS = {"lfw": "lfw/lfw-deepfunneled", "pins": "pins", "bollywood": "bollywood"}


def split_people(data_root: Path, landmark_dir: Path) -> dict[str, dict[str, set[str]]]:
    """``{part: {dataset: people}}`` for part in train / val / calib."""
    devtrain = lfw.read_people(lfw.protocol_file(data_root / "lfw", "peopleDevTrain.txt"))
    multi = sorted(p for p, n in devtrain.items() if n >= 2)
    rng = np.random.default_rng(0)
    calib = set(rng.choice(multi, LFW_CALIBRATION_PEOPLE, replace=False).tolist())
    read = lambda f: {l.strip() for l in (SPLITS / f).read_text().splitlines() if l.strip()}
    return {
        "train": {"lfw": set(devtrain) - calib, "pins": read("pins_train.txt"), "bollywood": read("bollywood_train.txt")},
        "val": {"pins": read("pins_val.txt"), "bollywood": read("bollywood_val.txt")},
        "calib": {"lfw": calib, "pins": read("pins_val.txt"), "bollywood": read("bollywood_val.txt")},
    }


def load_crops(data_root: Path, landmark_dir: Path, people: dict[str, set[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Aligned 150 px dlib-template crops of every detected image of ``people``; labels; ``dataset/path`` keys."""
    crops, labels, keys = [], [], []
    ids: dict[str, int] = {}
    for ds, names in people.items():
        z = np.load(landmark_dir / f"{ds}.npz")
        for path, lm, ok in zip(z["names"].tolist(), z["landmarks"], z["found"]):
            person = path.split("/")[0]
            if not ok or person not in names:
                continue
            crops.append(align_face(load_image(data_root / DATASETS[ds] / path), lm, 150, "dlib"))
            labels.append(ids.setdefault(f"{ds}/{person}", len(ids)))
            keys.append(f"{ds}/{path}")
    return np.stack(crops), np.asarray(labels, np.int32), keys


def prepare(data_root: str, landmark_dir: str, work: str, zooms: tuple[float, ...] = (1.0,)) -> None:
    from facever.training.finetune import FinetuneConfig, precompute, split_model
    from facever.training.pretrained import import_dlib_resnet

    data_root, landmark_dir, work = Path(data_root), Path(landmark_dir), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    parts = split_people(data_root, landmark_dir)
    model, _, _ = import_dlib_resnet()
    trunk, _ = split_model(model, FinetuneConfig().cut)
    # validation sets: the pins/bollywood val people (the shipped recipe chooses its epoch on them) and
    # the LFW people kept for calibration (both held out of training; `run --val-parts val val_lfw`)
    parts["val_lfw"] = {"lfw": parts["calib"]["lfw"]}
    for part in ("train", "val", "val_lfw"):
        t0 = time.time()
        crops, labels, keys = load_crops(data_root, landmark_dir, parts[part])
        feats = precompute(trunk, crops, zooms=zooms)
        np.save(work / f"{part}_features.npy", feats)
        np.savez(work / f"{part}_meta.npz", labels=labels, keys=np.array(keys))
        print(f"{part}: {len(keys)} images, {labels.max() + 1} people, features {feats.shape} in {time.time() - t0:.0f}s", flush=True)
    (work / "split.json").write_text(json.dumps({k: {d: sorted(v) for d, v in p.items()} for k, p in parts.items()}))


def run(work: str, name: str, val_parts: tuple[str, ...] = ("val",), **overrides) -> None:
    """Fine-tune from the import on WORK's features; the checkpoint is chosen on ``val_parts`` (the mean
    of their scores): ``val`` = the pins/bollywood validation people, ``val_lfw`` = the LFW calibration
    people."""
    from facever.training.finetune import FinetuneConfig, Finetuner, split_model
    from facever.training.pretrained import import_dlib_resnet

    work = Path(work)
    cfg = FinetuneConfig(**{k: v for k, v in overrides.items() if v is not None})
    feats = np.load(work / "train_features.npy")
    meta = np.load(work / "train_meta.npz")
    labels = meta["labels"]
    focus = np.array([not k.startswith("lfw/") for k in meta["keys"].tolist()])
    val = [(np.load(work / f"{part}_features.npy"), np.load(work / f"{part}_meta.npz")["labels"]) for part in val_parts]
    model, _, _ = import_dlib_resnet()
    _, head = split_model(model, cfg.cut)
    tuner = Finetuner(head, feats, labels, cfg, val=val, focus=focus)
    out = work / name
    out.mkdir(exist_ok=True)

    def log(r):
        print(json.dumps({"epoch": r.epoch, "s": round(r.seconds), "loss": round(r.loss, 4), "triplet": round(r.triplet, 4),
                          "distill": round(r.distill, 5), "active": round(r.active, 3),
                          **{k: round(v, 5) for k, v in r.val.items()}}), flush=True)
        (out / "history.json").write_text(json.dumps({"config": cfg.to_json(), "history": [h.__dict__ for h in tuner.history]}, indent=1))

    tuner.fit(on_epoch=log)
    model.save(out / "model.keras")
    (out / "history.json").write_text(json.dumps({"config": cfg.to_json(), "best_epoch": tuner.best["epoch"],
                                                  "best_val": tuner.best["val"],
                                                  "history": [h.__dict__ for h in tuner.history]}, indent=1))
    print("best epoch", tuner.best["epoch"], tuner.best["val"], flush=True)


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
