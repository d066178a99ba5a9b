"""The trainable Keras copy of the shipped model is derived from its ONNX graph (no weights.npz).

``facever train --init default`` starts from :func:`facever.training.bundle.load_trainable`, which
rebuilds the dlib ResNet from ``encoder.onnx``'s initializers: its embeddings must be the graph's,
on real face crops, and saving it compactly again must give the same graph, byte for byte.
Skipped without the training extra (TensorFlow, onnx).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("onnx")

from facever import config  # noqa: E402
from facever.api import FaceVerifier  # noqa: E402
from facever.bundle import ENCODER_FILE, MODEL_FILE, load_bundle  # noqa: E402
from facever.errors import ModelError  # noqa: E402
from facever.training.bundle import WEIGHTS_FILE, load_trainable  # noqa: E402
from facever.training.onnx_weights import derivable, graph_layers  # noqa: E402


@pytest.fixture(scope="module")
def derived():
    """The shipped bundle's trainable model, rebuilt from its graph."""
    return load_trainable(config.packaged_model_dir())


def test_the_shipped_bundle_holds_its_weights_once(derived):
    directory = config.packaged_model_dir()
    assert not (directory / WEIGHTS_FILE).exists() and not (directory / MODEL_FILE).exists()
    assert derived.half and derived.version == load_bundle(directory).version
    assert derivable(derived.model)


def test_derived_keras_model_embeds_real_crops_like_the_graph(derived, astronaut, grace_hopper):
    verifier = FaceVerifier()
    crops = np.stack([verifier.faces(astronaut)[0].crop, verifier.faces(grace_hopper)[0].crop,
                      verifier.faces(np.ascontiguousarray(astronaut[:, ::-1]))[0].crop]).astype(np.float32)
    noise = np.random.default_rng(0).uniform(0, 255, (2, *crops.shape[1:])).astype(np.float32)
    x = np.concatenate([crops, noise])
    graph = verifier.bundle.encoder(x)
    keras_out = np.asarray(derived.model(x, training=False))
    assert float(np.abs(graph - keras_out).max()) < 1e-4
    # and not by accident: the crops are far apart, so a wrong weight would show
    assert float(np.abs(keras_out[0] - keras_out[1]).max()) > 1e-2


def test_saving_the_derived_model_compactly_rebuilds_the_same_graph(derived, tmp_path):
    """Fine-tuning saves compactly what it loaded compactly: no weights.npz, and the unchanged
    model exports to the very same graph, byte for byte (only the file header's producer name,
    "facever.encoder.export" when the model was built, now "facever.training.export", differs)."""
    import onnx

    derived.save(tmp_path / "again", half=True)
    assert not (tmp_path / "again" / WEIGHTS_FILE).exists() and not (tmp_path / "again" / MODEL_FILE).exists()
    shipped = onnx.load(str(config.packaged_model_dir() / ENCODER_FILE))
    again = onnx.load(str(tmp_path / "again" / ENCODER_FILE))
    assert again.graph.SerializeToString() == shipped.graph.SerializeToString()
    assert [(o.domain, o.version) for o in again.opset_import] == [(o.domain, o.version) for o in shipped.opset_import]


def test_graph_layers_are_read_in_order():
    import onnx

    ops = graph_layers(onnx.load(str(config.packaged_model_dir() / ENCODER_FILE)))
    kinds = [k for k, _ in ops]
    assert kinds[:3] == ["depthwise", "conv", "affine"] and kinds[-1] == "dense"
    assert kinds.count("conv") == 29 and kinds.count("affine") == 29
    assert ops[1][1][0].shape == (32, 3, 7, 7) and ops[-1][1][0].shape == (256, 128)


def test_a_network_with_trainable_batch_norms_is_not_rebuilt_from_its_graph(tiny_bundle_dir, tmp_path):
    """resnet_s's graph folds trainable batch-norms (four arrays each) into a scale and an offset:
    it cannot be rebuilt from it, and a bundle with nothing else is refused, saying so."""
    import shutil

    trainable = load_trainable(tiny_bundle_dir)
    assert not derivable(trainable.model) and not trainable.half
    shutil.copytree(tiny_bundle_dir, tmp_path / "graph-only")
    (tmp_path / "graph-only" / MODEL_FILE).unlink()
    with pytest.raises(ModelError, match="cannot be rebuilt from its graph"):
        load_trainable(tmp_path / "graph-only")
