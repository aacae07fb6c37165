"""A small, hand-made history with known answers, shared by the stats tests and the bench.

Times are UTC; the district is America/Los_Angeles (PST = UTC-8 until 2024-03-10 and from
2024-11-03 09:00 UTC, PDT = UTC-7 in between). Students ``s1``..``s14`` are pseudonyms.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from broker import roster_counts
from broker.db.models import help_requests, schools, students, tutoring_sessions
from broker.request_rollup import fill_rows

UTC = dt.UTC
EVIL_SCHOOL = "=cmd|' /C calc'!A0"


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def sec(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def request_row(
    rid: str, student: str, groups: str, school: str | None, grade: int | None, lang: str,
    when: dt.datetime, **values: Any,
) -> dict[str, Any]:
    """A ``help_requests`` row with every column given (executemany wants the same keys)."""
    row: dict[str, Any] = dict.fromkeys(
        ("school_kind", "vendor", "queue", "first_choice_unmet", "unmet_reason",
         "unmet_detail", "queued_at", "accepted_at", "closed_at", "close_reason"),
    )
    row.update(
        id=rid, student=student, groups=groups, school_id=school, grade=grade, language=lang,
        subject="math", requested_at=when, overflow=False, priority=0, is_test=False,
    )
    if values.get("vendor"):
        row.update(queue=f"{values['vendor']}:{lang}", queued_at=when)
    row.update(values)
    return row


def session_row(
    sid: str, request: dict[str, Any], tutor: str, accepted: dt.datetime,
    ended: dt.datetime | None, end_reason: str | None = "tutor",
) -> dict[str, Any]:
    """A ``tutoring_sessions`` row of ``request``, as the broker writes it."""
    return {
        "id": sid, "request_id": request["id"], "student": request["student"],
        "vendor": request["vendor"], "tutor_id": tutor, "language": request["language"],
        "subject": request["subject"], "school_id": None, "school_kind": None, "grade": None,
        "queued_at": request["queued_at"], "accepted_at": accepted, "ended_at": ended,
        "end_reason": end_reason if ended else None,
    }


# id, student, groups, school, grade, language, vendor, queued_at, wait_s, minutes, tutor, status
ACCEPTED = [
    ("a1", "s1", "EL,SWD", "k12", 2, "fr", "paper", "2024-01-08 17:00:00", 10, 20, "p1", "ended"),
    ("a2", "s1", "EL,SWD", "elem", 3, "en", "paper", "2024-01-08 17:20:00", 20, 30, "p1", "ended"),
    ("a4", "s2", "RFEP", "ms", 7, "en", "tutor", "2024-01-10 22:00:00", 45, 60, "t1", "ended"),
    ("a5", "s2", "RFEP", "ms", 7, "en", "tutor", "2024-01-10 22:30:00", 60, 15, "t2", "ended"),
    ("a6", "s4", "", "hs", 9, "en", "tutor", "2024-07-01 17:00:00", 90, 30, "t1", "ended"),
    ("a7", "s1", "EL,SWD", "elem", 3, "en", "paper", "2024-11-03 08:25:00", 150, 10, "p2", "ended"),
    ("a8", "s5", "EL", "k8", 6, "es", "paper", "2024-11-03 09:20:00", 400, 20, "p2", "ended"),
    ("a9", "s6", "SWD", "hs", 12, "en", "tutor", "2024-01-12 05:00:00", 700, 45, "t3", "ended"),
    ("a10", "s4", "", "hs", 9, "en", "tutor", "2024-01-13 18:00:00", 1500, None, "t1", "accepted"),
]
# id, student, groups, school, grade, language, vendor, queued_at, status, after_s, overflow
QUEUED = [
    ("g1", "s7", "EL", "hs", 10, "en", "tutor", "2024-01-09 18:00:00", "abandoned", 100, False),
    ("g2", "s8", "", "k12", 2, "fr", "paper", "2024-01-09 19:00:00", "cancelled", 20, True),
    ("g3", "s7", "EL", "hs", 10, "en", "tutor", "2024-01-10 18:00:00", "cancelled", 300, False),
    ("g4", "s9", "RFEP", "ms", 8, "es", "tutor", "2024-01-11 18:00:00", "expired", 1800, False),
    ("q1", "s10", "", "elem", 4, "en", "paper", "2024-01-12 18:00:00", "queued", None, False),
]
# id, student, groups, school, grade, language, reason, requested_at
UNMET = [
    ("u1", "s11", "EL", "hs", 10, "zh", "language_unsupported", "2024-01-09 20:15:00"),
    ("u2", "s11", "EL", "hs", 11, "zh", "language_unsupported", "2024-01-10 03:00:00"),
    ("u3", "s12", "", "elem", 3, "en", "subject_unsupported", "2024-01-10 20:40:00"),
    (
        "u4",
        "s13",
        "",
        "zz-unknown",
        7,
        "en",
        "school_unknown_grade_ambiguous",
        "2024-01-11 16:00:00",
    ),
    ("u5", "s14", "", "evil", 2, "en", "no_vendor", "2024-01-11 20:00:00"),
]
#: Roster: 20 students; SWD 4, EL 5, RFEP 2.
ROSTER_GROUPS = ["SWD"] * 3 + ["EL,SWD"] + ["EL"] * 4 + ["RFEP"] * 2 + [""] * 10


async def seed(engine: AsyncEngine) -> None:
    reqs: list[dict[str, Any]] = []
    sess: list[dict[str, Any]] = []
    for rid, student, groups, school, grade, lang, vendor, queued, wait, mins, tutor, status in (
        ACCEPTED
    ):
        q = t(queued)
        accepted = q + sec(wait)
        ended = accepted + dt.timedelta(minutes=mins) if mins is not None else None
        overflow = "language_unsupported" if rid == "a1" else None
        row = request_row(
            rid, student, groups, school, grade, lang, q, vendor=vendor, status=status,
            accepted_at=accepted, closed_at=ended, overflow=overflow is not None,
            first_choice_unmet=overflow,
        )
        reqs.append(row)
        sess.append(session_row(f"S{rid}", row, tutor, accepted, ended))
    # a3: accepted after 30 s, requeued when its tutor left 2 min later, accepted again.
    q = t("2024-01-09 01:00:00")
    row = request_row(
        "a3", "s3", "", "hs", 10, "es", q, vendor="tutor", status="ended",
        accepted_at=q + sec(200), closed_at=q + sec(2000),
    )
    reqs.append(row)
    sess.append(session_row("Sa3a", row, "t1", q + sec(30), q + sec(150), "requeued"))
    sess.append(session_row("Sa3b", row, "t2", q + sec(200), q + sec(2000)))
    for rid, student, groups, school, grade, lang, vendor, queued, status, after, ov in QUEUED:
        q = t(queued)
        closed = q + sec(after) if after is not None else None
        reqs.append(request_row(
            rid, student, groups, school, grade, lang, q, vendor=vendor, status=status,
            closed_at=closed, close_reason=status if closed else None, overflow=ov,
            first_choice_unmet="language_unsupported" if ov else None,
        ))
    for rid, student, groups, school, grade, lang, reason, when in UNMET:
        reqs.append(request_row(
            rid, student, groups, school, grade, lang, t(when), status="unmet",
            closed_at=t(when), unmet_reason=reason, unmet_detail="no vendor",
        ))
    # Test traffic: must never be counted.
    q = t("2024-01-09 18:30:00")
    row = request_row(
        "x1", "sx", "EL", "hs", 9, "en", q, vendor="tutor", status="ended",
        accepted_at=q + sec(5), closed_at=q + sec(65), is_test=True,
    )
    reqs.append(row)
    sess.append(session_row("Sx1", row, "t9", q + sec(5), q + sec(65)))
    roster = [
        {"sourced_id": f"r{i}", "sis_id": f"SIS{i:05d}",
         "school_id": ("elem", "ms", "hs", "k8")[i % 4], "grade": i % 13, "groups": g}
        for i, g in enumerate(ROSTER_GROUPS)
    ]
    fill_rows(reqs, sess)
    async with engine.begin() as conn:
        await conn.execute(schools.insert().values(
            id="evil", name=EVIL_SCHOOL, region="East", low_grade=0, high_grade=5,
            kind="elementary",
        ))
        await conn.execute(help_requests.insert(), reqs)
        await conn.execute(tutoring_sessions.insert(), sess)
        await conn.execute(students.insert(), roster)
        await roster_counts.refresh(conn)  # as the roster import does


#: Requests a tutor accepted, then left (the request went back to its queue): ``r1`` was
#: then cancelled, ``r2`` expired and ``r3`` is waiting again. Each counts as accepted (at
#: its first acceptance), never as gave up or still waiting.
REQUEUED = [
    ("r1", "s15", "cancelled", 300),
    ("r2", "s16", "expired", 7200),
    ("r3", "s17", "queued", None),
]


async def seed_requeued(engine: AsyncEngine) -> None:
    """Add :data:`REQUEUED` (February 2024, ``tutor``, grade 10, English) to a seeded history."""
    reqs: list[dict[str, Any]] = []
    sess: list[dict[str, Any]] = []
    for n, (rid, student, status, closed_after) in enumerate(REQUEUED):
        q = t(f"2024-02-0{n + 5} 18:00:00")
        closed = q + sec(closed_after) if closed_after is not None else None
        row = request_row(
            rid, student, "", "hs", 10, "en", q, vendor="tutor", status=status,
            accepted_at=q + sec(40), closed_at=closed, close_reason=status if closed else None,
        )
        reqs.append(row)
        sess.append(session_row(f"S{rid}", row, "t1", q + sec(40), q + sec(100), "requeued"))
    fill_rows(reqs, sess)
    async with engine.begin() as conn:
        await conn.execute(help_requests.insert(), reqs)
        await conn.execute(tutoring_sessions.insert(), sess)
