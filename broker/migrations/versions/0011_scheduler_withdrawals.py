"""The scheduler's withdrawals and safeguards (see ``docs/scheduler.md``):

* ``enrolments``: ``withdrawn_at``, ``withdrawn_by``, ``withdraw_reason``. A withdrawn
  enrolment keeps its row as history, so the unique index on (student, offer) becomes a
  partial one over enrolments not withdrawn: re-enrolling adds a new row.
* ``parent_links``: ``expired_at`` (set by the links job) and an index on ``expires_at``
  (what that job and the purge read).
* ``calendar_feeds``: ``last_used_at`` (shown in an owner's list of feeds).

Existing rows keep their values (every enrolment stays active, no link is marked), so
the upgrade loses nothing. The downgrade drops the new columns; it refuses while an
(student, offer) pair has more than one enrolment row, since the old unique index could
not hold them (delete the withdrawn rows first).

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None

ACTIVE = sa.text("withdrawn_at IS NULL")
EMPTY = sa.text("''")


def upgrade() -> None:
    with op.batch_alter_table("enrolments") as batch:
        batch.add_column(sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("withdrawn_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("withdraw_reason", sa.String(length=200),
                                   server_default=EMPTY, nullable=False))
    op.drop_index("uq_enrolments_student_offer", table_name="enrolments")
    op.create_index(
        "uq_enrolments_student_offer_active", "enrolments", ["student_id", "offer_id"],
        unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE,
    )
    with op.batch_alter_table("parent_links") as batch:
        batch.add_column(sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_parent_links_expires_at", "parent_links", ["expires_at"])
    with op.batch_alter_table("calendar_feeds") as batch:
        batch.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calendar_feeds") as batch:
        batch.drop_column("last_used_at")
    op.drop_index("ix_parent_links_expires_at", table_name="parent_links")
    with op.batch_alter_table("parent_links") as batch:
        batch.drop_column("expired_at")
    op.drop_index("uq_enrolments_student_offer_active", table_name="enrolments")
    op.create_index(
        "uq_enrolments_student_offer", "enrolments", ["student_id", "offer_id"], unique=True
    )
    with op.batch_alter_table("enrolments") as batch:
        batch.drop_column("withdraw_reason")
        batch.drop_column("withdrawn_by")
        batch.drop_column("withdrawn_at")
