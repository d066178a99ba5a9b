"""CLI: `facever evaluate --data` on folder-per-person photos and `facever train --init` argument errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facever_cli.app import app

runner = CliRunner()


@pytest.fixture
def people(tmp_path, astronaut, grace_hopper):
    """Two real people, two photos each (Eileen Collins; Grace Hopper), and a photo without a face."""
    root = tmp_path / "people"
    variants = {
        "ann": [astronaut, np.clip(astronaut.astype(np.float32) * 0.8, 0, 255).astype(np.uint8)],
        "bob": [grace_hopper, cv2.GaussianBlur(grace_hopper, (0, 0), 1.0)],
        "cid": [np.full((120, 120, 3), 128, np.uint8)],  # no face: a failed image
    }
    for name, images in variants.items():
        (root / name).mkdir(parents=True)
        for i, im in enumerate(images):
            cv2.imwrite(str(root / name / f"{i}.png"), cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2BGR))
    return root


def test_evaluate_on_own_folders(people, tmp_path):
    res = runner.invoke(app, ["evaluate", "--data", str(people), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["n_people"] == 3 and data["n_images"] == 5 and data["failed_images"] == 1
    assert data["n_genuine"] == 2 and data["n_impostor"] == 8
    # the shipped model separates them: every genuine pair accepted, every impostor pair rejected at τ
    assert data["pair_accuracy"] == 1.0 and data["roc_auc"] == 1.0
    assert data["at_threshold"]["far"] == 0.0 and data["at_threshold"]["frr"] == 0.0
    only = tmp_path / "only.txt"
    only.write_text("ann\nbob\n")
    res = runner.invoke(app, ["evaluate", "--data", str(people), "--people", str(only), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["n_images"] == 4
    only.write_text("nobody\n")
    res = runner.invoke(app, ["evaluate", "--data", str(people), "--people", str(only)])
    assert res.exit_code == 2 and "no person folders" in res.output


def test_train_init_needs_a_data_folder(tmp_path, people):
    res = runner.invoke(app, ["train", "--init", "default", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--data" in res.output
    res = runner.invoke(app, ["train", "--init", "default", "--data", str(tmp_path / "absent"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a folder" in res.output
    # three people, one of them without a face: too few to hold any out
    res = runner.invoke(app, ["train", "--init", "default", "--data", str(people), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 2 and "error" in json.loads(res.stdout)
    assert not (tmp_path / "o" / "bundle").exists()


def test_train_refuses_the_other_modes_options(tmp_path, people):
    out = str(tmp_path / "o")
    res = runner.invoke(app, ["train", "--init", "default", "--data", str(people), "--lfw", str(people),
                              "--input-size", "64", "--out", out])
    assert res.exit_code == 2 and "--lfw, --input-size: not an option of fine-tuning (--init)" in res.stderr
    res = runner.invoke(app, ["train", "--data", str(people), "--distill", "2", "--out", out])
    assert res.exit_code == 2 and "--distill: not an option of training from scratch" in res.stderr
    assert not (tmp_path / "o").exists()
