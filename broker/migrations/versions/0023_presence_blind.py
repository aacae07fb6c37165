"""Processes that cannot vouch for their own connections (issue 10): a ``serve`` process
cut off from Redis alone (a partition, while the others reach it) says so here, so that the
others do not judge its connected people gone past the grace period. See
broker/db/presence_blind_models.py and broker/presence_blind.py.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "presence_blind",
        sa.Column("process", sa.String(64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process", name=op.f("pk_presence_blind")),
    )


def downgrade() -> None:
    op.drop_table("presence_blind")
