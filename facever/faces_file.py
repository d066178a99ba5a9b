"""Files of embedded faces (``facever embed``): NPZ (NumPy) or Parquet (when pyarrow is installed).

One row per face: ``path`` (relative to the embedded folder, ``/``-separated), ``face_index`` (0 =
largest face of its image), ``box`` ``(4,)`` x1, y1, x2, y2 pixels, ``landmarks`` ``(5, 2)`` pixels
(left eye, right eye, nose, left and right mouth corners), ``score`` (detector confidence 0..1),
``face_size`` (px), ``sharpness``, ``frontality`` (0..1), ``model_version`` and ``embedding`` ``(D,)``
float32 unit vectors. Beside the faces, one row per image read (``image_path``, ``image_status``:
``ok`` / ``no_face`` / ``error``, ``image_error``, ``image_bytes``, ``image_mtime_ns``): a later run
skips every image whose path, size and modification time are unchanged, so an interrupted or
extended collection is resumed, never redone. A file holds one model version: embeddings of two
models are not comparable, so :class:`FacesFile` refuses to mix them.

NPZ holds each column as an array (strings as fixed-width unicode: ``np.load(path)`` needs no pickle).
Parquet holds the face rows as a table (``pandas.read_parquet`` gives one row per face) and the image
rows as JSON in the file's metadata (key ``facever.images``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facever.batch import ImageFaces
from facever.errors import FaceverError, ModelVersionMismatchError

FORMATS = (".npz", ".parquet")
_FACE_FLOATS = ("score", "face_size", "sharpness", "frontality")


@dataclass
class _Image:
    path: str
    status: str
    error: str
    size: int
    mtime_ns: int


@dataclass
class FacesFile:
    """Embedded faces of one model, loaded from and saved to ``path`` (``.npz`` or ``.parquet``).

    Args:
        path: the file; read when it exists.
        model_version: the model whose embeddings are added.
        overwrite: start empty even when ``path`` holds rows (of any model).
    Raises:
        ModelVersionMismatchError: ``path`` holds embeddings of another model (and not ``overwrite``).
        FaceverError: unknown suffix, pyarrow missing for ``.parquet``, or an unreadable file.
    """

    path: Path
    model_version: str
    overwrite: bool = False
    images: dict[str, _Image] = field(default_factory=dict, init=False)
    faces: dict[str, list[tuple[int, ImageFacesRow]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.path.suffix.lower() not in FORMATS:
            raise FaceverError(f"{self.path}: the output must end in .npz or .parquet")
        if self.path.suffix.lower() == ".parquet":
            _pyarrow()
        if self.path.exists() and not self.overwrite:
            self._read()

    # ---- rows -----------------------------------------------------------------------------------
    def is_done(self, rel_path: str, size: int, mtime_ns: int) -> bool:
        """Whether ``rel_path`` was read already, at this size and modification time."""
        image = self.images.get(rel_path)
        return image is not None and image.size == size and image.mtime_ns == mtime_ns

    def add(self, rel_path: str, size: int, mtime_ns: int, result: ImageFaces) -> None:
        """Record one image's result (replacing an earlier record of the same path)."""
        status = "error" if result.error else ("ok" if result.faces else "no_face")
        self.images[rel_path] = _Image(rel_path, status, result.error or "", int(size), int(mtime_ns))
        self.faces[rel_path] = [(k, ImageFacesRow.of(face)) for k, face in enumerate(result.faces)]

    @property
    def n_faces(self) -> int:
        """Face rows held."""
        return sum(len(rows) for rows in self.faces.values())

    def columns(self) -> dict[str, np.ndarray]:
        """Every column as an array (faces in image-path order, then face index)."""
        rows = [(p, k, r) for p in sorted(self.faces) for k, r in self.faces[p]]
        dim = rows[0][2].embedding.shape[0] if rows else 0
        cols: dict[str, np.ndarray] = {
            "path": np.array([p for p, _, _ in rows], dtype=str),
            "face_index": np.array([k for _, k, _ in rows], np.int32),
            "box": np.array([r.box for _, _, r in rows], np.float32).reshape(-1, 4),
            "landmarks": np.array([r.landmarks for _, _, r in rows], np.float32).reshape(-1, 5, 2),
            **{name: np.array([getattr(r, name) for _, _, r in rows], np.float32) for name in _FACE_FLOATS},
            "model_version": np.array([self.model_version] * len(rows), dtype=str),
            "embedding": np.array([r.embedding for _, _, r in rows], np.float32).reshape(-1, dim),
        }
        images = [self.images[p] for p in sorted(self.images)]
        cols.update({
            "image_path": np.array([i.path for i in images], dtype=str),
            "image_status": np.array([i.status for i in images], dtype=str),
            "image_error": np.array([i.error for i in images], dtype=str),
            "image_bytes": np.array([i.size for i in images], np.int64),
            "image_mtime_ns": np.array([i.mtime_ns for i in images], np.int64),
        })
        return cols

    # ---- files ----------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the file atomically (a temporary file beside it, then renamed over it)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.path.suffix.lower() == ".npz":
                with open(tmp, "wb") as fh:
                    np.savez(fh, **self.columns(), meta=np.array(json.dumps({"model_version": self.model_version})))
            else:
                self._write_parquet(tmp)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def _read(self) -> None:
        cols, version = read_faces(self.path)
        if version and version != self.model_version:
            raise ModelVersionMismatchError(
                f"{self.path} holds embeddings of model {version}, not of the loaded model {self.model_version}; "
                "write to another file, or overwrite it")
        for p, status, err, size, mtime in zip(cols["image_path"], cols["image_status"], cols["image_error"],
                                               cols["image_bytes"], cols["image_mtime_ns"]):
            self.images[str(p)] = _Image(str(p), str(status), str(err), int(size), int(mtime))
            self.faces[str(p)] = []
        for i, p in enumerate(cols["path"]):
            row = ImageFacesRow(tuple(float(v) for v in cols["box"][i]), cols["landmarks"][i],
                                *(float(cols[name][i]) for name in _FACE_FLOATS), cols["embedding"][i])
            self.faces.setdefault(str(p), []).append((int(cols["face_index"][i]), row))

    def _write_parquet(self, target: Path) -> None:
        pa, pq = _pyarrow()
        cols = self.columns()
        n, dim = cols["embedding"].shape
        table = pa.table({
            "path": pa.array(cols["path"].tolist(), pa.string()),
            "face_index": pa.array(cols["face_index"]),
            "box": pa.FixedSizeListArray.from_arrays(pa.array(cols["box"].ravel()), 4),
            "landmarks": pa.FixedSizeListArray.from_arrays(pa.array(cols["landmarks"].ravel()), 10),
            **{name: pa.array(cols[name]) for name in _FACE_FLOATS},
            "model_version": pa.array(cols["model_version"].tolist(), pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(cols["embedding"].ravel()), max(dim, 1)),
        })
        images = {key: cols[key].tolist() for key in cols if key.startswith("image_")}
        table = table.replace_schema_metadata({"facever.images": json.dumps(images),
                                               "facever.meta": json.dumps({"model_version": self.model_version,
                                                                           "embedding_dim": int(dim)})})
        pq.write_table(table, target)


