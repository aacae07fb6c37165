"""tutoring_sessions.tutor_notes: the tutor's private notes, kept with the outcome (issue 14).

Written with the outcome (``session:end`` / ``session:outcome``'s ``notes``), at most
:data:`broker.constants.TUTOR_NOTES_MAX_CHARS` characters; read by nobody but the district's
data request for the student (``homework-help student export``) and the purge with the
session's metadata. The student never sees them, nor any other vendor (docs/protocol.md).
Existing rows get ``NULL``.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tutoring_sessions") as batch:
        batch.add_column(sa.Column("tutor_notes", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tutoring_sessions") as batch:
        batch.drop_column("tutor_notes")
