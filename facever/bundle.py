"""Model bundles: a trained encoder plus the metadata needed to use and trust it (inference side).

A bundle is a directory holding

* ``encoder.onnx``: the encoder exported once at build time, run by onnxruntime at inference
  (this module never imports TensorFlow);
* ``model.keras``: the trainable Keras 3 model (only built-in layers, loaded with ``safe_mode=True``;
  no pickle anywhere), used by training, fine-tuning and export (:mod:`facever.training.bundle`);
* ``metadata.json``: architecture, input size, alignment template, preprocessing, embedding
  dimension, the verification threshold τ with the FAR/FRR it gave on its calibration set, the
  open-set impostor distribution, the liveness thresholds (``facever.liveness``), evaluation figures, provenance of imported weights, training data
  and settings, and an optional logistic "same person" head (coefficients as JSON numbers).

The model *version* is the SHA-256 of ``encoder.onnx`` (first 16 hex digits), folded with the
test-time views (``view_zooms``) when they are not the plain crop: it changes whenever the weights or
the views change, i.e. whenever the embeddings would, and is what stored embeddings are tagged with.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facever.errors import ModelError, NoModelError

MODEL_FILE = "model.keras"
ENCODER_FILE = "encoder.onnx"
METADATA_FILE = "metadata.json"
#: Bundle format. 2: ``alignment`` recorded; 3: ``view_zooms`` (test-time views); 4: no fixed
#: ``identify_threshold`` (identification uses the open-set data, else τ). An older facever refuses a
#: newer format; this one reads every older format (see :meth:`BundleMetadata.from_json`).
FORMAT_VERSION = 4


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
    """Everything about a model except its weights (stored as ``metadata.json``).

    ``alignment`` (required, keyword-only) names the crop template of the model's input
    (:data:`facever.alignment.TEMPLATES`: ``"dlib"`` for the default model, ``"arcface"`` for the
    from-scratch encoders); ``input_size`` is the crop side in pixels. Identification thresholds come
    from ``open_set`` (gallery-size aware), else from ``threshold`` (τ).
    """

    architecture: str
    input_size: int
    alignment: str = field(kw_only=True)
    embedding_dim: int = 128
    preprocessing: str = "align 5-point to the alignment template (size x size), RGB values 0..255; the model scales them itself"
    flip_tta: bool = True
    view_zooms: list[float] = field(default_factory=lambda: [1.0])
    threshold: Threshold | None = None
    verification_head: dict[str, Any] | None = None
    open_set: dict[str, Any] | None = None
    liveness: dict[str, Any] | None = None  # facever.liveness thresholds + the error rates they gave; not in the version
    source: dict[str, Any] | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BundleMetadata":
        """Metadata from its JSON dict, migrated to the current format (written back as such).

        Rules for older formats:

        * no ``alignment`` field: only format-1 bundles lack it; they predate the dlib template, and
          their crops are the ArcFace layout, so they read as ``"arcface"``. From format 2 on the field
          is required (a file without it is refused);
        * ``identify_threshold`` (formats ≤ 3, the fixed identification threshold) is read but
          ignored: identification uses the open-set data, else τ.

        Raises :class:`ModelError` for a newer format, a format ≥ 2 without ``alignment``, or bad
        ``view_zooms``.
        """
        data = dict(data)
        fmt = data.get("format_version", 1)
        if fmt > FORMAT_VERSION:
            raise ModelError(f"model bundle format {data['format_version']} is newer than this facever supports")
        if "alignment" not in data:
            if fmt >= 2:
                raise ModelError(f"model metadata (format {fmt}) does not name its alignment template")
            data["alignment"] = "arcface"
        data.pop("identify_threshold", None)  # formats ≤ 3: read, and ignored
        data["format_version"] = FORMAT_VERSION
        zooms = data.get("view_zooms", [1.0])
        if (not isinstance(zooms, list) or not zooms
                or not all(isinstance(z, (int, float)) and not isinstance(z, bool) and 0.5 <= z <= 2.0 for z in zooms)):
            raise ModelError(f"view_zooms must be a non-empty list of numbers in [0.5, 2], got {zooms!r}")
        if data.get("threshold") is not None:
            data["threshold"] = Threshold(**data["threshold"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def file_version(path: Path) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def model_version(graph: Path, metadata: BundleMetadata, digest: str | None = None) -> str:
    """Version of a bundle: :func:`file_version` of its graph (``digest`` when the caller has it),
    folded with ``metadata.view_zooms`` when they differ from ``[1.0]`` (first 16 hex digits of a SHA-256)."""
    version = digest or file_version(graph)
    zooms = [float(z) for z in metadata.view_zooms]
    if zooms == [1.0]:
        return version
    return hashlib.sha256(f"{version} view_zooms={json.dumps(zooms)}".encode()).hexdigest()[:16]


class ModelBundle:
    """A loaded bundle for inference: ``encoder`` (callable), ``metadata``, ``version``, ``path``.

    ``encoder(batch)`` maps ``(N, S, S, 3)`` float32 RGB crops (values 0..255, the bundle's alignment
    template at ``S = metadata.input_size``) to ``(N, D)`` float32 embeddings. :func:`load_bundle`
    gives an :class:`facever.runtime.OnnxEncoder` (onnxruntime); tests may pass any callable.
    """

    def __init__(self, encoder, metadata: BundleMetadata, version: str, path: Path | None = None) -> None:
        self.encoder = encoder
        self.metadata = metadata
        self.version = version
        self.path = path

    def save_metadata(self) -> None:
        """Rewrite only ``metadata.json`` (e.g. after calibration); the version is unchanged unless
        ``view_zooms`` changed (they are part of it: reload the bundle then)."""
        if self.path is None:
            raise ModelError("bundle has no path yet; save it first")
        write_metadata(self.path, self.metadata)


def write_metadata(directory: str | os.PathLike[str], metadata: BundleMetadata) -> None:
    """Write ``metadata.json`` of a bundle directory atomically."""
    path = Path(directory) / METADATA_FILE
    tmp = path.with_name(METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(metadata.to_json(), indent=2, sort_keys=True))
    os.replace(tmp, path)


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


def open_bundle(directory: str | os.PathLike[str]) -> tuple[Path, BundleMetadata]:
    """``(directory, metadata)`` of an existing bundle. Raises :class:`NoModelError` / :class:`ModelError`."""
    directory = Path(directory)
    if not directory.exists():
        raise NoModelError(f"{directory}: model bundle not found")
    return directory, read_metadata(directory)


def load_bundle(directory: str | os.PathLike[str], threads: int | None = None) -> ModelBundle:
    """Load a bundle's metadata and its exported encoder graph (onnxruntime; no TensorFlow).

    Args:
        directory: the bundle directory.
        threads: onnxruntime intra-op threads (default ``FACEVER_THREADS`` or 1).
    Raises:
        NoModelError: no bundle there, or it has no exported encoder.
        ModelError: unreadable metadata or graph.
    """
    from facever.runtime import OnnxEncoder

    directory, metadata = open_bundle(directory)
    graph = directory / ENCODER_FILE
    if not graph.is_file():
        raise NoModelError(f"{directory}: no exported encoder here (missing {ENCODER_FILE}); "
                           "run `facever export` on a bundle trained with facever[train]")
    digest = file_version(graph)  # hashed once: the version, and the key of the graph's optimised copy
    encoder = OnnxEncoder(graph, threads=threads, digest=digest)
    encoder.load()  # a corrupt graph fails here, naming the file, not at the first face
    return ModelBundle(encoder, metadata, model_version(graph, metadata, digest), directory)
