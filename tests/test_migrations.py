"""Migration 0005: each face's crop geometry (``crop_template``, ``crop_size``), backfilled from the
stored crops' PNG headers, and dropped again on downgrade without touching any other row.

Runs on SQLite, and on PostgreSQL too (the ``db_url`` fixture).
"""

from datetime import datetime, timezone

import numpy as np
import pytest
from conftest import png_bytes
from migration_support import add_old_face, add_old_model, project, stored_rows
from sqlalchemy import create_engine, insert, select

from facever.store import Database, check_database, head_revision
from facever.store.schema import FaceRow, PersonRow
from facever.store.session import alembic_config


def _crop(width: int, height: int | None = None) -> bytes:
    return png_bytes(np.random.default_rng(width).integers(0, 256, (height or width, width, 3), dtype=np.uint8))


#: face id → (stored crop, the geometry 0005 must give it)
OLD_CROPS = {
    1: (_crop(150), ("dlib", 150)),       # the default model's dlib chips
    2: (_crop(112), ("arcface", 112)),    # the from-scratch encoders' ArcFace crops
    3: (_crop(96), (None, 96)),           # a size that names no template: recorded, not guessed
    4: (_crop(40, 20), (None, None)),     # not square
    5: (b"\x89PNG damaged", (None, None)),  # not a readable PNG header
}


def _migrate(url: str, revision: str, down: bool = False) -> None:
    from alembic import command

    engine = create_engine(url)
    with engine.begin() as conn:
        (command.downgrade if down else command.upgrade)(alembic_config(conn), revision)
    engine.dispose()


def _geometry(db: Database) -> dict[int, tuple]:
    with db.read() as s:
        return {i: (t, n) for i, t, n in s.execute(select(FaceRow.id, FaceRow.crop_template, FaceRow.crop_size))}


def test_0005_backfills_the_crop_geometry_and_downgrades(db_url):
    _migrate(db_url, "0004")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(PersonRow.__table__).values(id=1, name="ann", created=datetime(2024, 1, 1, tzinfo=timezone.utc)))
        add_old_model(conn)
        for face_id, (crop, _) in OLD_CROPS.items():
            add_old_face(conn, face_id, 1, crop, str(face_id) * 64)
        before = stored_rows(conn)
    engine.dispose()

    db = Database(db_url, upgrade=False)
    assert db.revision() == "0004" and head_revision() >= "0005"
    assert db.upgrade() == ("0004", head_revision())
    assert _geometry(db) == {i: want for i, (_, want) in OLD_CROPS.items()}
    with db.engine.connect() as conn:
        after = stored_rows(conn)
    assert project(after, before) == before  # every other value and row as it was
    report = check_database(db)
    assert report.ok, report.problems
    db.close()

    _migrate(db_url, "0004", down=True)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        down = stored_rows(conn)
    engine.dispose()
    assert "crop_template" not in down["faces"][0] and "crop_size" not in down["faces"][0]
    assert project(down, before) == before and len(down["embeddings"]) == len(OLD_CROPS)  # no cascade

    db = Database(db_url)  # upgrades again on open
    assert db.revision() == head_revision() and _geometry(db) == {i: want for i, (_, want) in OLD_CROPS.items()}
    db.close()


@pytest.mark.parametrize("side", [150, 112])
def test_png_side_reads_only_the_header(side):
    from importlib import import_module

    migration = import_module("migrations.versions.0005_crop_geometry")
    head = _crop(side)[:24]
    assert migration.png_side(head) == side
    assert migration.png_side(_crop(side, side + 1)[:24]) is None and migration.png_side(b"\x89PNG") is None
