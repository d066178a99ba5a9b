"""The distribution lists every package of the tree, so `pip install .` ships all of facever."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_facever_package_is_listed_in_pyproject():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "facever").rglob("__init__.py")
               if "__pycache__" not in p.parts}
    assert on_disk <= listed, f"packages missing from pyproject.toml: {sorted(on_disk - listed)}"
    data = config["package-data"]
    assert "static/*" in data["facever.service"] and (ROOT / "facever/service/static/index.html").is_file()


def test_the_shipped_bundle_ships_its_weights_once():
    """The inference wheel carries the graph and its metadata only: training rebuilds the Keras model
    from the graph's initializers (facever.training.onnx_weights), so no weights.npz rides along."""
    shipped = {p.name for p in (ROOT / "models" / "default").iterdir() if p.is_file()}
    assert shipped == {"encoder.onnx", "metadata.json"}, sorted(shipped)
