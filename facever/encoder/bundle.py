"""Model bundles: a trained encoder plus the metadata needed to use and trust it.

A bundle is a directory holding

* ``model.keras``: the Keras 3 model (architecture + weights; only built-in layers), loaded with
  ``safe_mode=True``; no pickle anywhere.
* ``metadata.json``: architecture, input size, preprocessing, embedding dimension, the verification
  threshold τ with the FAR/FRR it gave on its calibration set, evaluation figures, training data and
  settings, and an optional logistic "same person" head (coefficients as JSON numbers).

The model *version* is the SHA-256 of ``model.keras`` (first 16 hex digits): it changes whenever the
weights change and is what stored embeddings are tagged with.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facever.errors import ModelError, NoModelError

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


@dataclass
class Threshold:
    """A calibrated decision threshold on the Euclidean distance between unit embeddings.

    Attributes:
        value: τ in [0, 2]; pairs with distance ≤ τ are "same".
        far: false accept rate at τ on the calibration pairs, in [0, 1].
        frr: false reject rate at τ on the calibration pairs, in [0, 1].
        target: how τ was chosen, e.g. ``"far=0.001"`` or ``"best_accuracy"``.
        calibration_set: description of the pairs used (who, how many).
        n_genuine / n_impostor: number of calibration pairs of each kind.
    """

    value: float
    far: float | None = None
    frr: float | None = None
    target: str = ""
    calibration_set: str = ""
    n_genuine: int = 0
    n_impostor: int = 0


@dataclass
class BundleMetadata:
    """Everything about a model except its weights (stored as ``metadata.json``)."""

    architecture: str
    input_size: int
    embedding_dim: int = 128
    preprocessing: str = "align 5-point to ArcFace template (size x size), RGB uint8 values 0..255; model rescales to [-1, 1]"
    flip_tta: bool = True
    threshold: Threshold | None = None
    identify_threshold: Threshold | None = None
    verification_head: dict[str, Any] | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BundleMetadata":
        data = dict(data)
        if data.get("format_version", 1) > FORMAT_VERSION:
            raise ModelError(f"model bundle format {data['format_version']} is newer than this facever supports")
        for key in ("threshold", "identify_threshold"):
            if data.get(key) is not None:
                data[key] = Threshold(**data[key])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def file_version(path: Path) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class ModelBundle:
    """A loaded bundle: ``model`` (keras.Model), ``metadata`` and ``version``."""

    def __init__(self, model, metadata: BundleMetadata, version: str, path: Path | None = None) -> None:
        self.model = model
        self.metadata = metadata
        self.version = version
        self.path = path

    def save(self, directory: str | os.PathLike[str]) -> str:
        """Write the bundle to ``directory`` atomically (created or replaced); return the version."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=directory.parent))
        try:
            self.model.save(tmp / MODEL_FILE)
            (tmp / METADATA_FILE).write_text(json.dumps(self.metadata.to_json(), indent=2, sort_keys=True))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.version = file_version(directory / MODEL_FILE)
        self.path = directory
        return self.version

    def save_metadata(self) -> None:
        """Rewrite only ``metadata.json`` (e.g. after calibration); the version is unchanged."""
        if self.path is None:
            raise ModelError("bundle has no path yet; call save() first")
        tmp = self.path / (METADATA_FILE + ".tmp")
        tmp.write_text(json.dumps(self.metadata.to_json(), indent=2, sort_keys=True))
        os.replace(tmp, self.path / METADATA_FILE)


def read_metadata(directory: str | os.PathLike[str]) -> BundleMetadata:
    """Read only the metadata of a bundle (fast: no TensorFlow)."""
    directory = Path(directory)
    meta_path = directory / METADATA_FILE
    if not meta_path.is_file():
        raise NoModelError(f"{directory}: no model bundle here (missing {METADATA_FILE})")
    try:
        return BundleMetadata.from_json(json.loads(meta_path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{meta_path}: unreadable model metadata ({exc})") from exc


def load_bundle(directory: str | os.PathLike[str]) -> ModelBundle:
    """Load a bundle with Keras safe mode. Raises :class:`NoModelError` / :class:`ModelError`."""
    directory = Path(directory)
    if not directory.exists():
        raise NoModelError(f"{directory}: model bundle not found")
    metadata = read_metadata(directory)
    model_file = directory / MODEL_FILE
    if not model_file.is_file():
        raise NoModelError(f"{directory}: no trained model here (missing {MODEL_FILE})")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    try:
        model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for a bad archive
        raise ModelError(f"{model_file}: cannot load model ({exc})") from exc
    out_dim = int(model.output_shape[-1])
    if out_dim != metadata.embedding_dim:
        raise ModelError(f"{directory}: model outputs {out_dim} dims but metadata says {metadata.embedding_dim}")
    return ModelBundle(model, metadata, file_version(model_file), directory)
