"""The initial schema: directory (schools, students), requests, sessions, chat, users, audit.

Written from the models by autogenerate, then made dialect-neutral by hand (server
defaults, plain DateTime(timezone=True) for UTCDateTime, no batch mode needed).

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:11:22.314211
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EMPTY = sa.text("''")
ZERO = sa.text("0")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.Integer().with_variant(sa.BigInteger(), "postgresql"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.String(length=500), server_default=EMPTY, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index(op.f("ix_audit_log_subject"), "audit_log", ["subject"], unique=False)

    op.create_table(
        "help_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("student", sa.String(length=64), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=True),
        sa.Column("school_kind", sa.String(length=32), nullable=True),
        sa.Column("grade", sa.SmallInteger(), nullable=True),
        sa.Column("groups", sa.String(length=32), server_default=EMPTY, nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=True),
        sa.Column("overflow", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("first_choice_unmet", sa.String(length=40), nullable=True),
        sa.Column("unmet_reason", sa.String(length=40), nullable=True),
        sa.Column("unmet_detail", sa.String(length=200), nullable=True),
        sa.Column("priority", sa.SmallInteger(), server_default=ZERO, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(length=32), nullable=True),
        sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_requests")),
    )
    op.create_index(
        op.f("ix_help_requests_requested_at"), "help_requests", ["requested_at"], unique=False
    )
    op.create_index(
        "ix_help_requests_status_queued_at", "help_requests", ["status", "queued_at"], unique=False
    )
    op.create_index(op.f("ix_help_requests_student"), "help_requests", ["student"], unique=False)

    op.create_table(
        "schools",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("low_grade", sa.SmallInteger(), nullable=False),
        sa.Column("high_grade", sa.SmallInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schools")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("vendor_id", sa.String(length=32), nullable=True),
        sa.Column("languages", sa.String(length=64), server_default=EMPTY, nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=True),
        sa.Column("scope_id", sa.String(length=64), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "students",
        sa.Column("sis_id", sa.String(length=64), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=False),
        sa.Column("grade", sa.SmallInteger(), nullable=False),
        sa.Column("groups", sa.String(length=32), server_default=EMPTY, nullable=False),
        sa.Column("given_name", sa.String(length=100), server_default=EMPTY, nullable=False),
        sa.Column("family_name", sa.String(length=100), server_default=EMPTY, nullable=False),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_students_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("sis_id", name=op.f("pk_students")),
    )
    op.create_index(op.f("ix_students_school_id"), "students", ["school_id"], unique=False)

    op.create_table(
        "tutoring_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("student", sa.String(length=64), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("tutor_id", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("school_id", sa.String(length=64), nullable=True),
        sa.Column("school_kind", sa.String(length=32), nullable=True),
        sa.Column("grade", sa.SmallInteger(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("tutored_subject", sa.String(length=64), nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("messages_student", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("messages_tutor", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("chars_student", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("chars_tutor", sa.Integer(), server_default=ZERO, nullable=False),
        sa.Column("first_response_s", sa.Float(), nullable=True),
        sa.Column("rating_helped", sa.Boolean(), nullable=True),
        sa.Column("rating_stars", sa.SmallInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["help_requests.id"],
            name=op.f("fk_tutoring_sessions_request_id_help_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tutoring_sessions")),
    )
    op.create_index(
        op.f("ix_tutoring_sessions_accepted_at"), "tutoring_sessions", ["accepted_at"], unique=False
    )
    op.create_index(
        op.f("ix_tutoring_sessions_request_id"), "tutoring_sessions", ["request_id"], unique=False
    )
    op.create_index(
        op.f("ix_tutoring_sessions_student"), "tutoring_sessions", ["student"], unique=False
    )
    op.create_index(
        op.f("ix_tutoring_sessions_tutor_id"), "tutoring_sessions", ["tutor_id"], unique=False
    )

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("sender", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["tutoring_sessions.id"],
            name=op.f("fk_chat_messages_session_id_tutoring_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    op.create_index(op.f("ix_chat_messages_at"), "chat_messages", ["at"], unique=False)
    op.create_index(
        op.f("ix_chat_messages_session_id"), "chat_messages", ["session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_chat_messages_session_id"), table_name="chat_messages")
    op.drop_index(op.f("ix_chat_messages_at"), table_name="chat_messages")

    op.drop_table("chat_messages")
    op.drop_index(op.f("ix_tutoring_sessions_tutor_id"), table_name="tutoring_sessions")
    op.drop_index(op.f("ix_tutoring_sessions_student"), table_name="tutoring_sessions")
    op.drop_index(op.f("ix_tutoring_sessions_request_id"), table_name="tutoring_sessions")
    op.drop_index(op.f("ix_tutoring_sessions_accepted_at"), table_name="tutoring_sessions")

    op.drop_table("tutoring_sessions")
    op.drop_index(op.f("ix_students_school_id"), table_name="students")

    op.drop_table("students")
    op.drop_table("users")
    op.drop_table("schools")
    op.drop_index(op.f("ix_help_requests_student"), table_name="help_requests")
    op.drop_index("ix_help_requests_status_queued_at", table_name="help_requests")
    op.drop_index(op.f("ix_help_requests_requested_at"), table_name="help_requests")

    op.drop_table("help_requests")
    op.drop_index(op.f("ix_audit_log_subject"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")

    op.drop_table("audit_log")
