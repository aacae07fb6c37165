"""students: keep OneRoster's sourcedId as the key (``sourced_id``) and add the SIS number.

A launch names the student by their SIS number (Schoology's
``$com.schoology.User.uniqueId``), which is OneRoster's ``identifier``, not its
``sourcedId``; until now the import stored ``sourcedId`` in ``sis_id`` and launches were
matched on it. The key column is renamed ``sourced_id`` and a new, unique ``sis_id`` holds
the SIS number. Rows imported before this revision have no identifier on record, so their
``sis_id`` is their ``sourcedId`` (what the column held); the next import fills the real
identifiers. Downgrading drops the identifiers and matches launches on sourcedId again.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

ID = sa.String(64)


def upgrade() -> None:
    with op.batch_alter_table("students") as batch:
        batch.alter_column(
            "sis_id", new_column_name="sourced_id", existing_type=ID, existing_nullable=False
        )
    with op.batch_alter_table("students") as batch:
        batch.add_column(sa.Column("sis_id", ID, nullable=True))
    op.execute("UPDATE students SET sis_id = sourced_id")
    with op.batch_alter_table("students") as batch:
        batch.alter_column("sis_id", existing_type=ID, nullable=False)
        batch.create_index("ix_students_sis_id", ["sis_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("students") as batch:
        batch.drop_index("ix_students_sis_id")
        batch.drop_column("sis_id")
    with op.batch_alter_table("students") as batch:
        batch.alter_column(
            "sourced_id", new_column_name="sis_id", existing_type=ID, existing_nullable=False
        )
