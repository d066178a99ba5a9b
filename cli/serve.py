"""``facever serve``: run the HTTP API and the web page (FastAPI on uvicorn, the ``serve`` extra)."""

from __future__ import annotations

import importlib.util
import os
from typing import List, Optional

import typer

from .common import DB_OPTION, MODEL_OPTION, err, fail, handle_errors

#: Environment variables that size the BLAS / OpenMP thread pools (numpy's OpenBLAS, MKL).
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _parse_size(text: str) -> int:
    """``10MB``, ``512kB``, ``1048576`` → bytes (decimal units: kB = 1000)."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20}
    value = text.strip().lower()
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = value[len(number):].strip()
    if unit not in units:
        raise ValueError(f"--max-upload: unknown unit {unit!r} in {text!r}; use bytes, kB or MB (e.g. 10MB)")
    try:
        return int(float(number) * units[unit])
    except ValueError:
        raise ValueError(f"--max-upload: {text!r} is not a size (e.g. 10MB)") from None


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port."),
    db: Optional[str] = DB_OPTION,
    model: Optional[str] = MODEL_OPTION,
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes (each loads the model once)."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Accept requests without keys (loopback binds only)."),
    max_upload: str = typer.Option("10MB", "--max-upload", help="Largest accepted image (e.g. 10MB, 500kB)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1,
                                              help="Inferences at once per worker (default: the core count)."),
    queue: Optional[int] = typer.Option(None, "--queue", min=0,
                                        help="Requests waiting for a slot per worker before 503 (default: = concurrency)."),
    body_timeout: float = typer.Option(30.0, "--body-timeout", min=0.1, help="Seconds a request body may take to arrive (else 408)."),
    cors_origin: Optional[List[str]] = typer.Option(None, "--cors-origin", help="Allow this browser origin (repeatable; CORS is off by default)."),
    index: str = typer.Option("auto", "--index", help="Gallery search: exact, ann (faiss), pgvector (PostgreSQL) or auto."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Serve the HTTP API (/v1/...), the web page (/) and the API docs (/docs).

    Keys: create one first with `facever keys create NAME --scope verify,identify,enroll,admin`.
    Serving a non-loopback address needs at least one key; --no-auth works on loopback only.

    Examples:

        facever keys create kiosk --scope verify,identify

        facever serve --port 8000 --workers 2

        curl -H "Authorization: Bearer $KEY" -F image1=@a.jpg -F image2=@b.jpg http://127.0.0.1:8000/v1/verify
    """
    with handle_errors():
        # find_spec, not import: with --workers > 1 this process only supervises, and every worker
        # imports fastapi itself (importing it here delayed the workers by 0.3 s on 2 cores)
        for module in ("uvicorn", "fastapi"):
            if importlib.util.find_spec(module) is None:
                fail(f"`facever serve` needs the serve extra ({module} is not installed): pip install 'facever[serve]'")
        from facever.service.settings import SETTINGS_ENV, ServeSettings, default_concurrency, is_loopback

        if index not in ("exact", "ann", "pgvector", "auto"):
            fail(f"--index must be exact, ann, pgvector or auto, not {index!r}")
        settings = ServeSettings(host=host, port=port, db=db, model=model, workers=workers, no_auth=no_auth,
                                 max_upload=_parse_size(max_upload), concurrency=concurrency or default_concurrency(),
                                 queue=queue, body_timeout_s=body_timeout, cors_origins=list(cors_origin or []),
                                 index=index)
        settings.check()
        if not no_auth:
            _check_keys(settings, is_loopback(host))
        os.environ[SETTINGS_ENV] = settings.to_env()
        _limit_blas_threads()
    _run(settings, log_level)


def _limit_blas_threads() -> None:
    """Size BLAS like onnxruntime: ``FACEVER_THREADS`` threads per call (default 1), unless the user
    set one of :data:`BLAS_THREAD_VARS`.

    The service's parallelism is its inference slots (one request per core). Left alone, numpy's
    OpenBLAS starts a thread per core for the gallery search and leaves them spinning after each
    call, taking the cores from the other requests' detection: on 2 cores, identify against 100,000
    faces ran at 14 requests/s instead of 23 (benchmarks/serve_bench.py). The variables reach the
    spawned workers (``--workers`` > 1); threadpoolctl, when installed, limits the BLAS this process
    has already loaded (``--workers 1`` serves from this process).
    """
    if any(var in os.environ for var in BLAS_THREAD_VARS):
        return
    from facever.runtime import default_threads

    threads = default_threads()
    for var in BLAS_THREAD_VARS:
        os.environ[var] = str(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # workers still get the variables; only a single-process server keeps BLAS's default
        return
    threadpool_limits(limits=threads, user_api="blas")


def _check_keys(settings, loopback: bool) -> None:
    """Refuse a non-loopback bind with no active key; on loopback, say how to make one."""
    from facever.keys import KeyStore
    from facever.store.session import Database

    database = Database(settings.db, create=True)
    try:
        active = [k for k in KeyStore(database).list() if k.revoked is None]
    finally:
        database.close()
    if not active and not loopback:
        fail(f"refusing to serve {settings.host} without API keys: create one with "
             "`facever keys create NAME --scope ...` (or bind 127.0.0.1 with --no-auth for local use)")
    if not active:
        err.print("warning: no API key exists yet, so every request will be refused with 401; create one with "
                  "`facever keys create NAME --scope verify,identify,enroll,admin`, or use --no-auth on loopback",
                  markup=False)


def _run(settings, log_level: str) -> None:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    log_config = {**LOGGING_CONFIG, "loggers": {**LOGGING_CONFIG["loggers"],
                  "facever.service": {"handlers": ["default"], "level": log_level.upper(), "propagate": False}}}
    err.print(f"facever serve: http://{settings.host}:{settings.port}/ (docs at /docs), {settings.workers} worker(s), "
              f"{settings.concurrency} inference slot(s) each", markup=False)
    uvicorn.run("facever.service.app:app_from_env", factory=True, host=settings.host, port=settings.port,
                workers=settings.workers, access_log=False, log_level=log_level, log_config=log_config,
                timeout_graceful_shutdown=5, server_header=False)
