"""Indexes for the staff statistics over a school year (issue 15, docs/stats.md
"Performance"): each request's first acceptance read from an index alone, and the few
overflowed requests found without reading every request.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None

OVERFLOWED = sa.text("first_choice_unmet IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_tutoring_sessions_request_accepted", "tutoring_sessions",
        ["request_id", "accepted_at"],
    )
    op.create_index(
        "ix_help_requests_overflowed", "help_requests", ["first_choice_unmet"],
        sqlite_where=OVERFLOWED, postgresql_where=OVERFLOWED,
    )


def downgrade() -> None:
    op.drop_index("ix_help_requests_overflowed", table_name="help_requests")
    op.drop_index("ix_tutoring_sessions_request_accepted", table_name="tutoring_sessions")
