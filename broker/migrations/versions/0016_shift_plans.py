"""Vendors' shift plans (issue 15): a weekly headcount pattern per queue in the district's
wall-clock half-hours, and dated exceptions as UTC instants. See
broker/db/capacity_models.py and broker/capacity/shifts.py.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shift_plans",
        sa.Column("vendor", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("vendor", "language", name=op.f("pk_shift_plans")),
    )
    op.create_table(
        "shift_slots",
        sa.Column("vendor", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("headcount", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "vendor", "language", "weekday", "slot", name=op.f("pk_shift_slots")
        ),
    )
    op.create_table(
        "shift_exceptions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("vendor", sa.String(32), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("headcount", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False, server_default=sa.text("''")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shift_exceptions")),
    )
    op.create_index(
        "ix_shift_exceptions_queue_start", "shift_exceptions",
        ["vendor", "language", "starts_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_shift_exceptions_queue_start", table_name="shift_exceptions")
    op.drop_table("shift_exceptions")
    op.drop_table("shift_slots")
    op.drop_table("shift_plans")
