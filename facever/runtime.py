"""The light inference runtime: exported ONNX graphs on onnxruntime (never TensorFlow).

onnxruntime runs with one intra-op thread by default: on a small shared CPU its default thread pool
was erratic, and one image at a time leaves little to split. ``FACEVER_THREADS`` or the ``threads``
argument raise it (batched enrolment gains from two).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from facever.errors import ModelError


def default_threads() -> int:
    """onnxruntime intra-op threads: ``FACEVER_THREADS`` or 1."""
    try:
        return max(1, int(os.environ.get("FACEVER_THREADS", "1")))
    except ValueError:
        return 1


def onnx_session(path, threads: int | None = None):
    """An ``onnxruntime.InferenceSession`` on the CPU, quiet (errors only), sequential execution.

    Args:
        path: the graph file: a path, or an :mod:`importlib.resources` traversable (package data).
        threads: intra-op threads (default :func:`default_threads`).
    Raises:
        ModelError: the file is missing or not a loadable ONNX graph (the message names it).
    """
    import onnxruntime as ort

    path = path if hasattr(path, "read_bytes") else Path(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model graph ({exc.strerror or exc})") from exc
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        raise ModelError(f"{path}: not a valid ONNX graph ({str(exc).splitlines()[0][:200]})") from exc


class OnnxEncoder:
    """An exported encoder graph: ``(N, S, S, 3)`` float32 RGB 0..255 → ``(N, D)`` float32.

    The session is created on the first call (so loading a bundle to read its metadata is free).
    The graph must have exactly one input (the exporter checks it).
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self._session = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Create the session now (raises :class:`ModelError` for a bad graph)."""
        self._get()

    def _get(self):
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = onnx_session(self.path, self.threads)
                    inputs = session.get_inputs()
                    if len(inputs) != 1:
                        raise ModelError(f"{self.path}: encoder graph has {len(inputs)} inputs, expected 1")
                    self._input = inputs[0].name
                    self._session = session
        return self._session

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        session = self._get()
        return session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})[0]
