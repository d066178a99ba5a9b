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


# ----------------------------------------------------------------------------------------------
# dlib's face-recognition ResNet (imported weights: see facever.training.pretrained)
# ----------------------------------------------------------------------------------------------

#: dlib's input means (R, G, B), subtracted before dividing by 256.
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)


def _dlib_conv(x, filters: int, kernel: int, stride: int, name: str):
    """dlib ``con_``: stride-1 convs pad by k//2 ("same"), strided ones do not pad ("valid")."""
    return layers.Conv2D(filters, kernel, strides=stride, padding="same" if stride == 1 else "valid",
                         use_bias=True, name=name)(x)


def _dlib_affine(x, name: str):
    """dlib ``affine_`` (a frozen batch-norm): ``gamma * x + beta`` per channel.

    A BatchNormalization layer with mean 0, variance 1 and epsilon 0 computes exactly that; it is
    built non-trainable, so Keras always runs it in inference mode (batch statistics would break the
    imported network).
    """
    return layers.BatchNormalization(epsilon=0.0, center=True, scale=True, trainable=False, name=name)(x)


def _pad_to(x, height: int, width: int, channels: int, name: str):
    """Zero-fill ``x`` at the bottom, right and in extra channels up to the given shape (dlib add_prev)."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    if (h, w) != (height, width):
        x = layers.ZeroPadding2D(((0, height - h), (0, width - w)), name=f"{name}_padhw")(x)
    if c != channels:
        x = layers.Reshape((height, width, c, 1), name=f"{name}_r1")(x)
        x = layers.ZeroPadding3D(((0, 0), (0, 0), (0, channels - c)), name=f"{name}_padc")(x)
        x = layers.Reshape((height, width, channels), name=f"{name}_r2")(x)
    return x


def _dlib_block(x, filters: int, down: bool, name: str):
    """``relu(add_prev(affine(con3(relu(affine(con3_s(x))))), shortcut))``; down: stride 2 and an
    average-pool shortcut with zero-filled extra channels, no projection."""
    y = _dlib_conv(x, filters, 3, 2 if down else 1, f"{name}_conv1")
    y = _dlib_affine(y, f"{name}_affine1")
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _dlib_conv(y, filters, 3, 1, f"{name}_conv2")
    y = _dlib_affine(y, f"{name}_affine2")
    shortcut = layers.AveragePooling2D(2, strides=2, padding="valid", name=f"{name}_pool")(x) if down else x
    h = max(y.shape[1], shortcut.shape[1])
    w = max(y.shape[2], shortcut.shape[2])
    c = max(y.shape[3], shortcut.shape[3])
    y = _pad_to(y, h, w, c, f"{name}_main")
    shortcut = _pad_to(shortcut, h, w, c, f"{name}_short")
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


#: Stages of dlib's ResNet, input side first: (filters, number of blocks, first block is a down block).
DLIB_STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


def dlib_resnet(input_size: int = 150, embedding_dim: int = 128, normalize: bool = True, **_: object) -> keras.Model:
    """dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``), rebuilt in Keras.

    Input ``(150, 150, 3)`` float RGB in [0, 255] (a dlib-geometry face chip); the model scales it by
    ``(x - DLIB_MEAN_RGB) / 256`` itself (a fixed 1×1 depthwise conv, so exported graphs have one
    input and no normalisation statistics to feed). 29 conv layers, 5.6 M parameters; spatial sizes
    150 → 72 → 35 → 17 → 8 → 4 → 2. Output ``(128,)`` float32: unit L2 norm when ``normalize``,
    else dlib's raw descriptor. Weights come from :func:`facever.training.pretrained.load_dlib_weights`.
    """
    if input_size != 150:
        raise ValueError(f"dlib_resnet takes 150x150 chips, got input_size={input_size}")
    inputs = keras.Input((input_size, input_size, 3), name="face")
    x = layers.DepthwiseConv2D(1, use_bias=True, trainable=False, name="input_scale")(inputs)
    x = _dlib_conv(x, 32, 7, 2, "stem_conv")
    x = _dlib_affine(x, "stem_affine")
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem_pool")(x)
    for stage, (filters, blocks, down) in enumerate(DLIB_STAGES):
        for b in range(blocks):
            x = _dlib_block(x, filters, down and b == 0, f"s{stage}b{b}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(embedding_dim, use_bias=False, name="fc", dtype="float32")(x)
    if normalize:
        x = layers.UnitNormalization(axis=-1, name="embedding", dtype="float32")(x)
    return keras.Model(inputs, x, name="dlib_resnet")


#: Architecture name → builder ``(input_size, embedding_dim, width, dropout) → keras.Model``.
ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"resnet_s": resnet_s, "mobile_s": mobile_s,
                                                       "dlib_resnet": dlib_resnet}


def build_encoder(architecture: str = "resnet_s", input_size: int = 96, embedding_dim: int = 128,
                  width: int = 32, dropout: float = 0.2) -> keras.Model:
    """Build an encoder by name (see :data:`ARCHITECTURES`)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {sorted(ARCHITECTURES)}")
    if architecture == "dlib_resnet":
        return dlib_resnet(input_size=input_size, embedding_dim=embedding_dim)
    if input_size < 32 or input_size % 16:
        raise ValueError(f"input_size must be a multiple of 16 and >= 32, got {input_size}")
    return ARCHITECTURES[architecture](input_size=input_size, embedding_dim=embedding_dim, width=width, dropout=dropout)
