"""facever.config: the worker count that enrolment and batched encoding use."""

from __future__ import annotations

import os

import numpy as np
import pytest

from facever import config


def test_worker_threads_follow_the_environment_then_the_cpus(monkeypatch):
    monkeypatch.setenv("FACEVER_WORKERS", "3")
    assert config.worker_threads() == 3
    monkeypatch.setenv("FACEVER_WORKERS", "0")
    assert config.worker_threads() == 1
    monkeypatch.delenv("FACEVER_WORKERS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert config.worker_threads() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert config.worker_threads() == config.MAX_DEFAULT_WORKERS
    monkeypatch.setenv("FACEVER_WORKERS", "many")  # not a number: the CPUs decide
    assert config.worker_threads() == config.MAX_DEFAULT_WORKERS


def test_encoding_gives_the_same_vectors_with_any_number_of_workers(monkeypatch, astronaut):
    from facever.api import FaceVerifier

    embedder = FaceVerifier().embedder
    crops = np.stack([face.crop for face in embedder.find_faces(astronaut)] * 6)  # 12+ views: parallel
    out = {}
    for workers in ("1", "2", "5"):
        monkeypatch.setenv("FACEVER_WORKERS", workers)
        out[workers] = embedder.embed_crops(crops)
    np.testing.assert_allclose(out["2"], out["1"], atol=1e-6)
    np.testing.assert_allclose(out["5"], out["1"], atol=1e-6)
    assert out["1"].shape == (6, 128)
