"""Rostered students per school, grade and groups: the enrolment the staff usage report
compares use against (:func:`broker.stats.enrolled_by_group`).

``roster_counts`` is derived from ``students``: :func:`refresh` rewrites it from the
roster, and the roster import (:func:`broker.roster_import.write_roster`, the only
writer of ``students``) calls it in the import's own transaction, so a committed roster
and its counts always agree and a failed import leaves both as they were. Seeders that
write ``students`` directly call :func:`refresh` themselves.

Why: the usage report counted the whole roster on every call (400,000 students took
45-60 ms on PostgreSQL of a 150 ms budget; docs/stats.md, "Performance").
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.db.models import Base

roster_counts = Base.metadata.tables["roster_counts"]
students = Base.metadata.tables["students"]


async def refresh(conn: AsyncConnection) -> None:
    """Rewrite ``roster_counts`` from ``students`` in the caller's transaction."""
    await conn.execute(roster_counts.delete())
    await conn.execute(
        roster_counts.insert().from_select(
            ["school_id", "grade", "groups", "students"],
            sa.select(
                students.c.school_id, students.c.grade, students.c.groups, sa.func.count()
            ).group_by(students.c.school_id, students.c.grade, students.c.groups),
        )
    )
