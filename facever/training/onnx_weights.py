"""The trainable Keras copy of a bundle, derived from its ONNX graph's initializers (training side).

A bundle saved with ``half=True`` (the shipped model) stores its weights once, in ``encoder.onnx``.
:func:`keras_from_onnx` rebuilds the bundle's architecture in Keras and copies the graph's
initializers into it, layer by layer in graph order:

* ``Conv`` (weight ``(O, I/g, kh, kw)``, possibly stored float16 behind a ``Cast``) → ``Conv2D``
  kernel ``(kh, kw, I, O)``, or ``DepthwiseConv2D`` kernel ``(kh, kw, C, m)`` when ``group`` = C;
  its bias as is;
* ``Mul`` by a ``(1, C, 1, 1)`` constant then ``Add`` of one → a frozen ``BatchNormalization``
  with epsilon 0 (dlib's ``affine_``): gamma = the scale, beta = the offset, mean 0, variance 1,
  which is exactly how :func:`facever.training.pretrained.load_dlib_weights` fills it;
* ``MatMul`` by a ``(K, D)`` constant (then ``Add`` of a ``(D,)`` bias when the layer has one) →
  ``Dense``.

The copy is exact (the same float32 values), and it is checked: the Keras model must reproduce
the graph's embeddings (:data:`PARITY_TOLERANCE`) or :class:`~facever.errors.ModelError` is raised.
A trainable batch-norm cannot be derived: the graph folds its four arrays into a scale and an
offset (``gamma / sqrt(var + eps)``, ``beta - mean * scale``), so :func:`derivable` says no and
such bundles keep ``model.keras`` or ``weights.npz`` (see :mod:`facever.training.bundle`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facever.errors import ModelError

from facever.training.export import EXPORT_TOLERANCE as PARITY_TOLERANCE  # |Keras − onnxruntime| accepted


def _weighted_layers(model) -> list:
    """The layers of ``model`` that hold weights, in model order."""
    return [layer for layer in model.layers if layer.weights]


def _frozen_affine(layer) -> bool:
    """A BatchNormalization that computes exactly ``gamma * x + beta`` (mean 0, variance 1,
    epsilon 0) and is never trained: the graph's scale and offset determine it."""
    return not layer.trainable and float(layer.epsilon) == 0.0 and layer.center and layer.scale


def derivable(model) -> bool:
    """True when every weighted layer of ``model`` can be recovered exactly from an exported graph
    (convolutions, dense layers, frozen epsilon-0 batch-norms)."""
    import keras

    for layer in _weighted_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            if not _frozen_affine(layer):
                return False
        elif type(layer) not in (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense):
            return False
    return True


def graph_layers(graph) -> list[tuple[str, list[np.ndarray]]]:
    """The weighted operations of an ONNX ``graph`` (a ``ModelProto``), in graph order:
    ``("conv", [kernel OIHW, bias?])``, ``("depthwise", [kernel OIHW, bias?])``,
    ``("affine", [scale (C,), offset (C,)])`` and ``("dense", [kernel (K, D), bias?])``; float32."""
    from onnx import helper, numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    consts = dict(inits)
    for node in graph.graph.node:  # float16 initializers cast to float32 at load
        if node.op_type == "Cast" and node.input[0] in inits:
            consts[node.output[0]] = inits[node.input[0]].astype(np.float32)
    consumers: dict[str, list] = {}
    for node in graph.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def const_input(node):
        found = [consts[n] for n in node.input if n in consts]
        return found[0] if len(found) == 1 else None

    def only_consumer(node, op: str):
        after = consumers.get(node.output[0], [])
        return after[0] if len(after) == 1 and after[0].op_type == op else None

    out: list[tuple[str, list[np.ndarray]]] = []
    used: set[int] = set()  # ids of the Add nodes already taken as a bias or an offset
    for node in graph.graph.node:
        if id(node) in used:
            continue
        if node.op_type == "Conv" and node.input[1] in consts:
            group = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
            bias = [consts[node.input[2]]] if len(node.input) > 2 and node.input[2] else []
            arrays = [consts[node.input[1]]] + bias
            out.append(("conv" if group == 1 else "depthwise", [a.astype(np.float32) for a in arrays]))
        elif node.op_type == "Mul" and const_input(node) is not None:
            add = only_consumer(node, "Add")
            if add is None or const_input(add) is None:
                raise ModelError(f"graph node {node.name}: a constant Mul without a constant Add after it")
            used.add(id(add))
            out.append(("affine", [const_input(node).reshape(-1).astype(np.float32),
                                   const_input(add).reshape(-1).astype(np.float32)]))
        elif node.op_type == "MatMul" and const_input(node) is not None:
            arrays = [const_input(node).astype(np.float32)]
            add = only_consumer(node, "Add")
            if add is not None and const_input(add) is not None:
                used.add(id(add))
                arrays.append(const_input(add).reshape(-1).astype(np.float32))
            out.append(("dense", arrays))
    return out


