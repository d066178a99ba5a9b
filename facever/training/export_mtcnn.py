"""Export the three MTCNN networks of the ``mtcnn`` package (1.0.0) to ONNX graphs.

The graphs let :class:`facever.mtcnn_onnx.OnnxMTCNNDetector` detect faces with onnxruntime, NumPy and
OpenCV only (no TensorFlow at inference time). This module, and only this module, imports TensorFlow:
it builds the package's Keras stage models with their shipped weights and converts each with
``tf2onnx.convert.from_function``.

Every graph has exactly one float32 input named ``image`` (NHWC, values already normalised to
``(pixel - 127.5) / 128``) and named outputs, in this order:

============  =====================  ==========================================================
graph         input ``image``        outputs
============  =====================  ==========================================================
pnet.onnx     ``(N, H, W, 3)``       ``bbox_reg`` ``(N, h, w, 4)``, ``prob`` ``(N, h, w, 2)``
rnet.onnx     ``(N, 24, 24, 3)``     ``bbox_reg`` ``(N, 4)``, ``prob`` ``(N, 2)``
onet.onnx     ``(N, 48, 48, 3)``     ``bbox_reg`` ``(N, 4)``, ``landmarks`` ``(N, 10)``,
                                     ``prob`` ``(N, 2)``
============  =====================  ==========================================================

``prob`` is the softmax over (not face, face); ``landmarks`` holds the five x then the five y
coordinates, relative to the box. PNet keeps batch, height and width dynamic; RNet and ONet keep the
batch dynamic. Consumers should fetch outputs by name, not position.

Usage::

    python -m facever.training.export_mtcnn OUT_DIR
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

#: Output names per stage, in the order the Keras models return them.
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {
    "pnet": ("bbox_reg", "prob"),
    "rnet": ("bbox_reg", "prob"),
    "onet": ("bbox_reg", "landmarks", "prob"),
}
#: Input shape per stage (``None`` = dynamic).
INPUT_SHAPES: dict[str, tuple[int | None, ...]] = {
    "pnet": (None, None, None, 3),
    "rnet": (None, 24, 24, 3),
    "onet": (None, 48, 48, 3),
}
INPUT_NAME = "image"
_OUTPUT_WIDTHS = {"bbox_reg": 4, "landmarks": 10, "prob": 2}
OPSET = 17


def _keras_models() -> dict:
    """The package's three stage models, built and loaded with their shipped weights."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mtcnn.stages import StageONet, StagePNet, StageRNet

    return {"pnet": StagePNet().model, "rnet": StageRNet().model, "onet": StageONet().model}


def _rename_outputs(model_proto, names: tuple[str, ...]) -> None:
    """Give the graph outputs ``names`` (in order), rewiring the nodes that produce them."""
    graph = model_proto.graph
    if len(graph.output) != len(names):
        raise RuntimeError(f"expected {len(names)} outputs, got {[o.name for o in graph.output]}")
    for out, new in zip(graph.output, names):
        old = out.name
        if old == new:
            continue
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == old:
                    node.output[i] = new
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
        out.name = new


def _name_dynamic_dims(model_proto, name: str) -> None:
    """Replace tf2onnx's ``unk__N`` symbolic dimensions with readable names."""
    graph = model_proto.graph
    in_names = ("batch", "height", "width") if name == "pnet" else ("batch",)
    out_names = ("batch", "out_height", "out_width") if name == "pnet" else ("batch",)
    for values, names in ((graph.input, in_names), (graph.output, out_names)):
        for value in values:
            dims = value.type.tensor_type.shape.dim
            for dim, dim_name in zip(dims, names):
                if not dim.HasField("dim_value"):
                    dim.dim_param = dim_name


def _convert(name: str, model):
    import tensorflow as tf
    import tf2onnx

    spec = tf.TensorSpec(INPUT_SHAPES[name], tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def forward(image):
        return tuple(model(image))

    model_proto, _ = tf2onnx.convert.from_function(forward, input_signature=[spec], opset=OPSET)
    graph = model_proto.graph
    inputs = [i.name for i in graph.input]
    if len(inputs) != 1:
        raise RuntimeError(f"{name}: expected exactly one graph input, got {inputs}")
    _rename_outputs(model_proto, OUTPUT_NAMES[name])
    if inputs[0] != INPUT_NAME:
        old = inputs[0]
        for node in graph.node:
            for i, n in enumerate(node.input):
                if n == old:
                    node.input[i] = INPUT_NAME
        graph.input[0].name = INPUT_NAME
    for out in graph.output:  # the renaming followed the Keras output order: check it by width
        width = out.type.tensor_type.shape.dim[-1].dim_value
        if width != _OUTPUT_WIDTHS[out.name]:
            raise RuntimeError(f"{name}: output {out.name} has width {width}, expected {_OUTPUT_WIDTHS[out.name]}")
    _name_dynamic_dims(model_proto, name)
    model_proto.producer_name = "facever.training.export_mtcnn"
    model_proto.doc_string = f"MTCNN {name.upper()} from the mtcnn 1.0.0 package weights"
    import onnx

    onnx.checker.check_model(model_proto)
    return model_proto


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def export_mtcnn(out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``pnet.onnx``, ``rnet.onnx`` and ``onet.onnx`` into ``out_dir`` (created if missing).

    Each file is written to a temporary file in ``out_dir`` first and then renamed over the target,
    so a reader never sees a half-written graph.

    Returns:
        ``{"pnet": path, "rnet": path, "onet": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, model in _keras_models().items():
        proto = _convert(name, model)
        path = out / f"{name}.onnx"
        _write_atomic(path, proto.SerializeToString())
        paths[name] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m facever.training.export_mtcnn OUT_DIR", file=sys.stderr)
        return 2
    for name, path in export_mtcnn(argv[0]).items():
        print(f"{name}: {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
