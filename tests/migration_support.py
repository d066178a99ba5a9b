"""Helpers for tests that write a gallery at an older schema revision and upgrade it.

The ORM (:mod:`facever.store.schema`) describes the newest schema, so rows of an older revision are
written and read here with SQLAlchemy Core on the tables as the database has them (reflected).
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import MetaData, Table, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SAWarning

from facever.store.repository import encode_vector

#: The columns of ``faces`` up to revision 0004, with a value for each.
OLD_FACE = {"source": "x.jpg", "box": [0.0, 0.0, 10.0, 10.0], "landmarks": [[1.0, 2.0]] * 5, "detector_score": 0.9,
            "face_size": 50.0, "sharpness": 20.0, "frontality": 1.0,
            "created": datetime(2024, 1, 1, tzinfo=timezone.utc)}


def reflect(conn: Connection, name: str) -> Table:
    """Table ``name`` as the database has it now (pgvector's ``vector`` type reads as NullType)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Did not recognize type 'vector'", SAWarning)
        return Table(name, MetaData(), autoload_with=conn)


def add_old_model(conn: Connection, version: str = "v1") -> None:
    """Record a model version (``models`` has not changed since revision 0001)."""
    conn.execute(insert(reflect(conn, "models")).values(version=version, metadata={}, first_used=OLD_FACE["created"]))


def add_old_face(conn: Connection, face_id: int, person_id: int, crop: bytes, sha256: str,
                 model_version: str = "v1", vector: np.ndarray | None = None) -> None:
    """Insert a face (columns of revisions ≤ 0004 only) and its embedding, on any revision ≥ 0001."""
    conn.execute(insert(reflect(conn, "faces")).values(id=face_id, person_id=person_id, crop=crop, sha256=sha256,
                                                       **OLD_FACE))
    vec = np.ones(128, np.float32) / np.sqrt(128) if vector is None else np.asarray(vector, np.float32)
    conn.execute(insert(reflect(conn, "embeddings")).values(face_id=face_id, model_version=model_version,
                                                            dim=int(vec.size), vector=encode_vector(vec)))


def stored_rows(conn: Connection, tables=("people", "faces", "embeddings", "models")) -> dict[str, list[dict[str, Any]]]:
    """Every row of ``tables`` as a dict of the columns the database has now, by primary key."""
    out = {}
    for name in tables:
        table = reflect(conn, name)
        key = [c.name for c in table.primary_key.columns]
        out[name] = sorted((dict(r._mapping) for r in conn.execute(select(table))),
                           key=lambda row: tuple(str(row[k]) for k in key))
    return out


def project(rows: dict[str, list[dict[str, Any]]], like: dict[str, list[dict[str, Any]]]) -> dict:
    """``rows`` with only the columns that ``like``'s rows have (to compare across a migration that
    adds columns)."""
    return {name: [{k: row[k] for k in (like[name][0] if like[name] else row)} for row in table]
            for name, table in rows.items() if name in like}
