"""The optimised-graph cache of facever.runtime: made once, reused, identical outputs, never in the way."""

from __future__ import annotations

import numpy as np
import pytest

from facever import runtime
from facever.config import packaged_model_dir

GRAPH = packaged_model_dir().parent / "mtcnn" / "rnet.onnx"  # small, ships with the package


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "CACHE_MIN_BYTES", 0)  # cache even this small graph
    folder = tmp_path / "graphs"
    monkeypatch.setenv("FACEVER_GRAPH_CACHE", str(folder))
    return folder


def _outputs(session) -> list[np.ndarray]:
    x = np.random.default_rng(0).uniform(-1, 1, (5, 24, 24, 3)).astype(np.float32)
    return session.run(None, {"image": x})


def test_first_session_writes_the_optimised_graph_later_ones_load_it(cache, monkeypatch):
    reference = _outputs(runtime.onnx_session(GRAPH))
    files = list(cache.glob("*.ort"))
    assert len(files) == 1 and files[0].name.startswith(runtime.hashlib.sha256(GRAPH.read_bytes()).hexdigest()[:16])
    assert not list(cache.glob(".*"))  # no temporary file left behind
    loaded = []
    real = runtime._cached_session

    def spy(ort, data, options, folder, digest):
        session = real(ort, data, options, folder, digest)
        loaded.append(options.graph_optimization_level)
        return session

    monkeypatch.setattr(runtime, "_cached_session", spy)
    again = _outputs(runtime.onnx_session(GRAPH))
    assert loaded and loaded[0].name == "ORT_DISABLE_ALL"  # the cached graph is not optimised again
    for a, b in zip(reference, again):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv("FACEVER_GRAPH_CACHE", "off")
    for a, b in zip(reference, _outputs(runtime.onnx_session(GRAPH))):
        np.testing.assert_array_equal(a, b)


def test_a_damaged_entry_is_rebuilt(cache):
    runtime.onnx_session(GRAPH)
    (entry,) = cache.glob("*.ort")
    entry.write_bytes(b"garbage")
    reference = _outputs(runtime.onnx_session(GRAPH, 1))
    assert entry.stat().st_size > 1000 and reference[0].shape[0] == 5


def test_cache_off_or_unusable_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "CACHE_MIN_BYTES", 0)
    monkeypatch.setenv("FACEVER_GRAPH_CACHE", "off")
    assert runtime.graph_cache_dir() is None
    runtime.onnx_session(GRAPH)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    monkeypatch.setenv("FACEVER_GRAPH_CACHE", str(blocker / "graphs"))
    assert _outputs(runtime.onnx_session(GRAPH))[0].shape[0] == 5
    monkeypatch.delenv("FACEVER_GRAPH_CACHE")
    monkeypatch.setenv("FACEVER_CACHE", str(tmp_path / "c"))
    assert runtime.graph_cache_dir() == tmp_path / "c" / "onnx"


def test_old_entries_are_pruned(cache, monkeypatch):
    monkeypatch.setattr(runtime, "CACHE_KEEP", 2)
    cache.mkdir()
    for k in range(4):
        (cache / f"{k:016x}-{0:012x}.ort").write_bytes(b"x")
    (cache / f"{9:016x}-{0:012x}.onnx").write_bytes(b"x")  # an entry of an older facever: removed
    others = [cache / "my-model.onnx", cache / f".{1:016x}-{0:012x}.77.88.ort"]  # not ours / in flight
    for path in others:
        path.write_bytes(b"x")
    runtime.onnx_session(GRAPH)
    ours = [p for p in cache.glob("*") if runtime._ENTRY.match(p.name)]
    assert len(ours) == 2 and all(p.suffix == ".ort" for p in ours)
    assert all(p.exists() for p in others)


def test_a_known_digest_loads_the_cached_graph_without_reading_the_source(cache, tmp_path):
    """The encoder's digest is computed by the bundle loader: a cache hit does not read the graph again."""
    digest = runtime.hashlib.sha256(GRAPH.read_bytes()).hexdigest()[:16]
    reference = _outputs(runtime.onnx_session(GRAPH, digest=digest))

    class Unreadable:
        def read_bytes(self):
            raise AssertionError("the source graph was read on a cache hit")

    for a, b in zip(reference, _outputs(runtime.onnx_session(Unreadable(), digest=digest))):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AssertionError):
        runtime.onnx_session(Unreadable(), digest="0" * 16)  # a miss reads it


def test_the_shipped_model_version_is_the_hash_of_the_shipped_graph():
    from facever.bundle import file_version, load_bundle, model_version, read_metadata

    graph = packaged_model_dir() / "encoder.onnx"
    bundle = load_bundle(packaged_model_dir())
    assert bundle.encoder.digest == file_version(graph)
    assert bundle.version == model_version(graph, read_metadata(packaged_model_dir()))  # hashed afresh
