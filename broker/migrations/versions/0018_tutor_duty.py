"""Tutors' time on duty (issue 15): one row per tutor, queue and span of being available
and connected, ``ended_at`` NULL while open; at most one open span per tutor and queue (a
partial unique index), and an index for reading a queue's spans overlapping a period. See
broker/db/duty_models.py and broker/duty.py.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels = None
depends_on = None

OPEN_DUTY = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "tutor_duty",
        sa.Column(
            "id", sa.Integer().with_variant(sa.BigInteger(), "postgresql"), autoincrement=True,
            nullable=False,
        ),
        sa.Column("tutor_id", sa.String(64), nullable=False),
        sa.Column("vendor", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tutor_duty")),
    )
    op.create_index(
        "uq_tutor_duty_open", "tutor_duty", ["tutor_id", "vendor", "language"], unique=True,
        sqlite_where=OPEN_DUTY, postgresql_where=OPEN_DUTY,
    )
    op.create_index(
        "ix_tutor_duty_queue_end", "tutor_duty", ["vendor", "language", "ended_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_tutor_duty_queue_end", table_name="tutor_duty")
    op.drop_index("uq_tutor_duty_open", table_name="tutor_duty")
    op.drop_table("tutor_duty")
