"""The default model's data: where its datasets lie, how their people are split, their aligned crops.

A data root (``DATA_ROOT``) holds three folder-per-person datasets, :data:`DATASETS`:
``lfw/lfw-deepfunneled`` (with LFW's protocol files in ``lfw/protocol``), ``pins`` and ``bollywood``.
People are split by identity, never by image (:func:`split_people`):

* train: LFW ``peopleDevTrain`` minus :data:`LFW_CALIBRATION_PEOPLE` people kept back for calibration
  (seed 0, among people with ≥ 2 images), plus ``splits/{pins,bollywood}_train.txt``;
* val: ``splits/{pins,bollywood}_val.txt`` (the fine-tuning's checkpoint choice);
* calib: the LFW people kept back plus the pins/bollywood val people (τ and the open-set thresholds);
* the test people (``splits/*_test.txt``) and LFW DevTest are used only by the evaluation.

The split files (:data:`SPLITS_DIR`, package data) were drawn once by ``scripts/make_splits.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facever.errors import FaceverError
from facever.training import lfw

#: The split files of the pins and bollywood people (``{dataset}_{train,val,test}.txt``, one name a line).
SPLITS_DIR = Path(__file__).resolve().parent / "splits"
#: Dataset name → its image folder under the data root (one sub-folder of images per person).
DATASETS = {"lfw": "lfw/lfw-deepfunneled", "pins": "pins", "bollywood": "bollywood"}
#: LFW DevTrain people (with ≥ 2 images) kept out of training for calibration.
LFW_CALIBRATION_PEOPLE = 300
#: LFW protocol files the recipe reads (the split, and the evaluation's P1–P4).
LFW_PROTOCOL_FILES = ("peopleDevTrain.txt", "pairsDevTest.txt", "peopleDevTest.txt", "pairs.txt")
#: Crop side (pixels) and template of the default model's input.
CROP_SIZE, TEMPLATE = 150, "dlib"


class DataRootError(FaceverError):
    """The data root lacks a dataset or a protocol file the recipe needs."""


def check_data_root(data_root: str | os.PathLike[str]) -> Path:
    """Return ``data_root`` as a Path after checking it holds every dataset and LFW protocol file.

    Raises:
        DataRootError: naming the first missing folder or file.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise DataRootError(f"data root {root} is not a folder")
    for name, sub in DATASETS.items():
        if not (root / sub).is_dir():
            raise DataRootError(f"data root {root} has no {sub}/ (the {name} images, a folder per person)")
    for name in LFW_PROTOCOL_FILES:
        if not (root / "lfw" / lfw.PROTOCOL_DIR / name).is_file():
            raise DataRootError(f"data root {root} has no lfw/{lfw.PROTOCOL_DIR}/{name} (an LFW protocol file)")
    return root


def read_split(name: str) -> set[str]:
    """The people of split file ``name`` (e.g. ``"pins_test"``) of :data:`SPLITS_DIR`."""
    text = (SPLITS_DIR / f"{name}.txt").read_text(encoding="utf-8")
    return {line.strip() for line in text.splitlines() if line.strip()}


def split_people(data_root: str | os.PathLike[str], landmark_dir: object = None) -> dict[str, dict[str, set[str]]]:
    """``{part: {dataset: people}}`` for part in ``train``, ``val``, ``calib`` (module docstring).

    ``landmark_dir`` is ignored (kept for the scripts' old call signature).
    """
    devtrain = lfw.read_people(lfw.protocol_file(Path(data_root) / "lfw", "peopleDevTrain.txt"))
    multi = sorted(p for p, n in devtrain.items() if n >= 2)
    rng = np.random.default_rng(0)
    calib = set(rng.choice(multi, LFW_CALIBRATION_PEOPLE, replace=False).tolist())
    return {
        "train": {"lfw": set(devtrain) - calib, "pins": read_split("pins_train"),
                  "bollywood": read_split("bollywood_train")},
        "val": {"pins": read_split("pins_val"), "bollywood": read_split("bollywood_val")},
        "calib": {"lfw": calib, "pins": read_split("pins_val"), "bollywood": read_split("bollywood_val")},
    }


def heldout_people() -> list[str]:
    """The pins test people then the bollywood test people, each file's order (the held-out evaluation)."""
    lines: list[str] = []
    for name in ("pins_test", "bollywood_test"):
        lines += (SPLITS_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def load_crops(data_root: str | os.PathLike[str], landmark_dir: str | os.PathLike[str],
               people: dict[str, set[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Aligned crops of every image of ``people`` in which a face was found.

    Args:
        data_root: the data root (:data:`DATASETS` under it).
        landmark_dir: holds ``{dataset}.npz`` landmark caches (:mod:`facever.training.landmarks`).
        people: ``{dataset: names}``.
    Returns:
        ``(N, 150, 150, 3)`` uint8 RGB crops on the dlib template, ``(N,)`` int32 labels (one per
        ``dataset/person``, numbered in order of appearance), and the ``dataset/PERSON/FILE`` keys.
    Raises:
        ValueError: no image of ``people`` has a detected face.
    """
    from facever.alignment import align_face
    from facever.imaging import load_image
    from facever.training.landmarks import load_landmarks

    crops, labels, keys = [], [], []
    ids: dict[str, int] = {}
    for ds, names in people.items():
        cache = load_landmarks(Path(landmark_dir) / f"{ds}.npz")
        for path, lm, ok in zip(cache["names"].tolist(), cache["landmarks"], cache["found"]):
            person = path.split("/")[0]
            if not ok or person not in names:
                continue
            crops.append(align_face(load_image(Path(data_root) / DATASETS[ds] / path), lm, CROP_SIZE, TEMPLATE))
            labels.append(ids.setdefault(f"{ds}/{person}", len(ids)))
            keys.append(f"{ds}/{path}")
    if not crops:
        raise ValueError(f"no detected face among the images of {sorted(people)} in {landmark_dir}")
    return np.stack(crops), np.asarray(labels, np.int32), keys
