"""``facever model build`` and its recipe (facever/training/default_recipe.py) on a tiny synthetic data
root: the people split, the landmark and crop steps, resuming after an interruption, the CLI's errors.

No ../shared: the data root is generated here (a few images per person, named after real people of
the shipped split files so that the split applies); detection is replaced by a stub detector or by
landmark files written here; every other step is the recipe's own code.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import StubDetector, person_image
from facever.training import default_data as dd
from facever.training import default_recipe as recipe
from facever.training.landmarks import FIELDS, load_landmarks, save_landmarks
from facever_cli.app import app

runner = CliRunner()
LFW_PEOPLE = [f"Person_{i:03d}" for i in range(320)]  # ≥ 300 with two images: the calibration draw fits


def _people(name: str, n: int) -> list[str]:
    return sorted(dd.read_split(name))[:n]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """lfw/lfw-deepfunneled (3 people with images), lfw/protocol (peopleDevTrain: 320 people, 2
    images each; the evaluation's files), and pins/bollywood with 2 train + 1 val + 1 test person."""
    root = tmp_path_factory.mktemp("data")
    protocol = root / "lfw" / "protocol"
    protocol.mkdir(parents=True)
    (protocol / "peopleDevTrain.txt").write_text(f"{len(LFW_PEOPLE)}\n" + "".join(f"{p}\t2\n" for p in LFW_PEOPLE))
    for name in ("pairsDevTest.txt", "peopleDevTest.txt", "pairs.txt"):
        (protocol / name).write_text("0\n")
    folders = {"lfw/lfw-deepfunneled": LFW_PEOPLE[:3]}
    for ds in ("pins", "bollywood"):
        folders[ds] = _people(f"{ds}_train", 2) + _people(f"{ds}_val", 1) + _people(f"{ds}_test", 1)
    for k, (sub, people) in enumerate(folders.items()):
        for i, person in enumerate(people):
            (root / sub / person).mkdir(parents=True)
            for v in range(2):
                image = person_image(10 * k + i, v, size=120)
                cv2.imwrite(str(root / sub / person / f"{person}_{v:04d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return root


def test_people_are_split_by_identity_seeded_and_test_people_never_used(data_root):
    parts = dd.split_people(data_root)
    devtrain = set(LFW_PEOPLE)
    calib, train = parts["calib"]["lfw"], parts["train"]["lfw"]
    assert len(calib) == dd.LFW_CALIBRATION_PEOPLE and not calib & train and calib | train == devtrain
    assert dd.split_people(data_root) == parts  # seeded: the same people on every run
    for ds in ("pins", "bollywood"):
        test = dd.read_split(f"{ds}_test")
        assert test and not test & parts["train"][ds] and not test & parts["calib"][ds]
        assert not parts["train"][ds] & parts["val"][ds] and parts["calib"][ds] == parts["val"][ds]
    assert set(dd.heldout_people()) == dd.read_split("pins_test") | dd.read_split("bollywood_test")


def test_check_data_root_names_what_is_missing(tmp_path, data_root):
    assert dd.check_data_root(data_root) == data_root
    (tmp_path / "lfw" / "lfw-deepfunneled").mkdir(parents=True)
    (tmp_path / "pins").mkdir()
    with pytest.raises(dd.DataRootError, match="bollywood"):
        dd.check_data_root(tmp_path)
    (tmp_path / "bollywood").mkdir()
    with pytest.raises(dd.DataRootError, match="peopleDevTrain.txt"):
        dd.check_data_root(tmp_path)


def test_landmark_step_then_crops_of_the_chosen_people(tmp_path, data_root):
    events = []
    recipe.detect(data_root, tmp_path, events.append, datasets=("pins", "bollywood"), detector=StubDetector())
    cache = load_landmarks(tmp_path / "lm" / "pins.npz")
    assert set(FIELDS) <= set(cache) and cache["found"].all() and len(cache["names"]) == 8
    assert list(cache["names"]) == sorted(cache["names"]) and cache["landmarks"].shape == (8, 5, 2)
    assert [e.kind for e in events if e.step == "landmarks pins"][-1] == "done"

    people = {"pins": set(_people("pins_train", 2)), "bollywood": set(_people("bollywood_val", 1))}
    crops, labels, keys = dd.load_crops(data_root, tmp_path / "lm", people)
    assert crops.shape == (6, 150, 150, 3) and crops.dtype == np.uint8
    assert len(set(labels.tolist())) == 3 and all(k.split("/")[1] in people[k.split("/")[0]] for k in keys)
    assert np.bincount(labels).tolist() == [2, 2, 2]


def test_images_without_a_face_are_left_out_of_the_crops(tmp_path, data_root):
    names = sorted(f"{p}/{p}_{v:04d}.jpg" for p in _people("pins_train", 1) for v in range(2))
    lm = np.full((2, 5, 2), np.nan, np.float32)
    lm[1] = [[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]]
    (tmp_path / "lm").mkdir()
    save_landmarks(tmp_path / "lm" / "pins.npz", {
        "names": np.array(names), "landmarks": lm, "boxes": np.zeros((2, 4), np.float32),
        "scores": np.ones(2, np.float32), "n_faces": np.array([0, 1], np.int32), "found": np.array([False, True]),
        "padded": np.zeros(2, bool)})
    crops, labels, keys = dd.load_crops(data_root, tmp_path / "lm", {"pins": set(_people("pins_train", 1))})
    assert keys == [f"pins/{names[1]}"] and crops.shape[0] == 1
    with pytest.raises(ValueError, match="no detected face"):
        dd.load_crops(data_root, tmp_path / "lm", {"pins": {"Nobody"}})


def test_a_finished_step_is_skipped_and_an_interrupted_one_leaves_nothing(tmp_path, data_root):
    events = []
    recipe.detect(data_root, tmp_path, events.append, datasets=("pins",), detector=StubDetector())
    done = tmp_path / "lm" / "pins.npz"
    stamp = done.stat().st_mtime_ns

    class Interrupted(StubDetector):
        def detect_batch(self, images):
            raise KeyboardInterrupt

    events.clear()
    with pytest.raises(KeyboardInterrupt):
        recipe.detect(data_root, tmp_path, events.append, datasets=("pins", "bollywood"), detector=Interrupted())
    assert done.stat().st_mtime_ns == stamp  # resumed: the finished dataset was not detected again
    assert [(e.step, e.kind) for e in events] == [("landmarks pins", "skip"), ("landmarks bollywood", "start")]
    assert sorted(p.name for p in (tmp_path / "lm").iterdir()) == ["pins.npz"]  # no partial bollywood file


def test_embeddings_are_kept_for_the_same_model_and_redone_for_another(tmp_path, data_root):
    from facever import config

    recipe.detect(data_root, tmp_path, datasets=("bollywood",), detector=StubDetector())
    bundle = config.packaged_model_dir()
    version = recipe.bundle_version(bundle)
    events = []
    recipe.embed(data_root, tmp_path, bundle, version, events.append, datasets=("bollywood",))
    target = tmp_path / "emb" / "bollywood.npz"
    with np.load(target) as z:
        emb, found = z["embeddings"], z["found"]
        assert str(z["model_version"]) == version
    assert found.all() and emb.shape == (8, 128) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-4)
    stamp = target.stat().st_mtime_ns
    recipe.embed(data_root, tmp_path, bundle, version, events.append, datasets=("bollywood",))
    assert target.stat().st_mtime_ns == stamp and events[-1].kind == "skip"
    recipe.embed(data_root, tmp_path, bundle, "another-model", events.append, datasets=("bollywood",))
    assert events[-1].kind == "done" and target.stat().st_mtime_ns != stamp


def test_the_bundle_step_is_skipped_only_for_the_bundle_it_wrote(tmp_path):
    import shutil

    from facever import config

    out = tmp_path / "bundle"
    shutil.copytree(config.packaged_model_dir(), out)
    wd = recipe.WorkDir(tmp_path / "work")
    wd.root.mkdir()
    assert recipe._assembled(wd, out) is None  # no record: build it
    version = recipe.bundle_version(out)
    wd.assembled.write_text(json.dumps({"out": str(out.resolve()), "version": version}))
    assert recipe._assembled(wd, out) == version
    assert recipe._assembled(wd, tmp_path / "elsewhere") is None
    wd.assembled.write_text(json.dumps({"out": str(out.resolve()), "version": "0123456789abcdef"}))
    assert recipe._assembled(wd, out) is None  # the bundle there is not the one this build made


def test_cli_refuses_a_data_root_without_a_dataset_in_one_line(tmp_path):
    (tmp_path / "lfw" / "lfw-deepfunneled").mkdir(parents=True)
    res = runner.invoke(app, ["model", "build", str(tmp_path), "--work", str(tmp_path / "w")])
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "pins" in lines[0], res.stderr
    assert not (tmp_path / "w").exists()


def test_cli_help_shows_examples():
    res = runner.invoke(app, ["model", "build", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    examples = [line.strip() for line in res.stdout.splitlines() if line.strip().startswith("facever model build ")]
    assert len(examples) == 2 and "DATA_ROOT" in res.stdout and "--work" in res.stdout


def test_split_files_ship_as_package_data():
    import tomllib

    root = Path(__file__).resolve().parent.parent
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "splits/*.txt" in data["facever.training"]
    assert sorted(p.name for p in dd.SPLITS_DIR.glob("*.txt")) == sorted(
        f"{ds}_{part}.txt" for ds in ("pins", "bollywood") for part in ("train", "val", "test"))
