"""Each face records its crop geometry: ``faces.crop_template`` and ``faces.crop_size``.

Adds two nullable columns (see :class:`facever.store.schema.FaceRow`) and fills them for the faces
already stored, from the side of their PNG crop where that names one template: 150 px crops are
``"dlib"`` (the default model's geometry), 112 px crops ``"arcface"`` (the from-scratch encoders).
A square crop of another side gets its ``crop_size`` and no template (None: facever refuses to
re-embed it rather than guess); a crop that is not a readable PNG gets neither. Only the first 24
bytes of each crop (the PNG signature and header) are read, in batches of :data:`BATCH` faces.
Downgrading drops the two columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""

from __future__ import annotations

import struct
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: Faces read and updated per round trip.
BATCH = 1000

#: Crop side in pixels → the one template stored crops of that side were aligned to (frozen here:
#: this is what facever wrote before the geometry was recorded).
TEMPLATE_OF_SIZE = {150: "dlib", 112: "arcface"}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_faces = sa.table("faces", sa.column("id", sa.Integer), sa.column("crop", sa.LargeBinary),
                  sa.column("crop_template", sa.String), sa.column("crop_size", sa.Integer))


def png_side(head: bytes) -> int | None:
    """Side in pixels of a square PNG from its first 24 bytes (signature, IHDR width and height);
    None when they are not a PNG header or the image is not square."""
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width) if width == height and width > 0 else None


def upgrade() -> None:
    op.add_column("faces", sa.Column("crop_template", sa.String(length=32), nullable=True))
    op.add_column("faces", sa.Column("crop_size", sa.Integer(), nullable=True))
    conn = op.get_bind()
    update = (_faces.update().where(_faces.c.id == sa.bindparam("face_id"))
              .values(crop_template=sa.bindparam("template"), crop_size=sa.bindparam("size")))
    last = None
    while True:
        query = sa.select(_faces.c.id, sa.func.substr(_faces.c.crop, 1, 24, type_=sa.LargeBinary))
        if last is not None:
            query = query.where(_faces.c.id > last)
        rows = conn.execute(query.order_by(_faces.c.id).limit(BATCH)).all()
        if not rows:
            break
        values = []
        for face_id, head in rows:
            size = png_side(bytes(head)) if head is not None else None
            if size is not None:
                values.append({"face_id": face_id, "template": TEMPLATE_OF_SIZE.get(size), "size": size})
        if values:
            conn.execute(update, values)
        last = rows[-1][0]


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite ≥ 3.35, PostgreSQL): no table copy, so the
    # embeddings that reference faces are never touched
    op.drop_column("faces", "crop_size")
    op.drop_column("faces", "crop_template")
