"""Encoder architectures: aligned RGB crop → 128-d L2-normalised embedding.

Every network takes ``(S, S, 3)`` float input with pixel values in [0, 255] (RGB, as produced by
:func:`facever.alignment.align_face`); scaling to [-1, 1] happens inside the model, so the saved
bundle carries its own preprocessing. The output is ``(embedding_dim,)`` float32 with unit L2 norm.
Only built-in Keras layers are used, so bundles load in Keras safe mode without custom objects.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, act: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if act else x


def _residual_block(x, filters: int, stride: int, name: str):
    """Basic ResNet block (two 3×3 convs) with a 1×1 projection when the shape changes."""
    shortcut = x
    y = _conv_bn(x, filters, 3, stride, f"{name}_a")
    y = _conv_bn(y, filters, 3, 1, f"{name}_b", act=False)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_proj", act=False)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def _embedding_head(x, embedding_dim: int, dropout: float):
    """Flatten the last feature map (keeps the face layout), project to the embedding, normalise."""
    x = layers.BatchNormalization(name="head_bn0")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Flatten(name="head_flatten")(x)
    x = layers.Dense(embedding_dim, use_bias=False, name="head_dense")(x)
    x = layers.BatchNormalization(name="head_bn1")(x)
    return layers.UnitNormalization(axis=-1, name="embedding", dtype="float32")(x)


def resnet_s(input_size: int = 96, embedding_dim: int = 128, width: int = 32, dropout: float = 0.2) -> keras.Model:
    """A small ResNet for the CPU: stride-2 stem, three stages of two residual blocks.

    Widths ``width × (1, 2, 4, 8)``; spatial size ``S/2 → S/4 → S/8 → S/16``. About 3.8 M
    parameters at ``width=32`` and ``input_size=96``.
    """
    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    x = _conv_bn(x, width, 3, 2, "stem")
    for stage, mult in enumerate((2, 4, 8), start=1):
        x = _residual_block(x, width * mult, 2, f"s{stage}b1")
        x = _residual_block(x, width * mult, 1, f"s{stage}b2")
    outputs = _embedding_head(x, embedding_dim, dropout)
    return keras.Model(inputs, outputs, name="resnet_s")


def _inverted_residual(x, expand: int, filters: int, stride: int, name: str):
    """MobileNetV2 block: 1×1 expand, 3×3 depthwise, 1×1 linear bottleneck, residual when shapes match."""
    inp = x
    ch = x.shape[-1]
    y = _conv_bn(x, ch * expand, 1, 1, f"{name}_expand")
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(y)
    y = layers.BatchNormalization(name=f"{name}_dw_bn")(y)
    y = layers.ReLU(name=f"{name}_dw_relu")(y)
    y = _conv_bn(y, filters, 1, 1, f"{name}_project", act=False)
    if stride == 1 and ch == filters:
        y = layers.Add(name=f"{name}_add")([y, inp])
    return y


def mobile_s(input_size: int = 96, embedding_dim: int = 128, width: int = 32, dropout: float = 0.2) -> keras.Model:
    """A MobileFaceNet-like net of depthwise-separable inverted residuals (fewer FLOPs, ~1 M params)."""
    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    x = _conv_bn(x, width, 3, 2, "stem")
    plan = [(2, width * 2, 2), (2, width * 2, 1), (4, width * 4, 2), (2, width * 4, 1),
            (4, width * 8, 2), (2, width * 8, 1)]
    for i, (expand, filters, stride) in enumerate(plan):
        x = _inverted_residual(x, expand, filters, stride, f"ir{i}")
    outputs = _embedding_head(x, embedding_dim, dropout)
    return keras.Model(inputs, outputs, name="mobile_s")


#: Architecture name → builder ``(input_size, embedding_dim, width, dropout) → keras.Model``.
ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"resnet_s": resnet_s, "mobile_s": mobile_s}


def build_encoder(architecture: str = "resnet_s", input_size: int = 96, embedding_dim: int = 128,
                  width: int = 32, dropout: float = 0.2) -> keras.Model:
    """Build an encoder by name (see :data:`ARCHITECTURES`)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {sorted(ARCHITECTURES)}")
    if input_size < 32 or input_size % 16:
        raise ValueError(f"input_size must be a multiple of 16 and >= 32, got {input_size}")
    return ARCHITECTURES[architecture](input_size=input_size, embedding_dim=embedding_dim, width=width, dropout=dropout)
