"""Make ``audit_log`` append-only in the database itself.

PostgreSQL: a trigger function raising on ``UPDATE`` and ``DELETE`` (row triggers) and on
``TRUNCATE`` (a statement trigger). SQLite: ``BEFORE UPDATE`` / ``BEFORE DELETE`` triggers
that ``RAISE(ABORT)``. Inserts are unaffected. Downgrading drops the triggers (and needs
the privileges of the schema owner, which the application role should not have).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "audit_log is append-only"

PG_UP = [
    f"""
    CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """,
    """
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """,
]
PG_DOWN = [
    "DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log",
    "DROP TRIGGER IF EXISTS audit_log_no_update_delete ON audit_log",
    "DROP FUNCTION IF EXISTS audit_log_append_only()",
]
SQLITE_UP = [
    f"""
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
    """,
    f"""
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END
    """,
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_log_no_update",
    "DROP TRIGGER IF EXISTS audit_log_no_delete",
]


def _run(statements: list[str]) -> None:
    for statement in statements:
        op.execute(statement)


def upgrade() -> None:
    name = op.get_bind().dialect.name
    if name == "postgresql":
        _run(PG_UP)
    elif name == "sqlite":
        _run(SQLITE_UP)


def downgrade() -> None:
    name = op.get_bind().dialect.name
    if name == "postgresql":
        _run(PG_DOWN)
    elif name == "sqlite":
        _run(SQLITE_DOWN)
