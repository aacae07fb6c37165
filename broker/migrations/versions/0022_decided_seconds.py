"""Each request's seconds from the queue to its first acceptance or give-up, as a column
the database computes (generated, stored) from the timestamps (issue 15, docs/stats.md
"Performance"): the wait percentiles over a year sort it instead of computing it on every
row (a third of the ``waits`` report). broker/db/computed.py holds the expressions.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from broker.db.computed import DECIDED_SECONDS_POSTGRESQL, DECIDED_SECONDS_SQLITE

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    expression = DECIDED_SECONDS_POSTGRESQL if postgresql else DECIDED_SECONDS_SQLITE
    column = sa.Column("decided_s", sa.Float(), sa.Computed(expression, persisted=True))
    with op.batch_alter_table("help_requests") as batch:  # SQLite: the table is rebuilt
        batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("help_requests") as batch:
        batch.drop_column("decided_s")
