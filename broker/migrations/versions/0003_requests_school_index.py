"""Index help_requests.school_id: school-scoped staff figures filter on it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_help_requests_school_id", "help_requests", ["school_id"])


def downgrade() -> None:
    op.drop_index("ix_help_requests_school_id", table_name="help_requests")
