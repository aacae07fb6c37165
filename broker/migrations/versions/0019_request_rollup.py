"""Each request's first acceptance and number of sessions kept on the request (issue 15,
docs/stats.md "Performance"): the staff reports over a year read one table instead of
joining every session to its request. Written in the accepting transaction
(broker/lifecycle_store.py) and backfilled here from the sessions, which they are derived
from (broker/request_rollup.py says how, and checks it).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels = None
depends_on = None

RESUMED = sa.text("session_count > 1")

BACKFILL = """
UPDATE help_requests SET
    first_accepted_at = (
        SELECT min(s.accepted_at) FROM tutoring_sessions s WHERE s.request_id = help_requests.id
    ),
    session_count = (
        SELECT count(*) FROM tutoring_sessions s WHERE s.request_id = help_requests.id
    )
WHERE id IN (SELECT request_id FROM tutoring_sessions WHERE request_id IS NOT NULL)
"""


def upgrade() -> None:
    with op.batch_alter_table("help_requests") as batch:
        batch.add_column(sa.Column("first_accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("session_count", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
    op.execute(BACKFILL)
    # the few requests a tutor accepted more than once (requeued), for the heatmap
    op.create_index(
        "ix_help_requests_resumed", "help_requests", ["id"],
        sqlite_where=RESUMED, postgresql_where=RESUMED,
    )


def downgrade() -> None:
    op.drop_index("ix_help_requests_resumed", table_name="help_requests")
    with op.batch_alter_table("help_requests") as batch:
        batch.drop_column("session_count")
        batch.drop_column("first_accepted_at")
