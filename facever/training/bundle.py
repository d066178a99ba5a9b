"""Model bundles on the training side: save a Keras encoder with its exported graph, load it back.

:class:`TrainableBundle` couples a Keras model with its :class:`~facever.bundle.BundleMetadata`.
``save`` writes ``model.keras`` (for further training), exports ``encoder.onnx`` (what inference
runs, :mod:`facever.training.export`) and ``metadata.json``, into a temporary directory that then
replaces the target, so a failed save never leaves a half-written bundle. A compact (``half``)
bundle keeps its weights once, in ``encoder.onnx``, when the network can be rebuilt from the graph
(:mod:`facever.training.onnx_weights`: the shipped dlib ResNet), else in ``weights.npz`` too. The
inference side reads bundles with :func:`facever.bundle.load_bundle` and never imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facever.bundle import (ENCODER_FILE, METADATA_FILE, MODEL_FILE, BundleMetadata, Threshold, file_version, model_version,
                            open_bundle, read_metadata, write_metadata)
from facever.errors import ModelError, NoModelError

#: Compact trainable weights: float16 arrays ``w0000``, ``w0001``... in ``model.get_weights()`` order.
#: Written only for networks that cannot be rebuilt from their ONNX graph (see ``save``).
WEIGHTS_FILE = "weights.npz"

__all__ = ["TrainableBundle", "load_trainable", "WEIGHTS_FILE", "BundleMetadata", "Threshold", "read_metadata", "file_version",
           "METADATA_FILE", "MODEL_FILE", "ENCODER_FILE"]


class TrainableBundle:
    """A Keras ``model`` (float32 unit embeddings) with its ``metadata``; ``version`` once saved;
    ``half``: loaded from a compact (float16) bundle, so saved compact again by fine-tuning."""

    def __init__(self, model, metadata: BundleMetadata, path: Path | None = None, version: str = "",
                 half: bool = False) -> None:
        self.model = model
        self.metadata = metadata
        self.path = path
        self.version = version
        self.half = half

    def save(self, directory: str | os.PathLike[str], half: bool = False) -> str:
        """Write the bundle to ``directory`` atomically (created or replaced); return the version.

        With ``half`` the weights are rounded to float16 and stored compactly, without
        ``model.keras``: as float16 initializers in ``encoder.onnx``, from which
        :func:`load_trainable` rebuilds the Keras model exactly (what the shipped model uses; see
        :func:`~facever.training.onnx_weights.derivable`); a network that cannot be rebuilt from its
        graph (trainable batch-norms) also gets ``weights.npz`` (float16 arrays).
        """
        directory = Path(directory)
        from facever.training.atomic import atomic_directory
        from facever.training.export import export_encoder, round_weights_to_half

        with atomic_directory(directory) as tmp:
            if half:
                from facever.training.onnx_weights import derivable

                round_weights_to_half(self.model)
                if not derivable(self.model):
                    weights = self.model.get_weights()
                    np.savez(tmp / WEIGHTS_FILE, **{f"w{i:04d}": w.astype(np.float16) for i, w in enumerate(weights)})
            else:
                self.model.save(tmp / MODEL_FILE)
            export_encoder(self.model, tmp / ENCODER_FILE, half=half)
            write_metadata(tmp, self.metadata)
        self.path = directory
        self.half = half
        self.version = model_version(directory / ENCODER_FILE, self.metadata)
        return self.version

    def save_metadata(self) -> None:
        """Rewrite only ``metadata.json``; the version is unchanged unless ``view_zooms`` changed."""
        if self.path is None:
            raise ModelError("bundle has no path yet; call save() first")
        write_metadata(self.path, self.metadata)


def load_trainable(directory: str | os.PathLike[str]) -> TrainableBundle:
    """Load a bundle's trainable Keras model and metadata, for training or export.

    The model comes from ``model.keras`` (Keras safe mode), else from ``weights.npz``, else it is
    rebuilt from ``encoder.onnx`` (:func:`~facever.training.onnx_weights.keras_from_onnx`; the
    shipped model, whose graph holds its only copy of the weights).

    Raises:
        NoModelError: no bundle, or none of those files there.
        ModelError: unreadable metadata or model, or a graph this architecture cannot be rebuilt from.
    """
    directory, metadata = open_bundle(directory)
    model_file = directory / MODEL_FILE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    half = not model_file.is_file()
    if (directory / WEIGHTS_FILE).is_file() and not model_file.is_file():
        model = _from_weights(directory / WEIGHTS_FILE, metadata)
    elif not model_file.is_file() and (directory / ENCODER_FILE).is_file():
        from facever.training.onnx_weights import graph_is_half, keras_from_onnx

        model = keras_from_onnx(directory / ENCODER_FILE, metadata)
        half = graph_is_half(directory / ENCODER_FILE)
    elif not model_file.is_file():
        raise NoModelError(f"{directory}: no trainable model here (missing {MODEL_FILE}, {WEIGHTS_FILE} "
                           f"and {ENCODER_FILE})")
    else:
        import keras

        try:
            model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
        except Exception as exc:  # keras raises many types for a bad archive
            raise ModelError(f"{model_file}: cannot load model ({exc})") from exc
    out_dim = int(model.output_shape[-1])
    if out_dim != metadata.embedding_dim:
        raise ModelError(f"{directory}: model outputs {out_dim} dims but metadata says {metadata.embedding_dim}")
    version = model_version(directory / ENCODER_FILE, metadata) if (directory / ENCODER_FILE).is_file() else ""
    return TrainableBundle(model, metadata, directory, version, half=half)


def _from_weights(path: Path, metadata: BundleMetadata):
    """Rebuild ``metadata.architecture`` and load compact float16 weights (no pickle)."""
    from facever.training.network import build_encoder

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = [data[k].astype(np.float32) for k in sorted(data.files)]
        model = build_encoder(metadata.architecture, input_size=metadata.input_size,
                              embedding_dim=metadata.embedding_dim)
        model.set_weights(arrays)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{path}: cannot load weights ({exc})") from exc
    return model
