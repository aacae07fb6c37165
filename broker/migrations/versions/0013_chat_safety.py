"""Chat safety: flags for staff review (held/masked messages, reports, distress) and
staff alerts (distress, a queue with nobody on shift), and ``help_requests.left_until`` (a
question left for the next tutor keeps its place while the student is away). See
broker/db/safety_models.py.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None

OPEN_FLAG = sa.text("status = 'open'")
OPEN_ALERT = sa.text("cleared_at IS NULL")


def upgrade() -> None:
    # A question left for the next tutor keeps its place while the student is away.
    with op.batch_alter_table("help_requests") as batch:
        batch.add_column(sa.Column("left_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "safety_flags",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("school_id", sa.String(64), nullable=True),
        sa.Column("vendor", sa.String(32), nullable=False),
        sa.Column("tutor_id", sa.String(64), nullable=False),
        sa.Column("by", sa.String(8), nullable=False),
        sa.Column("categories", sa.String(200), nullable=False, server_default=sa.text("''")),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("note", sa.String(500), nullable=False, server_default=sa.text("''")),
        sa.Column("client_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("keep_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'open'")),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_safety_flags_session_id", "safety_flags", ["session_id"])
    op.create_index("ix_safety_flags_school_id", "safety_flags", ["school_id"])
    op.create_index("ix_safety_flags_keep_until", "safety_flags", ["keep_until"])
    op.create_index(
        "ix_safety_flags_open", "safety_flags", ["created_at"],
        sqlite_where=OPEN_FLAG, postgresql_where=OPEN_FLAG,
    )
    op.create_index(
        "uq_safety_flags_client", "safety_flags", ["session_id", "client_id"], unique=True
    )
    op.create_table(
        "staff_alerts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("dedupe_key", sa.String(120), nullable=False),
        sa.Column("queue", sa.String(64), nullable=True),
        sa.Column("session_id", sa.String(32), nullable=True),
        sa.Column("school_id", sa.String(64), nullable=True),
        sa.Column("vendor", sa.String(32), nullable=True),
        sa.Column("detail", sa.String(300), nullable=False, server_default=sa.text("''")),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_staff_alerts_school_id", "staff_alerts", ["school_id"])
    op.create_index("ix_staff_alerts_raised_at", "staff_alerts", ["raised_at"])
    op.create_index(
        "uq_staff_alerts_open", "staff_alerts", ["dedupe_key"], unique=True,
        sqlite_where=OPEN_ALERT, postgresql_where=OPEN_ALERT,
    )


def downgrade() -> None:
    with op.batch_alter_table("help_requests") as batch:
        batch.drop_column("left_until")
    op.drop_table("staff_alerts")
    op.drop_table("safety_flags")
