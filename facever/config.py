"""Where things live: FACEVER_HOME, the database URL and the model path.

Environment variables override the defaults:

* ``FACEVER_HOME``: data directory (default ``$XDG_DATA_HOME/facever`` or ``~/.local/share/facever``).
* ``FACEVER_DB``: SQLAlchemy URL of the gallery (default ``sqlite:///$FACEVER_HOME/gallery.db``).
* ``FACEVER_MODEL``: path of a model bundle directory, or the name of a bundle shipped in the package
  (:data:`BUNDLED_MODELS`: ``default``, ``fast``); default: the shipped ``default``.
* ``FACEVER_CACHE``: cache directory for aligned training crops (default ``$FACEVER_HOME/cache``).
* ``FACEVER_WORKERS``: threads that detect or encode at once (enrolment, reindexing, batches of
  faces; default: the CPUs this process may use, at most 8). ``FACEVER_THREADS`` (onnxruntime's
  threads inside one call, :func:`facever.runtime.default_threads`) is another setting.
"""

from __future__ import annotations

import os
from pathlib import Path


#: Model bundles shipped in the package, by name: ``default`` (float) and ``fast`` (int8, its own version).
BUNDLED_MODELS = ("default", "fast")


def packaged_model_dir(name: str = "default") -> Path:
    """Return the directory of the model bundle ``name`` (:data:`BUNDLED_MODELS`) shipped with the package.

    Installed, the repository's ``models/`` folder is the package ``facever_models``; in a source
    checkout it is ``models/`` beside ``facever/``.
    """
    import importlib.util

    spec = importlib.util.find_spec("facever_models")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]) / name
    return Path(__file__).resolve().parent.parent / "models" / name


def home_dir() -> Path:
    """Return the facever data directory (not created)."""
    env = os.environ.get("FACEVER_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "facever"


def database_url(explicit: str | None = None) -> str:
    """Return the SQLAlchemy URL of the gallery: ``explicit``, else ``FACEVER_DB``, else SQLite in home."""
    if explicit:
        return explicit
    env = os.environ.get("FACEVER_DB")
    if env:
        return env
    return f"sqlite:///{home_dir() / 'gallery.db'}"


def model_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Return the model bundle directory: ``explicit``, else ``FACEVER_MODEL``, else the shipped ``default``.

    A bare name in :data:`BUNDLED_MODELS` (``"fast"``, ``"default"``) is the shipped bundle of that
    name (a folder of that name in the working directory: write ``./fast``).
    """
    chosen = explicit or os.environ.get("FACEVER_MODEL")
    if not chosen:
        return packaged_model_dir()
    if str(chosen) in BUNDLED_MODELS:
        return packaged_model_dir(str(chosen))
    return Path(chosen).expanduser()


#: Upper bound of the default :func:`worker_threads` (more threads than this gained nothing measurable
#: and each holds a batch of images in memory).
MAX_DEFAULT_WORKERS = 8


def worker_threads() -> int:
    """Threads that detect or encode at once: ``FACEVER_WORKERS``, else the CPUs this process may
    run on (its affinity, which follows container limits), at most :data:`MAX_DEFAULT_WORKERS`; ≥ 1."""
    env = os.environ.get("FACEVER_WORKERS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


def cache_dir() -> Path:
    """Return the directory for cached aligned crops (not created)."""
    env = os.environ.get("FACEVER_CACHE")
    return Path(env).expanduser() if env else home_dir() / "cache"
