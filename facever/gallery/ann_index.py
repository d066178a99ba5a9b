"""Optional approximate nearest-face search on ``faiss-cpu``, for galleries past ~100 k faces.

The exact NumPy scan (:class:`facever.gallery.search.SearchIndex`) stays the system of search truth for
small galleries and the store of every vector; this index only *proposes* candidate people, which
the gallery then re-scores exactly on all of their enrolled faces (so ``"nearest"`` and ``"mean3"``
scores are exact for every person it returns; only a person whose nearest face the graph misses can
be lost).

Choice of structure (measured in ``benchmarks/ann_bench.py`` on real LFW / Pins / Bollywood probes
against 128-d galleries padded with realistic distractors, see ``benchmarks/results/ann.json``):
**HNSW** (``faiss.IndexHNSWFlat``, M=32, inner product on unit vectors). At 1 M faces it reaches the
recall of an IVF-Flat index at a fraction of the latency (IVF needs to probe a large share of its
lists because 128-d face embeddings are not well clustered); IVF builds ~10× faster and supports
removal natively, which is the trade we decline.

Writes without a rebuild:

* enrol: ``add`` appends to the graph (HNSW supports incremental insertion);
* remove: HNSW cannot delete, so removed faces become *tombstones* (an ``alive`` mask filtered at
  query time, with the search widened by the dead fraction); :attr:`AnnIndex.needs_rebuild` turns
  true past :data:`REBUILD_DEAD_FRACTION` and the gallery rebuilds on its next load (or
  ``facever reindex``).

Persistence: one file (default: beside the SQLite database, ``<db>.ann``) holding a JSON header
(format, model version, dimension, parameters, SHA-256 of the sorted live face ids, CRC-32 of the
payload), the id arrays and the serialized faiss index; written atomically (temporary file, then
rename). On open it is checked against the database: a missing, unreadable, corrupt (bad CRC) or
other-model file is rebuilt from the database; a file that is merely behind (faces enrolled or
removed by other processes since it was saved) is caught up by adding / tombstoning the
difference. Every outcome is reported in an :class:`IndexStatus` (``rebuilt`` flag and ``note``);
nothing is printed.

``faiss`` is imported only when an index is built or loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from facever.gallery.index import IndexStatus, IndexUnavailableError

#: Index kinds: ``"hnsw"`` (default, measured best here) or ``"ivf"`` (IVF-Flat, for comparison).
Kind = Literal["hnsw", "ivf"]

#: ``auto`` mode switches from the exact scan to this index at this many faces (see docs/SCALING.md).
AUTO_MIN_FACES = 200_000

#: Share of tombstoned (removed) faces past which the index asks to be rebuilt.
REBUILD_DEAD_FRACTION = 0.2

#: Largest share of faces that a stale file may be behind the database and still be caught up
#: (rather than rebuilt).
CATCH_UP_FRACTION = 0.25

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256          # below HNSW_LARGE faces: recall@1 0.9995 at 300 k, ~0.9 ms
HNSW_EF_SEARCH_LARGE = 384    # from HNSW_LARGE faces: recall@1 0.9975 at 1 M, ~1.9 ms (ann_bench.py)
HNSW_LARGE = 500_000
IVF_NPROBE = 256

_MAGIC = b"FACEVER-ANN\x00"
_FORMAT = 1


class AnnUnavailableError(IndexUnavailableError):
    """``faiss`` is not installed (the ``index`` extra)."""


class AnnFileError(ValueError):
    """An index file that cannot be used (unreadable, truncated, corrupt or of another format)."""


def faiss_available() -> bool:
    """Whether ``faiss`` can be imported (without importing it twice)."""
    import importlib.util
    import sys

    if "faiss" in sys.modules:
        return sys.modules["faiss"] is not None
    try:
        return importlib.util.find_spec("faiss") is not None
    except (ImportError, ValueError):
        return False


def _faiss():
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AnnUnavailableError(
            "approximate search needs faiss: pip install 'faiss-cpu>=1.8' (or the facever[index] extra); "
            "use index='exact' / --index exact meanwhile") from exc
    return faiss


def face_set_digest(face_ids: np.ndarray) -> str:
    """SHA-256 of the sorted face ids (the identity of the set of indexed faces)."""
    ids = np.sort(np.asarray(face_ids, np.int64))
    return hashlib.sha256(ids.astype("<i8").tobytes()).hexdigest()


@dataclass
class AnnIndex:
    """Approximate nearest-face index over unit vectors (inner product = 1 - d²/2).

    Faces live at *positions* 0..n-1 (the faiss labels); ``pos_face`` / ``pos_person`` map a
    position to its face id and person id, ``alive`` marks faces not removed since the last build.
    """

    dim: int
    model_version: str
    kind: Kind = "hnsw"
    params: dict[str, int] = field(default_factory=dict)
    pos_face: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pos_person: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    index: Any = None
    dirty: bool = False

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, face_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray, model_version: str,
              kind: Kind = "hnsw", **params: int) -> "AnnIndex":
        """Build from ``(N,)`` face ids, ``(N,)`` person ids and ``(N, D)`` float32 unit vectors."""
        if kind not in ("hnsw", "ivf"):
            raise ValueError(f"unknown ANN index kind {kind!r}; use 'hnsw' or 'ivf'")
        faiss = _faiss()
        vectors = np.ascontiguousarray(vectors, np.float32)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        n = len(vectors)
        if kind == "hnsw":
            ef = HNSW_EF_SEARCH if n < HNSW_LARGE else HNSW_EF_SEARCH_LARGE
            p = {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": ef, **params}
            index = faiss.IndexHNSWFlat(dim, int(p["M"]), faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = int(p["ef_construction"])
            index.hnsw.efSearch = int(p["ef_search"])
        else:
            nlist = int(params.get("nlist", max(1, min(65536, int(4 * np.sqrt(max(n, 1)))))))
            p = {"nlist": nlist, "nprobe": IVF_NPROBE, **params}
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, int(p["nlist"]), faiss.METRIC_INNER_PRODUCT)
            index.cp.min_points_per_centroid = 1  # no "please provide more training points" on stderr
            train = vectors
            if n > 64 * p["nlist"]:
                train = vectors[np.random.default_rng(0).choice(n, 64 * p["nlist"], replace=False)]
            if len(train) < p["nlist"]:  # tiny gallery: pad the training set so k-means can run
                extra = np.random.default_rng(0).standard_normal((p["nlist"] - len(train), dim)).astype(np.float32)
                train = np.concatenate([train, extra / np.linalg.norm(extra, axis=1, keepdims=True)])
            index.train(train)
            index.nprobe = int(p["nprobe"])
        self = cls(dim, model_version, kind, {k: int(v) for k, v in p.items()}, index=index, dirty=True)
        self.add(face_ids, person_ids, vectors)
        return self

    # -- writes ---------------------------------------------------------------------------------
    def add(self, face_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append faces (no rebuild). ``person_ids`` may be one id for all."""
        face_ids = np.asarray(face_ids, np.int64).reshape(-1)
        if len(face_ids) == 0:
            return
        vectors = np.ascontiguousarray(np.asarray(vectors, np.float32).reshape(len(face_ids), self.dim))
        person_ids = np.broadcast_to(np.asarray(person_ids, np.int64), face_ids.shape)
        if self.kind == "ivf":  # labels are positions, which removals leave as gaps
            start = len(self.pos_face)
            self.index.add_with_ids(vectors, np.arange(start, start + len(face_ids), dtype=np.int64))
        else:
            self.index.add(vectors)
        self.pos_face = np.concatenate([self.pos_face, face_ids])
        self.pos_person = np.concatenate([self.pos_person, person_ids])
        self.alive = np.concatenate([self.alive, np.ones(len(face_ids), bool)])
        self.dirty = True

    def remove(self, face_ids: np.ndarray) -> int:
        """Tombstone faces (filtered at query time); return how many were live."""
        hit = np.isin(self.pos_face, np.asarray(face_ids, np.int64)) & self.alive
        return self._kill(hit)

    def remove_person(self, person_id: int) -> int:
        """Tombstone every face of one person; return how many."""
        return self._kill((self.pos_person == int(person_id)) & self.alive)

    def _kill(self, hit: np.ndarray) -> int:
        n = int(hit.sum())
        if n:
            self.alive = self.alive & ~hit
            if self.kind == "ivf":  # IVF can really delete; labels are positions
                self.index.remove_ids(np.nonzero(hit)[0].astype(np.int64))
            self.dirty = True
        return n

    # -- state ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.alive.sum())

    @property
    def dead_fraction(self) -> float:
        """Share of positions that are tombstones."""
        return 0.0 if len(self.alive) == 0 else 1.0 - len(self) / len(self.alive)

    @property
    def needs_rebuild(self) -> bool:
        """Too many tombstones: searches widen and memory is wasted; rebuild from the database."""
        return self.dead_fraction > REBUILD_DEAD_FRACTION

    def face_ids(self) -> np.ndarray:
        """Sorted ids of the live faces."""
        return np.sort(self.pos_face[self.alive])

    def memory_bytes(self) -> int:
        """Approximate resident bytes (serialized faiss index + id arrays)."""
        faiss = _faiss()
        return int(faiss.serialize_index(self.index).nbytes) + self.pos_face.nbytes * 2 + self.alive.nbytes

    # -- search ---------------------------------------------------------------------------------
    def search_faces(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest live faces of each query: ``(positions (Q, k), distances (Q, k))``,
        position -1 / distance inf where fewer were found. Distances are Euclidean (unit vectors)."""
        queries = np.ascontiguousarray(np.asarray(queries, np.float32).reshape(-1, self.dim))
        n_q, live = len(queries), len(self)
        k = max(0, min(int(k), live))
        if n_q == 0 or k == 0:
            return np.full((n_q, 0), -1, np.int64), np.zeros((n_q, 0), np.float32)
        dead = len(self.alive) - live
        k_search = k if dead == 0 else min(len(self.alive), int(np.ceil(k / max(1e-3, 1 - self.dead_fraction))) + 8)
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(int(self.params.get("ef_search", HNSW_EF_SEARCH)), k_search)
        sims, labels = self.index.search(queries, k_search)
        ok = labels >= 0
        if dead:
            ok &= self.alive[np.where(ok, labels, 0)]
        dist = np.where(ok, np.sqrt(np.clip(2.0 - 2.0 * sims, 0.0, 4.0)), np.inf).astype(np.float32)
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        pos = np.where(np.take_along_axis(ok, order, axis=1), np.take_along_axis(labels, order, axis=1), -1)
        return pos, np.take_along_axis(dist, order, axis=1)

    def candidate_people(self, queries: np.ndarray, k_faces: int) -> list[np.ndarray]:
        """Per query, the distinct person ids among its ``k_faces`` nearest faces, nearest first."""
        pos, _ = self.search_faces(queries, k_faces)
        out = []
        for row in pos:
            people = self.pos_person[row[row >= 0]]
            _, first = np.unique(people, return_index=True)
            out.append(people[np.sort(first)])
        return out

    # -- consistency with the database ----------------------------------------------------------
    def sync(self, face_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray) -> tuple[int, int]:
        """Make the live face set equal the database's (add missing, tombstone extra); ``(added, removed)``."""
        face_ids = np.asarray(face_ids, np.int64)
        live = self.face_ids()
        extra = np.setdiff1d(live, face_ids, assume_unique=True)
        missing_mask = ~np.isin(face_ids, live)
        removed = self.remove(extra) if len(extra) else 0
        if missing_mask.any():
            self.add(face_ids[missing_mask], np.asarray(person_ids, np.int64)[missing_mask],
                     np.asarray(vectors, np.float32)[missing_mask])
        return int(missing_mask.sum()), removed

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> int:
        """Write atomically to ``path``; return bytes written."""
        faiss = _faiss()
        blob = faiss.serialize_index(self.index)
        arrays = [self.pos_face.astype("<i8").tobytes(), self.pos_person.astype("<i8").tobytes(),
                  self.alive.astype(np.uint8).tobytes()]
        crc = 0
        for part in (*arrays, memoryview(blob)):
            crc = zlib.crc32(part, crc)
        header = json.dumps({
            "format": _FORMAT, "kind": self.kind, "dim": self.dim, "model_version": self.model_version,
            "params": self.params, "n": int(len(self.pos_face)), "faiss_bytes": int(blob.nbytes),
            "face_set_sha256": face_set_digest(self.face_ids()), "crc32": crc,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(_MAGIC + struct.pack("<Q", len(header)) + header)
                for part in arrays:
                    f.write(part)
                f.write(memoryview(blob))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        self.dirty = False
        return path.stat().st_size

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "AnnIndex":
        """Read a file written by :meth:`save`. Raises :class:`AnnFileError` (and ``OSError``)."""
        faiss = _faiss()
        data = Path(path).read_bytes()
        if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + 8:
            raise AnnFileError("not a facever index file")
        at = len(_MAGIC)
        (hlen,) = struct.unpack("<Q", data[at:at + 8])
        at += 8
        try:
            head = json.loads(data[at:at + hlen])
            at += hlen
            n, nbytes, dim = int(head["n"]), int(head["faiss_bytes"]), int(head["dim"])
        except (ValueError, KeyError, TypeError) as exc:
            raise AnnFileError(f"unreadable header ({exc})") from exc
        if head.get("format") != _FORMAT:
            raise AnnFileError(f"index file format {head.get('format')} (this facever writes {_FORMAT})")
        if len(data) != at + 17 * n + nbytes:
            raise AnnFileError("truncated or padded index file")
        body = memoryview(data)[at:]
        if zlib.crc32(body) != head["crc32"]:
            raise AnnFileError("checksum mismatch (corrupt index file)")
        pos_face = np.frombuffer(body[:8 * n], "<i8").astype(np.int64)
        pos_person = np.frombuffer(body[8 * n:16 * n], "<i8").astype(np.int64)
        alive = np.frombuffer(body[16 * n:17 * n], np.uint8).astype(bool)
        try:
            index = faiss.deserialize_index(np.frombuffer(body[17 * n:], np.uint8))
        except RuntimeError as exc:
            raise AnnFileError(f"faiss could not read the index ({exc})") from exc
        self = cls(dim, str(head["model_version"]), head["kind"], dict(head.get("params", {})), pos_face,
                   pos_person, alive, index, dirty=False)
        if index.ntotal != (len(self) if self.kind == "ivf" else n) or index.d != dim:
            raise AnnFileError("index size does not match its id table")
        if face_set_digest(self.face_ids()) != head["face_set_sha256"]:
            raise AnnFileError("face-id checksum mismatch")
        return self


def open_index(path: str | os.PathLike[str] | None, face_ids: np.ndarray, person_ids: np.ndarray,
               vectors: np.ndarray, model_version: str, *, mode: str = "ann", kind: Kind = "hnsw",
               rebuild: bool = False, save: bool = True) -> tuple[AnnIndex, IndexStatus]:
    """The ANN index for the database's current vectors: loaded from ``path`` when it is valid,
    caught up when it is behind, built (and saved) otherwise. Never raises for a bad file; raises
    :class:`AnnUnavailableError` without faiss.

    Args:
        face_ids, person_ids, vectors: every embedding of ``model_version`` in the database.
        rebuild: ignore any file and build from scratch.
        save: write the file when it was built or changed.
    """
    _faiss()
    t0 = time.perf_counter()
    face_ids = np.asarray(face_ids, np.int64)
    n = len(face_ids)
    where = f"index file {path}" if path is not None else "the in-memory index"
    ann: AnnIndex | None = None
    why = "rebuilt on request" if rebuild else ""
    if path is not None and not rebuild:
        try:
            ann = AnnIndex.load(path)
        except FileNotFoundError:
            why = "missing"
        except (OSError, AnnFileError) as exc:
            why = f"unusable ({exc})"
        if ann is not None:
            dim = vectors.shape[1] if np.ndim(vectors) == 2 else ann.dim
            if ann.model_version != model_version:
                why, ann = f"made by model {ann.model_version}, not {model_version}", None
            elif ann.dim != dim or ann.kind != kind:
                why, ann = f"of another kind or dimension ({ann.kind}, {ann.dim}-d)", None
    status, note = "loaded", ""
    if ann is not None:
        live = ann.face_ids()
        behind = len(np.setdiff1d(live, face_ids, assume_unique=True)) + int((~np.isin(face_ids, live)).sum())
        if behind > CATCH_UP_FRACTION * max(n, 1) + 16:
            why, ann = f"stale ({behind} faces differ from the database)", None
        elif behind:
            added, removed = ann.sync(face_ids, person_ids, vectors)
            status, note = "caught_up", f"{where} was behind the database: added {added}, removed {removed} face(s)"
            if ann.needs_rebuild:
                why, ann = f"stale ({ann.dead_fraction:.0%} removed faces)", None
    rebuilt = ann is None
    if ann is None:
        ann = AnnIndex.build(face_ids, person_ids, vectors, model_version, kind)
        status = "built" if why == "missing" else "rebuilt"
        note = (f"{where} {why}: built from the database ({n:,} faces, "
                f"{time.perf_counter() - t0:.1f} s)") if path is not None else f"built in memory ({n:,} faces)"
    if save and path is not None and ann.dirty:
        try:
            ann.save(path)
        except OSError as exc:
            note += f"; could not save it ({exc}), it will be rebuilt next time"
    if not note:
        note = f"{where} is up to date ({n:,} faces)"
    return ann, IndexStatus("ann", mode, ann.kind, None if path is None else str(path), status, rebuilt, note,
                            len(ann), time.perf_counter() - t0)
