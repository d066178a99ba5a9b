"""pgvector search: embeddings also in a ``vector(128)`` column with an HNSW index (PostgreSQL only).

Conditional on the server: on PostgreSQL whose server offers the ``vector`` extension, creates it
(when the connected role may), adds ``embeddings.embedding vector(128)``, fills it from the stored
128-d embeddings and builds an HNSW index (inner product, m 32, ef_construction 80). SQLite, and
PostgreSQL without pgvector, are left exactly as they are (the revision is recorded all the same;
`facever db upgrade` enables it later once the extension is there). See :mod:`facever.store.vectors`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-02
"""

from __future__ import annotations

from typing import Sequence, Union

from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    from facever.store import vectors

    vectors.install(op.get_bind())


def downgrade() -> None:
    from facever.store import vectors

    vectors.drop(op.get_bind())
