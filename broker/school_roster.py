"""What a school's tutoring designee picks from on the scheduling page: the school's roster
students with their enrolment in one programme offer, and the offer's vendor's tutors.

Read models only (the scheduler's writes are :mod:`broker.scheduler`'s). Who may read is
the scheduler's policy: district staff any school, a school's staff their own school,
vendor managers and everyone else never. Each answered roster read is audit-logged (the
roster holds students' names and grades) before it is returned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import audit
from broker.db.models import metadata
from broker.errors import NotFound
from broker.identity import Identity
from broker.scheduler import policy, store
from broker.scheduler.setup import offer_view, tutor_view

students = metadata.tables["students"]
MAX_ROSTER = 2000


async def school_roster(engine: AsyncEngine, actor: Identity, school_id: str, offer_id: str,
                        endpoint: str, now: datetime) -> dict[str, Any]:
    """The school's students (first name, family initial, grade) in the offer's grades,
    each with ``enrolment`` (language, accommodations) or ``None``; the offer's tutors."""
    policy.school(actor, school_id)
    policy.reader_school(actor)
    async with engine.connect() as conn:
        offer = await store.offer(conn, offer_id)
        if offer is None:
            raise NotFound("no such programme offer", field="offer")
        rows = (await conn.execute(
            sa.select(students.c.sourced_id, students.c.given_name, students.c.family_name,
                      students.c.grade)
            .where(students.c.school_id == school_id,
                   students.c.grade.between(offer["low_grade"], offer["high_grade"]))
            .order_by(students.c.grade, students.c.given_name, students.c.sourced_id)
            .limit(MAX_ROSTER))).mappings().all()
        enrolled = await store.enrolments(conn, offer_id, school_id=school_id)
        tutors = await store.tutors_of(conn, offer["vendor"])
    await audit.record(engine, actor, "scheduler.roster", None, endpoint,
                       f"school={school_id} offer={offer_id}", at=now)
    return {
        "school": school_id, "offer": offer_view(offer),
        "students": [{
            "id": r["sourced_id"], "given_name": r["given_name"],
            "family_initial": (r["family_name"] or "")[:1], "grade": r["grade"],
            "enrolment": _enrolment(enrolled.get(r["sourced_id"])),
        } for r in rows],
        "tutors": [tutor_view(t) for t in tutors],
    }


def _enrolment(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"language": row["language"], "accommodations": store.split(row["accommodations"])}
