"""Liveness challenges shared by every worker of the HTTP service.

Adds ``liveness_challenges`` (see :class:`facever.store.schema.LivenessChallengeRow`). Existing tables
are untouched.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "liveness_challenges",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("steps", sa.String(length=64), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("key_name", sa.String(length=64), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("result_expires", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_liveness_challenges"),
    )
    op.create_index("ix_liveness_challenges_expires", "liveness_challenges", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_liveness_challenges_expires", table_name="liveness_challenges")
    op.drop_table("liveness_challenges")
