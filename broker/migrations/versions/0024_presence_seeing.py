"""Every ``serve`` process on shared presence now keeps a row in ``presence_blind``, blind
or not (issue 10): a process cut off from Redis alone hands its clients over to the
processes that still reach it, and needs to know that one does. ``blind`` says which; the
rows written before this migration were all blind ones. See broker/presence_blind.py.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("presence_blind") as batch:  # SQLite: the table is rebuilt
        batch.add_column(
            sa.Column("blind", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    op.execute("DELETE FROM presence_blind WHERE NOT blind")
    with op.batch_alter_table("presence_blind") as batch:
        batch.drop_column("blind")
