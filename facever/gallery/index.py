"""The search index protocol: what :class:`~facever.gallery.Gallery` asks of a 1:K search backend.

Three backends implement :class:`SearchBackend`:

* ``exact``: every embedding of the loaded model as one in-memory matrix, scanned per query
  (:class:`facever.gallery.memory_index.MemoryBackend`);
* ``ann``: the same matrix plus a faiss HNSW graph that proposes candidate people, re-scored exactly
  on the matrix (also :class:`~facever.gallery.memory_index.MemoryBackend`, with
  :mod:`facever.gallery.ann_index`);
* ``pgvector``: no in-process copy; each search runs in PostgreSQL over an HNSW index and the
  candidates are re-scored exactly in Python (:class:`facever.gallery.pg_index.PgVectorBackend`).

Every backend scores people the same way (:func:`facever.gallery.search.person_distances` over all
of a candidate's faces), so distances and the order of people agree with the exact scan; the
approximate ones can only miss a person whose faces the graph did not propose. Each search reports
the gallery size it saw (:class:`Hits`), read in the same snapshot, for the gallery-size-aware
threshold. :func:`facever.gallery.backends.open_backend` picks the backend for an index mode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, Sequence

import numpy as np

from facever.errors import FaceverError, ModelVersionMismatchError

if TYPE_CHECKING:
    from facever.store.session import Database

#: Search backend asked for: ``"exact"`` scan, ``"ann"`` (faiss HNSW in memory), ``"pgvector"``
#: (HNSW in PostgreSQL), or ``"auto"``: pgvector on PostgreSQL with the extension, else exact until
#: :data:`~facever.gallery.ann_index.AUTO_MIN_FACES` faces, then faiss when installed.
IndexMode = Literal["exact", "ann", "pgvector", "auto"]
INDEX_MODES: tuple[str, ...] = ("exact", "ann", "pgvector", "auto")

#: ``"nearest"`` or ``"mean3"`` (see :mod:`facever.gallery.search`).
ScoringName = Literal["nearest", "mean3"]

_log = logging.getLogger("facever.gallery")
_warned: set[str] = set()


class IndexUnavailableError(FaceverError, RuntimeError):
    """The search backend asked for cannot run here (faiss not installed, pgvector without PostgreSQL)."""


@dataclass(frozen=True)
class IndexStatus:
    """Which search backend a gallery uses and what happened to its index.

    Attributes:
        backend: ``"exact"`` (NumPy scan), ``"ann"`` (faiss) or ``"pgvector"`` (in PostgreSQL).
        mode: what was asked: ``"exact"``, ``"ann"``, ``"pgvector"`` or ``"auto"``.
        kind: ``"hnsw"`` / ``"ivf"`` (approximate backends only).
        path: the faiss index file (ANN only; None when kept in memory only).
        status: ``"exact"``, ``"loaded"`` (file up to date), ``"caught_up"`` (file behind the database,
            updated), ``"built"`` (no file), ``"rebuilt"`` (file stale, corrupt or of another model),
            ``"memory"`` (updated in memory by this process's writes), ``"database"`` (pgvector:
            nothing held in the process).
        rebuilt: True when the index had to be built now.
        note: one human-readable sentence (why, how long; a fallback from pgvector says so).
        n_faces: faces searched.
        seconds: time spent opening / building.
    """

    backend: str
    mode: str
    kind: str | None = None
    path: str | None = None
    status: str = "exact"
    rebuilt: bool = False
    note: str = ""
    n_faces: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"backend": self.backend, "mode": self.mode, "kind": self.kind, "path": self.path,
                "status": self.status, "rebuilt": self.rebuilt, "note": self.note, "n_faces": self.n_faces,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class GalleryCounts:
    """Faces embedded by the loaded model and the people they belong to (the threshold's gallery size)."""

    n_faces: int
    n_people: int


@dataclass(frozen=True)
class Hits:
    """The best people for each query, and the gallery they were found in.

    Attributes:
        names: per query, the names of up to ``k`` people, best first.
        distances: per query, a ``(k',)`` float32 array of their person distances (in [0, 2]).
        counts: the gallery size the search saw (same snapshot).
    """

    names: list[list[str]]
    distances: list[np.ndarray]
    counts: GalleryCounts


class SearchBackend(Protocol):
    """A 1:K search over the embeddings of one model version (see the module docstring).

    ``model_version`` / ``dim`` name the loaded model; only its embeddings are searched. Methods that
    read the gallery raise :class:`~facever.errors.ModelVersionMismatchError` while any enrolled face
    lacks an embedding by it.
    """

    backend: str

    def counts(self, model_version: str, dim: int) -> GalleryCounts:
        """The gallery size for the threshold."""
        ...

    def top_people(self, queries: np.ndarray, k: int, scoring: ScoringName, model_version: str,
                   dim: int) -> Hits:
        """The ``k`` best people for each ``(Q, dim)`` unit query, exactly scored."""
        ...

    def person_vectors(self, person_id: int, model_version: str, dim: int) -> np.ndarray:
        """The ``(n, dim)`` embeddings of one person (``n`` may be 0)."""
        ...

    def status(self, model_version: str, dim: int) -> IndexStatus:
        """Which backend searches and what happened to its index."""
        ...

    def rebuild(self, model_version: str, dim: int) -> IndexStatus:
        """Rebuild the index from the database (``facever reindex``)."""
        ...

    def added(self, person_id: int, name: str, face_ids: Sequence[int], vectors: np.ndarray,
              model_version: str) -> None:
        """This process committed new faces of one person (``(n, dim)`` vectors)."""
        ...

    def removed(self, person_id: int, face_ids: Sequence[int] | None) -> None:
        """This process deleted faces of a person (``None``: the whole person)."""
        ...

    def changed(self) -> None:
        """Anything else changed (a rename, another process's write): forget what is cached."""
        ...

    def close(self) -> None:
        """Save what needs saving and release memory."""
        ...


def version_mismatch(n_faces: int, n_embedded: int, model_version: str,
                     versions: dict[str, int]) -> ModelVersionMismatchError:
    """The error for a gallery where ``n_faces - n_embedded`` faces lack an embedding by the loaded model."""
    others = ", ".join(v for v in versions if v != model_version) or "none"
    return ModelVersionMismatchError(
        f"{n_faces - n_embedded} of {n_faces} enrolled faces have no embedding by the loaded model "
        f"{model_version} (stored embeddings are by: {others}); run `facever reindex` to re-embed the stored "
        "crops with this model")


def warn_once(key: str, message: str) -> None:
    """Log ``message`` once per process for ``key`` (a database), as a warning."""
    if key not in _warned:
        _warned.add(key)
        _log.warning(message)


def model_of(verifier: Any) -> tuple[str, int]:
    """``(model version, embedding dimension)`` of a loaded :class:`~facever.api.FaceVerifier`."""
    return verifier.model_version, int(verifier.bundle.metadata.embedding_dim)