@dataclass(frozen=True)
class ImageFacesRow:
    """The stored fields of one face (see the module docstring)."""

    box: tuple[float, ...]
    landmarks: np.ndarray
    score: float
    face_size: float
    sharpness: float
    frontality: float
    embedding: np.ndarray

    @classmethod
    def of(cls, face: Any) -> "ImageFacesRow":
        """From a :class:`facever.batch.EmbeddedFace`."""
        q = face.quality
        return cls(tuple(float(v) for v in face.box), np.asarray(face.landmarks, np.float32), float(face.score),
                   float(q.face_size), float(q.sharpness), float(q.frontality), np.asarray(face.embedding, np.float32))


def read_faces(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], str]:
    """Every column of a faces file (see the module docstring) and its model version ("" if empty).

    Raises:
        FaceverError: the file is not a faces file (or pyarrow is missing for ``.parquet``).
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            return _read_parquet(path)
        with np.load(path, allow_pickle=False) as data:
            cols = {key: data[key] for key in data.files}
        meta = json.loads(str(cols.pop("meta")))
    except (OSError, ValueError, KeyError) as exc:
        raise FaceverError(f"{path}: not a faces file ({exc})") from exc
    return cols, str(meta.get("model_version", ""))


def _read_parquet(path: Path) -> tuple[dict[str, np.ndarray], str]:
    pa, pq = _pyarrow()
    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    info = json.loads(meta[b"facever.meta"])
    images = json.loads(meta[b"facever.images"])
    dim = int(info.get("embedding_dim", 0))
    n = table.num_rows

    def flat(name: str, width: int) -> np.ndarray:
        return np.asarray(table.column(name).combine_chunks().flatten(), np.float32).reshape(n, width)

    cols = {
        "path": np.array(table.column("path").to_pylist(), dtype=str),
        "face_index": np.asarray(table.column("face_index"), np.int32),
        "box": flat("box", 4),
        "landmarks": flat("landmarks", 10).reshape(n, 5, 2),
        **{name: np.asarray(table.column(name), np.float32) for name in _FACE_FLOATS},
        "model_version": np.array(table.column("model_version").to_pylist(), dtype=str),
        "embedding": flat("embedding", max(dim, 1))[:, :dim],
    }
    cols.update({key: np.array(values, dtype=np.int64 if key in ("image_bytes", "image_mtime_ns") else str)
                 for key, values in images.items()})
    return cols, str(info.get("model_version", ""))


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError as exc:
        raise FaceverError("writing .parquet needs pyarrow (pip install 'facever[parquet]'); or use an .npz output") from exc
    return pa, pq
