"""chat_images: pictures sent in a chat (issue 14), re-encoded, kept for the session only
unless the district keeps messages. See broker/db/media_models.py.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_images",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(8), nullable=False),
        sa.Column("media_type", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["tutoring_sessions.id"],
            name=op.f("fk_chat_images_session_id_tutoring_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_images")),
    )
    op.create_index(op.f("ix_chat_images_session_id"), "chat_images", ["session_id"])
    op.create_index(op.f("ix_chat_images_created_at"), "chat_images", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_chat_images_created_at"), table_name="chat_images")
    op.drop_index(op.f("ix_chat_images_session_id"), table_name="chat_images")
    op.drop_table("chat_images")
