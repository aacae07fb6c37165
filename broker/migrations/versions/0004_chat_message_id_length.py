"""chat_messages.id holds "<session id>.<sequence>": widen it from 32 to 48 characters.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_messages") as batch:
        batch.alter_column("id", existing_type=sa.String(32), type_=sa.String(48))


def downgrade() -> None:
    with op.batch_alter_table("chat_messages") as batch:
        batch.alter_column("id", existing_type=sa.String(48), type_=sa.String(32))
