"""In-memory 1:K search: every embedding of one model as one matrix, rows grouped by person.

Distances are Euclidean between unit embeddings, in [0, 2]. A person's score against a query face
is the distance to their *nearest* enrolled face (``"nearest"``) or the mean distance to their three
nearest faces (``"mean3"``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

#: How a person is scored against a query: nearest enrolled face, or mean of the 3 nearest.
Scoring = Literal["nearest", "mean3"]

_MAX_SIM_ELEMENTS = 1 << 25  # query×gallery similarities computed at once (128 MiB of float32)


def person_distances(queries: np.ndarray, vectors: np.ndarray, starts: np.ndarray,
                     scoring: Scoring = "nearest") -> np.ndarray:
    """Score every person against every query.

    Args:
        queries: ``(Q, D)`` float32 unit vectors.
        vectors: ``(N, D)`` float32 unit vectors, the rows of each person contiguous.
        starts: ``(P,)`` int, strictly increasing, ``starts[0] == 0``: first row of each person.
        scoring: ``"nearest"`` (min distance over the person's rows) or ``"mean3"`` (mean of the
            three smallest distances; of all rows for people with fewer).
    Returns:
        ``(Q, P)`` float32 distances in [0, 2].
    """
    queries = np.asarray(queries, np.float32)
    vectors = np.asarray(vectors, np.float32)
    starts = np.asarray(starts, np.intp)
    n_q, n = len(queries), len(vectors)
    out = np.empty((n_q, len(starts)), np.float32)
    if n_q == 0 or len(starts) == 0:
        return out
    step = max(1, _MAX_SIM_ELEMENTS // max(n, 1))
    for lo in range(0, n_q, step):
        sims = queries[lo:lo + step] @ vectors.T                     # (q, N) cosine similarities
        if scoring == "nearest":
            best = np.maximum.reduceat(sims, starts, axis=1)        # nearest = most similar row
            out[lo:lo + step] = np.sqrt(np.clip(2.0 - 2.0 * best, 0.0, 4.0))
        elif scoring == "mean3":
            dist = np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, 4.0))
            out[lo:lo + step] = _mean_smallest(dist, starts, 3)
        else:
            raise ValueError(f"unknown scoring {scoring!r}; use 'nearest' or 'mean3'")
    return out


def _mean_smallest(dist: np.ndarray, starts: np.ndarray, k: int) -> np.ndarray:
    """Per segment of columns, the mean of the ``k`` smallest values (all, if fewer). ``(q, N) → (q, P)``.

    Exact with ties: each of ``k`` rounds takes the segment minimum as many times as it occurs
    (capped by what is still needed) and masks it out.
    """
    counts = np.diff(np.append(starts, dist.shape[1]))
    wanted = np.minimum(counts, k).astype(np.float32)
    remaining = np.broadcast_to(wanted, (len(dist), len(starts))).copy()
    total = np.zeros_like(remaining)
    work = dist.copy()
    for _ in range(k):
        low = np.minimum.reduceat(work, starts, axis=1)
        hit = work == np.repeat(low, counts, axis=1)
        take = np.minimum(np.add.reduceat(hit, starts, axis=1, dtype=np.float32), remaining)
        total += np.where(take > 0, take * np.where(np.isfinite(low), low, 0.0), 0.0)
        remaining -= take
        work[hit] = np.inf
    return total / wanted


def nearest_k(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest entries of each row of ``(Q, P)`` distances, ascending.

    Uses ``argpartition`` (O(P) per row), then sorts only the ``k`` kept. Returns
    ``(indices (Q, k'), distances (Q, k'))`` with ``k' = min(k, P)``.
    """
    distances = np.asarray(distances)
    n_q, n_p = distances.shape
    k = max(0, min(int(k), n_p))
    if k == 0:
        return np.zeros((n_q, 0), np.intp), np.zeros((n_q, 0), distances.dtype)
    idx = np.argpartition(distances, k - 1, axis=1)[:, :k] if k < n_p else np.tile(np.arange(n_p), (n_q, 1))
    part = np.take_along_axis(distances, idx, axis=1)
    order = np.argsort(part, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(part, order, axis=1)


class SearchIndex:
    """Every embedding of one model version as one matrix, rows grouped by person.

    Attributes:
        vectors: ``(N, D)`` float32 unit vectors.
        starts: ``(P,)`` first row of each person in ``vectors``.
        person_ids: ``(P,)`` database ids; ``names``: the ``P`` names.
        model_version: the model that made the vectors.
    """

    def __init__(self, row_person_ids: np.ndarray, vectors: np.ndarray, names_by_id: dict[int, str],
                 model_version: str) -> None:
        row_person_ids = np.asarray(row_person_ids, np.int64)
        vectors = np.asarray(vectors, np.float32)
        if len(row_person_ids) and np.any(np.diff(row_person_ids) < 0):
            order = np.argsort(row_person_ids, kind="stable")
            row_person_ids, vectors = row_person_ids[order], vectors[order]
        self.vectors = vectors
        self.person_ids, self.starts = np.unique(row_person_ids, return_index=True)
        self.names = [names_by_id[int(i)] for i in self.person_ids]
        self.model_version = model_version

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def n_people(self) -> int:
        """Number of people with at least one vector."""
        return len(self.starts)

    def rows_of(self, person_id: int) -> np.ndarray:
        """The ``(n, D)`` vectors of one person (empty if none)."""
        pos = int(np.searchsorted(self.person_ids, person_id))
        if pos >= len(self.person_ids) or self.person_ids[pos] != person_id:
            return self.vectors[:0]
        end = self.starts[pos + 1] if pos + 1 < len(self.starts) else len(self.vectors)
        return self.vectors[self.starts[pos]:end]

    def distances(self, queries: np.ndarray, scoring: Scoring = "nearest") -> np.ndarray:
        """``(Q, D)`` queries → ``(Q, P)`` per-person distances (see :func:`person_distances`)."""
        return person_distances(queries, self.vectors, self.starts, scoring)

    def top_k(self, queries: np.ndarray, k: int, scoring: Scoring = "nearest") -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best people of each query by exact scan: ``(positions (Q, k'), distances (Q, k'))``."""
        return nearest_k(self.distances(queries, scoring), k)

    def add(self, person_id: int, name: str, vectors: np.ndarray) -> None:
        """Insert one person's new ``(n, D)`` vectors, keeping rows grouped by person id."""
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.vectors.shape[1])
        pos = int(np.searchsorted(self.person_ids, person_id))
        if pos < len(self.person_ids) and self.person_ids[pos] == person_id:
            end = self.starts[pos + 1] if pos + 1 < len(self.starts) else len(self.vectors)
            self.vectors = np.insert(self.vectors, end, vectors, axis=0)
            self.starts[pos + 1:] += len(vectors)
            return
        at = self.starts[pos] if pos < len(self.starts) else len(self.vectors)
        self.vectors = np.insert(self.vectors, at, vectors, axis=0)
        self.starts = np.insert(self.starts + np.where(np.arange(len(self.starts)) >= pos, len(vectors), 0), pos, at)
        self.person_ids = np.insert(self.person_ids, pos, person_id)
        self.names.insert(pos, name)


