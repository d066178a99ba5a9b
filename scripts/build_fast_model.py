"""Build the int8 model bundle ``models/fast`` from the shipped float one (``models/default``).

1. Activation ranges: aligned crops of a random sample of the people the float model was fine-tuned
   on (``finetune_dlib.split_people(...)["train"]``: LFW DevTrain minus the calibration people, the
   pins/bollywood training people) × the bundle's test-time views; never a calibration or test person.
2. Static QDQ quantisation (uint8 activations, int8 per-channel weights;
   :func:`facever.training.quantize.build_int8_bundle`).
3. τ, the open-set threshold and the impostor distribution, calibrated on the same held-out people
   as the float model (``split_people(...)["calib"]``) embedded by the int8 graph.

The crops come from facever's own pipeline (MTCNN, padded retry, central face, the model's
alignment) and are cached under ``--cache`` (default ``runs/int8/crops``).

MTCNN stays float unless quantising it pays: ``--mtcnn-probe N`` only measures it (int8 stages
calibrated on the training sample's photos, timed against float on N LFW DevTest photos, detections
compared) and writes ``runs/int8/mtcnn_probe.json``.

Usage: python scripts/build_fast_model.py DATA_ROOT [--src models/default] [--out models/fast]
           [--lfw-people 150 --per-person 2 --domain-per-person 4] [--view-zooms Z ...] [--mtcnn-probe N]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from finetune_dlib import DATASETS, split_people  # noqa: E402

from facever.training.landmarks import EXTENSIONS  # noqa: E402  (the images the default model's recipe reads)


def image_lists(data_root: Path, people: dict[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """``{dataset: {person: file names}}`` of ``people`` (folders listed)."""
    out: dict[str, dict[str, list[str]]] = {}
    for ds, names in people.items():
        base = data_root / DATASETS[ds]
        out[ds] = {p: sorted(f.name for f in (base / p).iterdir() if f.suffix.lower() in EXTENSIONS)
                   for p in sorted(names) if (base / p).is_dir()}
    return out


def probe(args, sample: dict[str, list[str]]) -> None:
    """Float against int8 MTCNN (:func:`facever.training.quantize.mtcnn_probe`) → runs/int8/mtcnn_probe.json."""
    from facever.imaging import load_image
    from facever.training import lfw
    from facever.training.quantize import mtcnn_probe

    calib = [load_image(args.data_root / DATASETS[ds] / p) for ds, paths in sample.items() for p in paths]
    test_paths = lfw.people_images(None, lfw.read_people(lfw.protocol_file(args.data_root / "lfw", "peopleDevTest.txt")))
    step = max(1, len(test_paths) // args.mtcnn_probe)
    test = [load_image(lfw.image_root(args.data_root / "lfw") / p) for p in test_paths[::step][:args.mtcnn_probe]]
    result = mtcnn_probe(calib, test)
    out = Path("runs/int8/mtcnn_probe.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("--src", default="models/default")
    ap.add_argument("--out", default="models/fast")
    ap.add_argument("--cache", default="runs/int8/crops", help="folder for cached crops ('' for none)")
    ap.add_argument("--lfw-people", type=int, default=150, help="LFW training people sampled for the ranges")
    ap.add_argument("--per-person", type=int, default=2, help="images per LFW training person")
    ap.add_argument("--domain-per-person", type=int, default=4, help="images per pins/bollywood training person")
    ap.add_argument("--far", type=float, default=1e-2)
    ap.add_argument("--fpir", type=float, default=1e-2)
    ap.add_argument("--view-zooms", type=float, nargs="+", default=None,
                    help="test-time zooms of the int8 bundle (each mirrored); default: the source's")
    ap.add_argument("--mtcnn-probe", type=int, default=0, metavar="N", help="only measure int8 MTCNN on N photos")
    args = ap.parse_args()

    from facever.api import FaceVerifier
    from facever.training.quantize import build_int8_bundle, cached_crops, training_sample

    t0 = time.time()
    cache = args.cache or None
    parts = split_people(args.data_root, args.data_root)  # the landmark folder is not read
    verifier = FaceVerifier(model=args.src)
    train_lists = image_lists(args.data_root, parts["train"])
    sample = {ds: training_sample({ds: names}, train_lists, args.per_person if ds == "lfw" else args.domain_per_person,
                                  {"lfw": args.lfw_people}, seed=0)[ds] for ds, names in parts["train"].items()}
    if args.mtcnn_probe:
        probe(args, sample)
        return
    train = []
    for ds, paths in sample.items():
        crops, found = cached_crops(cache, verifier, args.data_root / DATASETS[ds], paths)
        print(f"train {ds}: {len(paths)} images, {int(found.sum())} faces ({time.time() - t0:.0f}s)", flush=True)
        train.append(crops)
    calib_lists = image_lists(args.data_root, parts["calib"])
    calib, labels, ids = [], [], {}
    for ds, people in calib_lists.items():
        paths = [f"{p}/{f}" for p, files in people.items() for f in files]
        crops, found = cached_crops(cache, verifier, args.data_root / DATASETS[ds], paths)
        calib.append(crops)
        labels += [ids.setdefault(f"{ds}/{p.split('/')[0]}", len(ids)) for p, ok in zip(paths, found) if ok]
        print(f"calibration {ds}: {len(people)} people, {len(paths)} images, {int(found.sum())} faces "
              f"({time.time() - t0:.0f}s)", flush=True)
    calib_crops = np.concatenate(calib)
    description = (f"held-out people: {len(parts['calib']['lfw'])} LFW DevTrain people kept out of training, "
                   f"{len(parts['calib']['pins'])} pins and {len(parts['calib']['bollywood'])} bollywood validation "
                   f"people ({len(calib_crops)} images)")
    provenance = {"calibration_crops": {ds: int(len(c)) for ds, c in zip(sample, train)},
                  "calibration_sample": (f"{args.lfw_people} random LFW training people × ≤ {args.per_person} images, "
                                         f"every pins/bollywood training person × ≤ {args.domain_per_person} "
                                         "images (seed 0; facever's pipeline: MTCNN, central face, dlib alignment)"),
                  "built_by": "scripts/build_fast_model.py"}
    result = build_int8_bundle(args.src, args.out, np.concatenate(train), calib_crops, np.asarray(labels, np.int64),
                               description, target_far=args.far, target_fpir=args.fpir, provenance=provenance,
                               view_zooms=args.view_zooms)
    result["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
