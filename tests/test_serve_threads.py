"""``facever serve`` sizes numpy's BLAS to one thread per request (cli/serve.py), unless told otherwise."""

from __future__ import annotations

import os

import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from facever_cli import serve as serve_cmd  # noqa: E402


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def restore_blas():
    import numpy  # noqa: F401  (loads the BLAS whose threads are checked)

    controller = threadpoolctl.ThreadpoolController()
    limits = controller.info()
    yield
    for lib in limits:
        controller.select(filepath=lib["filepath"]).limit(limits=lib["num_threads"])


def test_blas_gets_facever_threads_in_this_process_and_in_workers(monkeypatch, restore_blas):
    for var in serve_cmd.BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FACEVER_THREADS", "1")
    threadpoolctl.threadpool_limits(limits=2, user_api="blas")
    if not _blas_threads() or max(_blas_threads()) < 2:
        pytest.skip("this BLAS runs single-threaded anyway")
    serve_cmd._limit_blas_threads()
    assert _blas_threads() and set(_blas_threads()) == {1}
    assert all(os.environ[var] == "1" for var in serve_cmd.BLAS_THREAD_VARS)  # what spawned workers inherit


def test_a_blas_setting_of_the_user_is_kept(monkeypatch, restore_blas):
    for var in serve_cmd.BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    threadpoolctl.threadpool_limits(limits=2, user_api="blas")
    before = _blas_threads()
    serve_cmd._limit_blas_threads()
    assert _blas_threads() == before
    assert os.environ["OPENBLAS_NUM_THREADS"] == "2" and "OMP_NUM_THREADS" not in os.environ