def rerank(queries: np.ndarray, index: SearchIndex, candidates: list[np.ndarray], k: int,
           scoring: Scoring = "nearest") -> tuple[np.ndarray, np.ndarray]:
    """Exact scores of candidate people only (from an approximate index), the ``k`` best per query.

    Args:
        queries: ``(Q, D)`` unit vectors.
        index: the gallery matrix (every row of every candidate is scored).
        candidates: per query, person *ids* to score (ids not in ``index`` are ignored).
    Returns:
        ``(positions (Q, k'), distances (Q, k'))`` like :meth:`SearchIndex.top_k`, ``k' = min(k, P)``;
        position -1 and distance inf where a query had fewer than ``k'`` candidates.
    """
    queries = np.asarray(queries, np.float32)
    k = max(0, min(int(k), index.n_people))
    idx = np.full((len(queries), k), -1, np.intp)
    dist = np.full((len(queries), k), np.inf, np.float32)
    if k == 0:
        return idx, dist
    ends = np.append(index.starts[1:], len(index.vectors))
    for q, ids in enumerate(candidates):
        ids = np.asarray(ids, np.int64)
        pos = np.searchsorted(index.person_ids, ids)
        ok = pos < len(index.person_ids)
        ok[ok] = index.person_ids[pos[ok]] == ids[ok]
        pos = np.unique(pos[ok])
        if len(pos) == 0:
            continue
        counts = ends[pos] - index.starts[pos]
        local = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rows = np.repeat(index.starts[pos] - local, counts) + np.arange(int(counts.sum()))
        j, d = nearest_k(person_distances(queries[q:q + 1], index.vectors[rows], local, scoring), k)
        idx[q, :j.shape[1]] = pos[j[0]]
        dist[q, :j.shape[1]] = d[0]
    return idx, dist
