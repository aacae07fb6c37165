"""The live state moves into the database: queue order, claims, the one-open-request rule,
capacity in use, message sequence numbers and the open session's message buffer.

* ``help_requests``: ``rank`` (service order), ``topic`` and ``first_name`` (kept while the
  request is open), a partial unique index on ``student`` over open requests (the database
  refuses a second open request per student), and a partial index of queued requests by
  queue and rank.
* ``tutoring_sessions``: ``tutor_name``, ``seq``, ``last_activity_at``,
  ``first_response_at``, and partial indexes of open sessions by tutor and by student.
* ``chat_messages``: ``seq``.
* ``tutor_states``: a tutor's status and the sessions they hold.

Data already there: queued requests get their rank from ``queued_at`` and ``priority``; if a
student holds more than one open request (which the old state allowed after some faults),
all but the newest are closed as ``abandoned`` (reason ``duplicate_open``) before the unique
index is made; ``tutor_states`` is filled from the open sessions.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

OPEN_REQUEST = sa.text("status IN ('queued', 'accepted')")
QUEUED = sa.text("status = 'queued'")
OPEN_SESSION = sa.text("ended_at IS NULL")
ZERO = sa.text("0")
EMPTY = sa.text("''")
HEAD_START_S = 120.0  # broker.constants.PRIORITY_HEAD_START_S when this revision was written


def _epoch(column: str) -> str:
    if op.get_bind().dialect.name == "postgresql":
        return f"EXTRACT(EPOCH FROM {column})"
    return f"(julianday({column}) - 2440587.5) * 86400.0"


def upgrade() -> None:
    with op.batch_alter_table("help_requests") as batch:
        batch.add_column(sa.Column("rank", sa.Float(), nullable=True))
        batch.add_column(sa.Column("topic", sa.String(200), nullable=True))
        batch.add_column(sa.Column("first_name", sa.String(40), nullable=True))
    op.execute(
        f"UPDATE help_requests SET rank = {_epoch('queued_at')} - priority * {HEAD_START_S} "
        "WHERE queued_at IS NOT NULL"
    )
    # Newest open request per student stays open; older ones are closed.
    op.execute(
        "UPDATE help_requests SET status = 'abandoned', close_reason = 'duplicate_open', "
        "closed_at = requested_at "
        "WHERE status IN ('queued', 'accepted') AND EXISTS ("
        " SELECT 1 FROM help_requests AS newer WHERE newer.student = help_requests.student"
        " AND newer.status IN ('queued', 'accepted')"
        " AND (newer.requested_at > help_requests.requested_at"
        "  OR (newer.requested_at = help_requests.requested_at AND newer.id > help_requests.id)))"
    )
    op.create_index(
        "uq_help_requests_open_student", "help_requests", ["student"], unique=True,
        sqlite_where=OPEN_REQUEST, postgresql_where=OPEN_REQUEST,
    )
    op.create_index(
        "ix_help_requests_queued_rank", "help_requests", ["queue", "rank", "id"],
        sqlite_where=QUEUED, postgresql_where=QUEUED,
    )

    with op.batch_alter_table("tutoring_sessions") as batch:
        batch.add_column(
            sa.Column("tutor_name", sa.String(100), server_default=EMPTY, nullable=False)
        )
        batch.add_column(sa.Column("seq", sa.Integer(), server_default=ZERO, nullable=False))
        batch.add_column(sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE tutoring_sessions SET seq = messages_student + messages_tutor, "
        "last_activity_at = accepted_at WHERE ended_at IS NULL"
    )
    op.create_index(
        "ix_tutoring_sessions_open_tutor", "tutoring_sessions", ["tutor_id"],
        sqlite_where=OPEN_SESSION, postgresql_where=OPEN_SESSION,
    )
    op.create_index(
        "ix_tutoring_sessions_open_student", "tutoring_sessions", ["student"],
        sqlite_where=OPEN_SESSION, postgresql_where=OPEN_SESSION,
    )

    with op.batch_alter_table("chat_messages") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), server_default=ZERO, nullable=False))

    op.create_table(
        "tutor_states",
        sa.Column("tutor_id", sa.String(64), nullable=False),
        sa.Column("vendor", sa.String(32), nullable=False),
        sa.Column("languages", sa.String(64), server_default=EMPTY, nullable=False),
        sa.Column("status", sa.String(16), server_default=sa.text("'away'"), nullable=False),
        sa.Column("open_sessions", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tutor_id", name="pk_tutor_states"),
    )
    op.execute(
        "INSERT INTO tutor_states (tutor_id, vendor, languages, status, open_sessions, "
        "updated_at) SELECT tutor_id, MIN(vendor), '', 'away', COUNT(*), MAX(accepted_at) "
        "FROM tutoring_sessions WHERE ended_at IS NULL GROUP BY tutor_id"
    )


def downgrade() -> None:
    op.drop_table("tutor_states")
    with op.batch_alter_table("chat_messages") as batch:
        batch.drop_column("seq")
    op.drop_index("ix_tutoring_sessions_open_student", table_name="tutoring_sessions")
    op.drop_index("ix_tutoring_sessions_open_tutor", table_name="tutoring_sessions")
    with op.batch_alter_table("tutoring_sessions") as batch:
        batch.drop_column("first_response_at")
        batch.drop_column("last_activity_at")
        batch.drop_column("seq")
        batch.drop_column("tutor_name")
    op.drop_index("ix_help_requests_queued_rank", table_name="help_requests")
    op.drop_index("uq_help_requests_open_student", table_name="help_requests")
    with op.batch_alter_table("help_requests") as batch:
        batch.drop_column("first_name")
        batch.drop_column("topic")
        batch.drop_column("rank")
