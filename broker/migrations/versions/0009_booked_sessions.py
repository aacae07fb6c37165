"""Booked sessions run through the broker: a session may be a booked occurrence's room.

* ``tutoring_sessions``: ``programme`` and ``booking`` (the occurrence id, unique: one
  room per occurrence, whichever worker opens it); ``request_id`` and ``student`` become
  nullable (a booked session has no request and several students); a partial index of
  open booked sessions.
* ``users``: ``tutor_profile``, the scheduler profile a tutor account runs sessions as.
* ``session_participants``: the students of a booked session (roster id, grade; pseudonym,
  first name and join time once they join).

Existing rows keep their values (on-demand sessions keep their request and student), so
the upgrade loses nothing. The downgrade deletes booked sessions (and, by cascade, their
participants and buffered messages) before restoring the NOT NULL columns.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None

OPEN_BOOKED = sa.text("ended_at IS NULL AND booking IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("tutor_profile", sa.String(64), nullable=True))
    with op.batch_alter_table("tutoring_sessions") as batch:
        batch.add_column(sa.Column("programme", sa.String(16), nullable=True))
        batch.add_column(sa.Column("booking", sa.String(32), nullable=True))
        batch.alter_column("request_id", existing_type=sa.String(32), nullable=True)
        batch.alter_column("student", existing_type=sa.String(64), nullable=True)
        batch.create_unique_constraint(op.f("uq_tutoring_sessions_booking"), ["booking"])
    op.create_index(
        "ix_tutoring_sessions_open_booked", "tutoring_sessions", ["booking"],
        sqlite_where=OPEN_BOOKED, postgresql_where=OPEN_BOOKED,
    )
    op.create_table(
        "session_participants",
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("student_id", sa.String(64), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=True),
        sa.Column("pseudonym", sa.String(64), nullable=True),
        sa.Column("first_name", sa.String(40), nullable=True),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"], ["tutoring_sessions.id"],
            name=op.f("fk_session_participants_session_id_tutoring_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "student_id", name=op.f("pk_session_participants")),
    )
    op.create_index(
        op.f("ix_session_participants_student_id"), "session_participants", ["student_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_session_participants_student_id"), table_name="session_participants")
    op.drop_table("session_participants")
    op.drop_index("ix_tutoring_sessions_open_booked", table_name="tutoring_sessions")
    op.execute(
        "DELETE FROM chat_messages WHERE session_id IN "
        "(SELECT id FROM tutoring_sessions WHERE booking IS NOT NULL)"
    )
    op.execute("DELETE FROM tutoring_sessions WHERE booking IS NOT NULL")
    with op.batch_alter_table("tutoring_sessions") as batch:
        batch.drop_constraint(op.f("uq_tutoring_sessions_booking"), type_="unique")
        batch.alter_column("student", existing_type=sa.String(64), nullable=False)
        batch.alter_column("request_id", existing_type=sa.String(32), nullable=False)
        batch.drop_column("booking")
        batch.drop_column("programme")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("tutor_profile")
