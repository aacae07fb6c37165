"""Rostered students counted per school, grade and groups (issue 15, docs/stats.md
"Performance"): the staff usage report's enrolment read a few hundred rows instead of
counting the whole roster (400,000 students: 45-60 ms on PostgreSQL) on every call.
Derived from ``students``; the roster import rewrites it in its own transaction
(broker/roster_counts.py). Filled here from the roster as it stands.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels = None
depends_on = None

FILL = """
INSERT INTO roster_counts (school_id, grade, groups, students)
SELECT school_id, grade, groups, count(*) FROM students GROUP BY school_id, grade, groups
"""


def upgrade() -> None:
    op.create_table(
        "roster_counts",
        sa.Column("school_id", sa.String(64), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("groups", sa.String(32), nullable=False),
        sa.Column("students", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("school_id", "grade", "groups", name="pk_roster_counts"),
    )
    op.execute(FILL)


def downgrade() -> None:
    op.drop_table("roster_counts")
