"""The light inference runtime: exported ONNX graphs on onnxruntime (never TensorFlow).

onnxruntime runs with one intra-op thread by default: on a small shared CPU its default thread pool
was erratic, and one image at a time leaves little to split. ``FACEVER_THREADS`` or the ``threads``
argument raise it (batched enrolment gains from two).

Optimising a graph when its session is created (constant folding, fusions, the blocked NCHWc
layout) took ~65 ms of a cold ``facever verify`` for the encoder, and parsing the optimised graph
from ONNX's protobuf another ~10 ms. Every graph is therefore optimised once per machine and the
result kept in ``$FACEVER_CACHE/onnx`` (``FACEVER_GRAPH_CACHE``: another folder, or ``off``) in
onnxruntime's own ORT format (flatbuffers, quicker to load); later sessions load it with optimisation
off, without reading the source graph again when its content hash is known. The optimised graph is
specific to the CPU and the onnxruntime version, so both are part of its name, with the content hash
of the source graph. It is a cache, nothing else: the model version is still the hash of the shipped
graph, and the outputs are bit-identical to an optimise-at-load session.
"""

from __future__ import annotations

import hashlib
import os
import re
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


#: Graphs of at least this many bytes are optimised once and cached (every shipped graph is: the
#: three MTCNN stages load in 1-5 ms from the cache, 5-7 ms optimised at load).
CACHE_MIN_BYTES = 0

#: Cached optimised graphs kept (least recently used ones are removed).
CACHE_KEEP = 12

#: Suffix of cached graphs (onnxruntime's ORT format); older facever versions kept ``.onnx`` ones.
CACHE_SUFFIX = ".ort"


def onnx_session(path, threads: int | None = None, digest: str | None = None):
    """An ``onnxruntime.InferenceSession`` on the CPU, quiet (errors only), sequential execution.

    Args:
        path: the graph file: a path, or an :mod:`importlib.resources` traversable (package data).
        threads: intra-op threads (default :func:`default_threads`).
        digest: content hash of the file when the caller has it (names its cached optimised graph).
    Raises:
        ModelError: the file is missing or not a loadable ONNX graph (the message names it); on a
            cache hit with a known ``digest`` the source is not read, so a missing one goes unnoticed.
    """
    import onnxruntime as ort

    path = path if hasattr(path, "read_bytes") else Path(path)
    options = _session_options(ort, threads)
    cache = graph_cache_dir()
    if cache is not None and digest:
        session = _load_cached(ort, options, cache, digest)   # the source is not even read
        if session is not None:
            return session
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model graph ({exc.strerror or exc})") from exc
    if cache is not None and len(data) >= CACHE_MIN_BYTES:
        session = _cached_session(ort, data, options, cache, digest or hashlib.sha256(data).hexdigest()[:16])
        if session is not None:
            return session
    try:
        return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        raise ModelError(f"{path}: not a valid ONNX graph ({str(exc).splitlines()[0][:200]})") from exc


def _session_options(ort, threads: int | None):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return options


def graph_cache_dir() -> Path | None:
    """Folder of the optimised-graph cache: ``FACEVER_GRAPH_CACHE`` (``off``/``0``: none), else
    ``onnx`` in :func:`facever.config.cache_dir`."""
    env = os.environ.get("FACEVER_GRAPH_CACHE")
    if env is not None and env.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    if env:
        return Path(env).expanduser()
    from facever.config import cache_dir

    return cache_dir() / "onnx"


def _cpu_key() -> str:
    """Short hash of what an optimised graph depends on besides the graph: machine, CPU features,
    onnxruntime version."""
    import platform

    import onnxruntime as ort

    features = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            features = next((line for line in fh if line.startswith(("flags", "Features"))), None)
    except OSError:
        pass
    if features is None:  # not Linux: platform.processor() (on Linux it runs `uname -p` in a subprocess)
        features = platform.processor()
    text = f"{platform.machine()} {ort.__version__} {features.strip()}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _cache_entry(folder: Path, digest: str) -> Path:
    return folder / f"{digest}-{_cpu_key()}{CACHE_SUFFIX}"


def _load_cached(ort, options, folder: Path, digest: str):
    """A session on the cached optimised graph named by ``digest``, or None (missing or damaged: a
    damaged entry is removed, and the caller rebuilds it)."""
    cached = _cache_entry(folder, digest)
    if not cached.is_file():
        return None
    level = options.graph_optimization_level
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(cached), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception:  # a damaged cache entry: drop it and rebuild
        cached.unlink(missing_ok=True)
        options.graph_optimization_level = level
        return None
    try:
        os.utime(cached)  # recently used: kept by the pruning
    except OSError:
        pass
    return session


def _cached_session(ort, data: bytes, options, folder: Path, digest: str):
    """A session on the cached optimised graph of ``data`` (made and saved first when missing), or
    None when the cache cannot be used (the caller then optimises at load, as without a cache)."""
    session = _load_cached(ort, options, folder, digest)
    if session is not None:
        return session
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            return None
    except OSError:
        return None
    cached = _cache_entry(folder, digest)
    tmp = folder / f".{cached.stem}.{os.getpid()}.{threading.get_ident()}{CACHE_SUFFIX}"  # ORT needs the suffix
    options.optimized_model_filepath = str(tmp)
    options.add_session_config_entry("session.save_model_format", "ORT")
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        os.replace(tmp, cached)  # complete files only: concurrent processes each write their own tmp
    except Exception:
        tmp.unlink(missing_ok=True)
        return None
    finally:
        options.optimized_model_filepath = ""
    _prune(folder)
    return session


#: Names of cache entries: ``<source digest (16 hex)>-<CPU key (12 hex)>`` and the suffix.
_ENTRY = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{12}\.(ort|onnx)$")


def _prune(folder: Path) -> None:
    """Keep the :data:`CACHE_KEEP` most recently used optimised graphs. Only names this cache
    writes are touched: ONNX-format entries of older facever versions are removed, other writers'
    temporary files and anything else in the folder are left alone."""
    entries = []
    for path in folder.glob("*"):
        if not _ENTRY.match(path.name):
            continue
        try:
            if path.suffix != CACHE_SUFFIX:
                path.unlink(missing_ok=True)
            else:
                entries.append((path.stat().st_mtime, path))
        except OSError:  # removed meanwhile by another process
            continue
    for _, old in sorted(entries, reverse=True)[CACHE_KEEP:]:
        try:
            old.unlink(missing_ok=True)
        except OSError:
            pass


class OnnxEncoder:
    """An exported encoder graph: ``(N, S, S, 3)`` float32 RGB 0..255 → ``(N, D)`` float32.

    The session is created on the first call (so loading a bundle to read its metadata is free).
    The graph must have exactly one input (the exporter checks it).
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None, digest: str | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self.digest = digest
        self._session = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Create the session now (raises :class:`ModelError` for a bad graph)."""
        self._get()

    def _get(self):
        if self._session is None:
            with self._lock:
                if self._session is None:
                    session = onnx_session(self.path, self.threads, self.digest)
                    inputs = session.get_inputs()
                    if len(inputs) != 1:
                        raise ModelError(f"{self.path}: encoder graph has {len(inputs)} inputs, expected 1")
                    self._input = inputs[0].name
                    self._session = session
        return self._session

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        session = self._get()
        return session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})[0]
