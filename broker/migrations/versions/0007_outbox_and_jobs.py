"""The outbox (reminders and notices waiting for a mail/SMS sender) and background jobs'
state, both in the database so that a crashed worker loses neither.

* ``outbox``: one message to one person, written in the same transaction as the change it
  announces; ``dedupe_key`` is unique, so a job that runs twice writes a reminder once. A
  sender claims due rows, sends, and marks them ``sent_at`` (or counts the attempt and
  sets ``next_attempt_at``).
* ``job_runs``: per background job, when it last started and finished, whether it
  succeeded and why not; the lease that makes a job run once across workers lives in Redis
  (allowed to be lost: a lost lease means the job runs again, and jobs are idempotent).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None

ZERO = sa.text("0")
EMPTY = sa.text("''")


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("recipient_kind", sa.String(16), nullable=False),
        sa.Column("recipient_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(320), nullable=True),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("last_error", sa.String(500), server_default=EMPTY, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["next_attempt_at"],
        postgresql_where=sa.text("sent_at IS NULL AND cancelled_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL AND cancelled_at IS NULL"),
    )
    op.create_index("ix_outbox_recipient", "outbox", ["recipient_kind", "recipient_id"])
    op.create_table(
        "job_runs",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("runs", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("failures", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ok", sa.Boolean(), nullable=True),
        sa.Column("last_error", sa.String(500), server_default=EMPTY, nullable=False),
        sa.Column("worker", sa.String(64), server_default=EMPTY, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_runs"),
    )


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_index("ix_outbox_recipient", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
