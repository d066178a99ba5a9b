"""`facever enroll / identify / people / db / reindex` through typer's CliRunner.

Synthetic "faces" and the stub detector (conftest.py) with tiny random Keras models whose τ (0.15)
sits between same-person (≈ 0.02) and different-person (≈ 0.3+) distances of those images.
"""

import json
import shutil

import numpy as np
import pytest
from conftest import StubDetector, person_image, png_bytes
from typer.testing import CliRunner

from facever_cli.app import app

runner = CliRunner()


def invoke(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.output
    return lines[0]


@pytest.fixture(autouse=True)
def stub_detector(monkeypatch, tmp_path):
    monkeypatch.setattr("facever.embedding.default_detector", lambda: StubDetector())
    monkeypatch.setenv("FACEVER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FACEVER_DB", raising=False)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Two tiny random models ("A" and "B", different versions) calibrated at τ = 0.15."""
    import keras

    from facever.training.bundle import BundleMetadata, Threshold, TrainableBundle
    from facever.training.network import build_encoder

    out = {}
    for seed, key in enumerate("AB"):
        keras.utils.set_random_seed(seed)
        model = build_encoder("resnet_s", input_size=32, width=8)
        meta = BundleMetadata(architecture="resnet_s", input_size=32, alignment="arcface",
                              threshold=Threshold(value=0.15, far=0.01, frr=0.05))
        path = tmp_path_factory.mktemp("cli-bundle") / key
        TrainableBundle(model, meta).save(path)
        out[key] = path
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for name, pid in (("ann", 1), ("bob", 2)):
        (root / "people" / name).mkdir(parents=True)
        for v in (1, 2):
            (root / "people" / name / f"{v}.png").write_bytes(png_bytes(person_image(pid, v)))
    (root / "probes").mkdir()
    (root / "probes" / "ann.png").write_bytes(png_bytes(person_image(1, 7)))
    (root / "probes" / "stranger.png").write_bytes(png_bytes(person_image(9, 1)))
    (root / "bad.jpg").write_text("not a photo")
    return root


@pytest.fixture(scope="module")
def enrolled_db(tmp_path_factory, bundles, photos):
    """A gallery with ann and bob (two photos each) embedded by model A."""
    from facever.api import FaceVerifier
    from facever.gallery import Gallery

    path = tmp_path_factory.mktemp("enrolled") / "gallery.db"
    with Gallery(f"sqlite:///{path}", verifier=FaceVerifier(model=bundles["A"], detector=StubDetector())) as g:
        reports = list(g.enroll_dir(photos / "people"))
    assert [r.enrolled for r in reports] == [2, 2]
    return path


@pytest.fixture
def db(tmp_path, enrolled_db):
    path = tmp_path / "copy.db"
    shutil.copy(enrolled_db, path)
    return f"sqlite:///{path}"


def test_enroll_json_skips_known_images_and_reports_rejections(tmp_path, bundles, photos):
    db = f"sqlite:///{tmp_path / 'new.db'}"
    ann = photos / "people" / "ann"
    res = invoke("enroll", "Ann O'Neil", ann / "1.png", ann / "2.png", "--db", db, "--model", bundles["A"], "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (data["person"], data["enrolled"], data["skipped"], data["rejected"]) == ("Ann O'Neil", 2, 0, 0)
    assert data["images"][0]["source"] == str(ann / "1.png")

    res = invoke("enroll", "Ann O'Neil", ann / "1.png", photos / "bad.jpg", "--db", db, "--model", bundles["A"])
    assert res.exit_code == 3  # partial: one photo rejected, the other done (skipped as already enrolled)
    assert "0 enrolled, 1 skipped, 1 rejected" in res.stdout
    assert "already enrolled" in res.stdout and "bad.jpg" in res.stdout

    res = invoke("enroll", "nobody", "--db", db)
    assert res.exit_code == 2 and "at least one IMAGE" in one_error_line(res)


def test_enroll_from_dir(tmp_path, bundles, photos):
    db = f"sqlite:///{tmp_path / 'new.db'}"
    res = invoke("enroll", "--from-dir", photos / "people", "--db", db, "--model", bundles["A"])
    assert res.exit_code == 0, res.output
    assert "ann: 2 enrolled" in res.stdout and "bob: 2 enrolled" in res.stdout and "2 people" in res.stdout
    res = invoke("enroll", "--from-dir", photos / "people", "--db", db, "--model", bundles["A"], "--json")
    data = json.loads(res.stdout)
    assert res.exit_code == 0 and (data["enrolled"], data["skipped"]) == (0, 4)
    assert [p["person"] for p in data["people"]] == ["ann", "bob"]


def test_duplicate_identity_exit_2_unless_allowed(db, bundles, photos):
    probe = photos / "probes" / "ann.png"
    res = invoke("enroll", "impostor", probe, "--db", db, "--model", bundles["A"])
    assert res.exit_code == 2 and "enrolled person 'ann'" in one_error_line(res)
    res = invoke("enroll", "impostor", probe, "--db", db, "--model", bundles["A"], "--allow-duplicate", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["enrolled"] == 1


def test_enroll_warns_about_a_look_alike_in_text_and_json(db, bundles, photos):
    """Past the duplicate gate (overridden here), a face within the identification threshold of 'ann'
    is enrolled with a warning naming her; a stranger brings none."""
    probe = photos / "probes" / "ann.png"
    res = invoke("enroll", "impostor", probe, "--db", db, "--model", bundles["A"], "--allow-duplicate", "--json")
    assert res.exit_code == 0
    body = json.loads(res.stdout)
    assert [a["name"] for a in body["look_alikes"]] == ["ann"]
    alike = body["look_alikes"][0]
    assert alike["source"] == str(probe) and 0 <= alike["distance"] <= alike["threshold"]
    res = invoke("enroll", "impostor2", probe, "--db", db, "--model", bundles["A"], "--allow-duplicate")
    assert res.exit_code == 0
    warnings = [line for line in res.stdout.splitlines() if "warning:" in line]
    assert len(warnings) == 2 and "looks like enrolled person 'ann'" in res.stdout  # ann and impostor
    res = invoke("enroll", "stranger", photos / "probes" / "stranger.png", "--db", db, "--model", bundles["A"],
                 "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["look_alikes"] == []


def test_identify_files_and_folders(db, bundles, photos):
    res = invoke("identify", photos / "probes", photos / "bad.jpg", "--db", db, "--model", bundles["A"],
                 "--top-k", "1", "--json")
    assert res.exit_code == 3  # partial: one photo failed, the others are still reported
    data = json.loads(res.stdout)
    by_image = {im["image"]: im for im in data["images"]}
    known = by_image[str(photos / "probes" / "ann.png")]["faces"][0]
    assert known["person"] == "ann" and known["distance"] < 0.15 and len(known["candidates"]) == 1
    stranger = by_image[str(photos / "probes" / "stranger.png")]["faces"][0]
    assert stranger["person"] is None and stranger["distance"] > 0.15
    assert "not a" in by_image[str(photos / "bad.jpg")]["error"] or "bad.jpg" in by_image[str(photos / "bad.jpg")]["error"]
    assert data["threshold"] == 0.15

    res = invoke("identify", photos / "probes" / "ann.png", photos / "probes" / "stranger.png", "--db", db,
                 "--model", bundles["A"], "-k", "2")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert "ann.png: ann" in lines[0] and lines[1].count(",") == 1
    assert "stranger.png: unknown" in res.stdout


def test_people_commands_need_no_model(db, monkeypatch, tmp_path):
    monkeypatch.setenv("FACEVER_MODEL", str(tmp_path / "no-model-here"))
    res = invoke("people", "list", "--db", db, "--json")
    assert res.exit_code == 0 and [(p["name"], p["faces"]) for p in json.loads(res.stdout)["people"]] == [("ann", 2), ("bob", 2)]
    res = invoke("people", "show", "ann", "--db", db, "--json")
    assert res.exit_code == 0 and len(json.loads(res.stdout)["faces"]) == 2
    assert invoke("people", "rename", "ann", "Ann [Smith]", "--db", db).exit_code == 0
    res = invoke("people", "list", "--db", db)
    assert "Ann [Smith]" in res.stdout and "2 people, 4 faces" in res.stdout
    res = invoke("people", "rename", "Ann [Smith]", "bob", "--db", db)
    assert res.exit_code == 2 and "already enrolled" in one_error_line(res)
    # no terminal (CliRunner's stdin is not one): one clean line, nothing removed, no question printed
    res = invoke("people", "remove", "bob", "--db", db)
    assert res.exit_code == 2 and "--yes" in one_error_line(res) and "[y/N]" not in res.output
    assert "bob" in invoke("people", "list", "--db", db).stdout
    # at a terminal, "n" keeps the person (exit 1: the answer was no)
    monkeypatch.setattr("facever_cli.people._interactive", lambda: True)
    res = invoke("people", "remove", "bob", "--db", db, input="n\n")
    assert res.exit_code == 1 and "bob" in invoke("people", "list", "--db", db).stdout
    res = invoke("people", "remove", "bob", "--db", db, "--yes", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout) == {"removed": "bob", "faces": 2}
    res = invoke("people", "show", "bob", "--db", db)
    assert res.exit_code == 2 and "no person named 'bob'" in one_error_line(res)


def test_db_upgrade_check_backup(tmp_path, db):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    res = invoke("db", "upgrade", "--db", fresh, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["changed"] is True
    assert "already at revision" in invoke("db", "upgrade", "--db", fresh).stdout

    res = invoke("db", "check", "--db", db, "--json")
    report = json.loads(res.stdout)
    assert res.exit_code == 0 and report["ok"] and report["counts"]["faces"] == 4 and report["integrity"] == ["ok"]
    assert "ok" in invoke("db", "check", "--db", db).stdout

    dest = tmp_path / "backup.db"
    res = invoke("db", "backup", dest, "--db", db, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["bytes"] == dest.stat().st_size
    res = invoke("db", "backup", dest, "--db", db)
    assert res.exit_code == 2 and "already exists" in one_error_line(res)
    assert invoke("db", "backup", dest, "--db", db, "--force").exit_code == 0
    assert invoke("db", "check", "--db", f"sqlite:///{dest}", "--json").exit_code == 0

    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    res = invoke("db", "check", "--db", f"sqlite:///{corrupt}")
    assert res.exit_code == 2 and "corrupt" in one_error_line(res)
    res = invoke("db", "check", "--db", f"sqlite:///{tmp_path / 'missing.db'}")
    assert res.exit_code == 2 and "no gallery at" in one_error_line(res)
    res = invoke("db", "backup", tmp_path / "pg.db", "--db", "postgresql://u@127.0.0.1:1/x")
    assert res.exit_code == 2 and "pg_dump" in one_error_line(res)


def test_model_change_needs_reindex(db, bundles, photos):
    probe = photos / "probes" / "ann.png"
    res = invoke("identify", probe, "--db", db, "--model", bundles["B"])
    assert res.exit_code == 2 and "facever reindex" in one_error_line(res)
    res = invoke("reindex", "--db", db, "--model", bundles["B"], "--json", "--prune")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) | {"model_version": ""} == {"model_version": "", "embedded": 4, "total": 4, "pruned": 4}
    res = invoke("identify", probe, "--db", db, "--model", bundles["B"], "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["images"][0]["faces"][0]["person"] == "ann"


def test_verify_against_an_enrolled_person(db, bundles, photos):
    probe = photos / "probes" / "ann.png"
    assert invoke("verify", probe, "--person", "ann", "--db", db, "--model", bundles["A"]).exit_code == 0
    assert invoke("verify", probe, "--person", "bob", "--db", db, "--model", bundles["A"]).exit_code == 1


@pytest.mark.parametrize("command", [
    ["identify", "{probe}", "--model", "{model}"], ["verify", "{probe}", "--person", "ann", "--model", "{model}"],
    ["people", "list"], ["people", "show", "ann"], ["db", "check"], ["db", "backup", "{tmp}/copy.db"]])
def test_read_commands_never_create_a_gallery(command, tmp_path, bundles, photos):
    missing = tmp_path / "typo" / "gallery.db"
    args = [a.format(probe=photos / "probes" / "ann.png", model=bundles["A"], tmp=tmp_path) for a in command]
    res = invoke(*args, "--db", f"sqlite:///{missing}")
    assert res.exit_code == 2
    assert one_error_line(res) == f"error: no gallery at {missing}; enroll someone first"
    assert not missing.parent.exists()
    # the default location too (FACEVER_HOME, set by the stub_detector fixture)
    res = invoke(*args)
    assert res.exit_code == 2 and "no gallery at" in one_error_line(res) and "enroll someone first" in res.stderr
    assert not (tmp_path / "home").exists()


def test_only_enroll_and_db_upgrade_create_a_gallery(tmp_path, bundles, photos):
    first = tmp_path / "a" / "first.db"
    res = invoke("enroll", "ann", photos / "people" / "ann" / "1.png", "--db", f"sqlite:///{first}", "--model", bundles["A"])
    assert res.exit_code == 0 and first.is_file()
    second = tmp_path / "b" / "second.db"
    assert invoke("db", "upgrade", "--db", f"sqlite:///{second}").exit_code == 0 and second.is_file()
    res = invoke("people", "list", "--db", f"sqlite:///{second}", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout) == {"people": []}


def test_identify_reports_its_threshold_and_annotates(tmp_path, db, bundles, photos):
    import cv2

    probe = photos / "probes" / "ann.png"
    out = tmp_path / "named.jpg"
    res = invoke("identify", probe, "--db", db, "--model", bundles["A"], "--annotate", out, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (data["threshold"], data["threshold_policy"], data["expected_fpir"]) == (0.15, "tau", None)
    assert data["gallery"] == {"people": 2, "faces": 4} and "no open-set calibration" in data["note"]
    face = data["images"][0]["faces"][0]
    assert face["person"] == "ann" and face["threshold_policy"] == "tau" and "expected_fpir" in face
    assert data["images"][0]["annotated"] == str(out)
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape == (112, 112, 3)  # the probe's size
    res = invoke("identify", probe, "--db", db, "--model", bundles["A"])
    assert res.exit_code == 0 and "threshold 0.1500 (tau)" in res.stdout.splitlines()[-1]
    # several photos: --annotate takes a folder, one picture per photo
    folder = tmp_path / "named"
    res = invoke("identify", photos / "probes", "--db", db, "--model", bundles["A"], "--annotate", folder)
    assert res.exit_code == 0 and sorted(p.name for p in folder.iterdir()) == ["ann.jpg", "stranger.jpg"]
    res = invoke("identify", photos / "probes", "--db", db, "--model", bundles["A"], "--annotate", tmp_path / "x.jpg")
    assert res.exit_code == 2 and "give a folder" in one_error_line(res)
    # a target FPIR needs a model calibrated for it
    res = invoke("identify", probe, "--db", db, "--model", bundles["A"], "--fpir", "0.01")
    assert res.exit_code == 2 and "no open-set calibration" in one_error_line(res)
    res = invoke("identify", probe, "--db", db, "--model", bundles["A"], "--fpir", "1.5")
    assert res.exit_code == 2 and "--fpir" in one_error_line(res)


def test_identify_with_an_open_set_calibrated_model(tmp_path, db, bundles, photos):
    """Model A with open-set data calibrated on 300 synthetic people seen through it: the threshold
    follows the gallery size and the FPIR target."""
    from facever.api import FaceVerifier
    from facever.open_set import impostor_distribution, threshold_for_gallery

    verifier = FaceVerifier(model=bundles["A"], detector=StubDetector())
    labels = [p for p in range(100, 400) for _ in (1, 2)]
    emb = np.stack([verifier.embed(png_bytes(person_image(p, v))) for p, v in zip(labels, [1, 2] * 300)])
    data = impostor_distribution(emb, labels, description="300 synthetic people")
    model = tmp_path / "A-open-set"
    shutil.copytree(bundles["A"], model)
    meta = json.loads((model / "metadata.json").read_text())
    (model / "metadata.json").write_text(json.dumps({**meta, "open_set": data}))

    probe = photos / "probes" / "ann.png"
    res = invoke("identify", probe, "--db", db, "--model", model, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["threshold_policy"] == "open_set" and out["fpir_target"] == 0.01
    assert out["expected_fpir"] == pytest.approx(0.01, rel=1e-3)
    assert out["threshold"] == pytest.approx(threshold_for_gallery(data, 4, 2)[0], abs=1e-6)
    assert out["images"][0]["faces"][0]["threshold"] == out["threshold"]
    res = invoke("identify", probe, "--db", db, "--model", model, "--json", "--fpir", "0.3")
    loose = json.loads(res.stdout)
    assert loose["fpir_target"] == 0.3 and loose["threshold"] > out["threshold"]
    res = invoke("identify", probe, "--db", db, "--model", model, "--json", "--threshold", "0.1")
    fixed = json.loads(res.stdout)
    assert (fixed["threshold"], fixed["threshold_policy"]) == (0.1, "fixed") and fixed["expected_fpir"] is not None
    res = invoke("identify", probe, "--db", db, "--model", model)
    assert "expected FPIR 1.000%" in res.stdout and "2 people (4 faces)" in res.stdout


def test_people_show_montage(tmp_path, db):
    import cv2

    out = tmp_path / "ann.jpg"
    res = invoke("people", "show", "ann", "--db", db, "--montage", out, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["montage"] == str(out)
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape == (112, 224, 3)  # 2 crops: 1 row of 2 tiles of 112 px
    res = invoke("people", "show", "ann", "--db", db, "--montage", tmp_path / "nowhere" / "x.jpg")
    assert res.exit_code == 2 and "does not exist" in one_error_line(res)
    assert "montage of 2 face(s)" in invoke("people", "show", "ann", "--db", db, "--montage", out).stdout


@pytest.mark.parametrize("command", [["enroll"], ["identify"], ["reindex"], ["people", "list"], ["people", "show"],
                                     ["people", "rename"], ["people", "remove"], ["db", "upgrade"], ["db", "check"],
                                     ["db", "backup"]])
def test_every_command_has_help_with_an_example(command):
    res = invoke(*command, "--help")
    assert res.exit_code == 0 and "Example" in res.stdout and "facever " + command[0] in res.stdout
