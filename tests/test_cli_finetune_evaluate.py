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
def people(tmp_path, astronaut):
    root = tmp_path / "people"
    variants = {
        "ann": [astronaut, np.clip(astronaut.astype(np.float32) * 0.8, 0, 255).astype(np.uint8)],
        "bob": [astronaut[:, ::-1], cv2.GaussianBlur(astronaut, (0, 0), 1.0)],
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
    assert 0.0 <= data["pair_accuracy"] <= 1.0 and "at_threshold" in data
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