def _assign(layer, kind: str, arrays: list[np.ndarray]) -> None:
    """Copy one graph operation's ``arrays`` into the Keras ``layer`` (layouts in the module doc)."""
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D) and kind == "depthwise":
        kernel = arrays[0]
        channels = int(layer.kernel.shape[2])
        kernel = kernel.reshape(channels, -1, *kernel.shape[2:]).transpose(2, 3, 0, 1)
        values = [kernel] + arrays[1:]
    elif type(layer) is keras.layers.Conv2D and kind == "conv":
        values = [arrays[0].transpose(2, 3, 1, 0)] + arrays[1:]
    elif isinstance(layer, keras.layers.BatchNormalization) and kind == "affine" and _frozen_affine(layer):
        c = arrays[0].shape[0]
        values = [arrays[0], arrays[1], np.zeros(c, np.float32), np.ones(c, np.float32)]
    elif isinstance(layer, keras.layers.Dense) and kind == "dense":
        values = arrays
    else:
        raise ModelError(f"layer {layer.name} ({type(layer).__name__}) does not match the graph's next "
                         f"weighted operation ({kind})")
    want = [tuple(w.shape) for w in layer.weights]
    if [tuple(v.shape) for v in values] != want:
        raise ModelError(f"layer {layer.name}: graph arrays {[v.shape for v in values]} vs Keras {want}")
    layer.set_weights(values)


def keras_from_onnx(path: str | os.PathLike[str], metadata):
    """Rebuild ``metadata.architecture`` in Keras with the weights of the ONNX graph at ``path``.

    Args:
        path: an ``encoder.onnx`` written by :func:`facever.training.export.export_encoder`.
        metadata: the bundle's :class:`~facever.bundle.BundleMetadata` (architecture, input size,
            embedding size).
    Returns:
        the Keras model (input ``(S, S, 3)`` RGB 0..255, output ``(D,)`` float32 unit vectors).
    Raises:
        ModelError: unreadable graph, an architecture that cannot be derived (see :func:`derivable`),
            graph and architecture out of step, or embeddings that differ by more than
            :data:`PARITY_TOLERANCE`.
    """
    import onnx

    from facever.training.export import check_parity
    from facever.training.network import build_encoder

    path = Path(path)
    try:
        graph = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError...
        raise ModelError(f"{path}: cannot read the graph ({exc})") from exc
    model = build_encoder(metadata.architecture, input_size=metadata.input_size, embedding_dim=metadata.embedding_dim)
    if not derivable(model):
        raise ModelError(f"{path}: a {metadata.architecture} network cannot be rebuilt from its graph (its "
                         "batch-norms are folded into the convolutions' scale and offset); this bundle needs "
                         "model.keras or weights.npz to be trained further")
    ops = graph_layers(graph)
    layers = _weighted_layers(model)
    if len(ops) != len(layers):
        raise ModelError(f"{path}: the graph has {len(ops)} weighted operations, a {metadata.architecture} "
                         f"network {len(layers)} weighted layers")
    for layer, (kind, arrays) in zip(layers, ops):
        _assign(layer, kind, arrays)
    try:
        check_parity(model, graph.SerializeToString())  # raises above PARITY_TOLERANCE
    except ModelError as exc:
        raise ModelError(f"{path}: the Keras model rebuilt from the graph does not reproduce it ({exc})") from exc
    return model


def graph_is_half(path: str | os.PathLike[str]) -> bool:
    """True when the ONNX graph at ``path`` stores float16 initializers (a ``half=True`` bundle)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
