"""Export a Keras encoder to the ONNX graph the inference runtime loads (build time, TensorFlow).

The graph has exactly one input, ``face``: ``(N, S, S, 3)`` float32 RGB values 0..255 (the models
scale their input with plain layers, so no normalisation statistics become extra graph inputs), and
one output, ``embedding``: ``(N, D)`` float32. :func:`export_encoder` checks the graph against Keras
on random crops before writing it (atomically).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from facever.errors import ModelError

OPSET = 17
#: Written into every exported graph. The model version hashes the whole file, so this string is part
#: of every shipped model's identity: it keeps the name of the module that first wrote it (0.3.0's
#: ``facever.encoder.export``) so that a rebuild gives the same version. Never change it.
PRODUCER_NAME = "facever.encoder.export"
#: Largest |Keras − onnxruntime| accepted on unit embeddings when exporting.
EXPORT_TOLERANCE = 1e-5


def to_onnx_bytes(model, half: bool = False) -> bytes:
    """Convert ``model`` (input ``(S, S, 3)``) to ONNX bytes with tf2onnx (opset 17).

    With ``half`` the large weight tensors are stored as float16 and cast back to float32 when the
    graph loads (half the file; the arithmetic stays float32)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tf2onnx

    size = int(model.input_shape[1])
    spec = tf.TensorSpec((None, size, size, 3), tf.float32, name="face")

    @tf.function(input_signature=[spec])
    def forward(face):
        return {"embedding": model(face, training=False)}

    proto, _ = tf2onnx.convert.from_function(forward, input_signature=[spec], opset=OPSET)
    if len(proto.graph.input) != 1:
        raise ModelError(f"exported encoder has {len(proto.graph.input)} inputs, expected exactly 1")
    _canonical_names(proto)
    if half:
        _store_half(proto)
    proto.producer_name = PRODUCER_NAME
    proto.producer_version = ""
    return proto.SerializeToString()


def _canonical_names(proto) -> None:
    """Rename every node and internal value by position, so that the same weights always give the
    same bytes (tf2onnx names carry Keras' per-process layer counters, e.g. ``resnet_s_1``), and the
    bundle version (a hash of the file) depends on the network alone."""
    graph = proto.graph
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    mapping: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in mapping:
            mapping[name] = f"v{len(mapping)}"
        return mapping[name]

    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    inits = sorted(graph.initializer, key=lambda t: int(rename(t.name)[1:]))
    for init in inits:
        init.name = rename(init.name)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    del graph.value_info[:]
    graph.doc_string = ""
    for value in list(graph.input) + list(graph.output):
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param:
                dim.dim_param = "batch" if i == 0 else f"d{i}"


def _store_half(proto, min_size: int = 1024) -> None:
    """Store float32 initializers of at least ``min_size`` values as float16 + a Cast node."""
    import onnx
    from onnx import helper, numpy_helper

    graph = proto.graph
    casts, keep = [], []
    for init in graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.size >= min_size:
            half = numpy_helper.from_array(values.astype(np.float16), init.name + "_f16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=f"cast_{init.name}"))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def check_parity(model, graph: bytes, n: int = 4, seed: int = 0) -> float:
    """Max |Keras − onnxruntime| on ``n`` random crops; raises ModelError above the tolerance."""
    import onnxruntime as ort

    size = int(model.input_shape[1])
    x = np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = np.asarray(model(x, training=False))
    diff = float(np.abs(got - want).max())
    if not diff <= EXPORT_TOLERANCE:
        raise ModelError(f"exported encoder differs from Keras by {diff:.2e} (> {EXPORT_TOLERANCE})")
    return diff


def export_encoder(model, path: str | os.PathLike[str], half: bool = False) -> float:
    """Write ``model`` as an ONNX graph to ``path`` (atomically) after a parity check; return the max diff.

    With ``half`` the weights are stored as float16 (see :func:`to_onnx_bytes`): round the Keras
    model's weights to float16 first (:func:`round_weights_to_half`) for the parity check to hold."""
    path = Path(path)
    graph = to_onnx_bytes(model, half=half)
    diff = check_parity(model, graph)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(graph)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return diff


def round_weights_to_half(model) -> None:
    """Round every float32 weight of ``model`` to the nearest float16 value (kept as float32)."""
    model.set_weights([w.astype(np.float16).astype(np.float32) if w.dtype == np.float32 else w
                       for w in model.get_weights()])
