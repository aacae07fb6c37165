"""chat_messages.client_id: the sender's own id for a message, unique in its session.

A client that sent ``chat:send`` and lost the acknowledgement (a dropped connection, a
process that died after committing) sends it again with the same ``client_id``; the
broker then answers with the message it already made instead of numbering a second copy
(docs/protocol.md, ``chat:send``). Existing rows get ``NULL``, which a unique index never
compares equal, so the upgrade refuses nothing. (Revision 0010 was never used: the
scheduler's benchmark needed no new index.)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_messages") as batch:
        batch.add_column(sa.Column("client_id", sa.String(length=40), nullable=True))
    op.create_index(
        "uq_chat_messages_client", "chat_messages", ["session_id", "client_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_chat_messages_client", table_name="chat_messages")
    with op.batch_alter_table("chat_messages") as batch:
        batch.drop_column("client_id")
