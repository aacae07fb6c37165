"""Reports per school and programme offer over a period of local dates: dosage (sessions
and minutes per student per ISO week against the offer's target), attendance rate,
no-shows by side, and groups scheduled below target.

Who may read: district staff, a school's staff for their own school, and a vendor's
managers for their own vendor's offers without the per-student rows; every answered read
is audit-logged.

Definitions (also in ``docs/scheduler.md``):

* a student **attended** an occurrence marked ``present`` or ``late``; dosage counts those
  occurrences and their minutes, per ISO week of the occurrence's local day; the target
  is the offer's ``min_sessions_per_week`` sessions and that many times
  ``session_minutes`` minutes;
* **attendance rate** = attended / marked student-occurrences (cancelled ones excluded);
* **no-shows**: students marked ``absent``; tutors whose side was closed ``absent``;
* a group is **below target** when, in some ISO week of the period, fewer of its
  occurrences were scheduled or held (not cancelled) than the target.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from broker import audit, csv_export
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity
from broker.scheduler import policy, rules, store
from broker.scheduler.service import Scheduler

ATTENDED = frozenset({"present", "late"})
MAX_DAYS = 400


def _week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


async def report(ctx: Scheduler, actor: Identity, school_id: str, offer_id: str,
                 first: date, last: date, endpoint: str) -> dict[str, Any]:
    """The report of ``school_id`` and ``offer_id`` for local days ``first``..``last``.
    A vendor manager may read their own vendor's offers, without the per-student rows
    (``dosage`` is then ``None``: vendors never read students' records)."""
    scope = policy.staff_scope(actor)
    if scope.kind == "school" and scope.id != school_id:
        raise NotAllowed("this account may only see its own school", parameter="school")
    if last < first or (last - first).days > MAX_DAYS:
        raise InvalidPayload(f"the period is 1 to {MAX_DAYS} days", field="to")
    async with ctx.engine.connect() as conn:
        offer = await store.offer(conn, offer_id)
        if offer is None:
            raise NotFound("no such programme offer", field="offer")
        if scope.kind == "vendor":
            policy.vendor(actor, offer["vendor"])
        zone = rules.zone_of(await store.school_zone(conn, school_id) or "UTC")
        start = datetime.combine(first, time(), tzinfo=zone)
        end = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone)
        rows = await store.report_rows(conn, school_id, offer_id, start, end)
    await audit.record(ctx.engine, actor, "scheduler.report", None, endpoint,
                       f"school={school_id} offer={offer_id}", at=ctx.now())
    figures = summarise(rows, offer, first, last) | {"school": school_id, "offer": offer_id}
    if not scope.reads_student_records:
        figures["dosage"] = None
    return figures


def summarise(rows: list[dict[str, Any]], offer: dict[str, Any], first: date,
              last: date) -> dict[str, Any]:
    """The report's figures from :func:`broker.scheduler.store.report_rows` (pure)."""
    target_sessions = offer["min_sessions_per_week"]
    target_minutes = target_sessions * offer["session_minutes"]
    weeks = sorted({_week(first + timedelta(days=i)) for i in range((last - first).days + 1)})
    sessions: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    minutes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    marked = attended = student_no_shows = 0
    tutor_no_shows: set[str] = set()
    group_weeks: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        week = _week(r["local_day"])
        student = r["student_id"]
        sessions[student]  # every booked student is listed, even with nothing attended
        if r["group_id"]:
            group_weeks[r["group_id"]][week]  # a group whose every session was cancelled
        if r["status"] == "cancelled":
            continue
        if r["group_id"]:
            group_weeks[r["group_id"]][week].add(r["id"])
        if r["tutor_status"] == "absent":
            tutor_no_shows.add(r["id"])
        if r["attendance"] is None:
            continue
        marked += 1
        if r["attendance"] in ATTENDED:
            attended += 1
            sessions[student][week] += 1
            length = r["ends_at"] - r["starts_at"]
            minutes[student][week] += int(length.total_seconds() // 60)
        elif r["attendance"] == "absent":
            student_no_shows += 1
    dosage = []
    for student in sorted(sessions):
        counts = [sessions[student].get(w, 0) for w in weeks]
        spent = [minutes[student].get(w, 0) for w in weeks]
        met = sum(1 for n, t in zip(counts, spent, strict=True)
                  if n >= target_sessions and t >= target_minutes)
        dosage.append({
            "student": student,
            "weeks": [{"week": w, "sessions": n, "minutes": t}
                      for w, n, t in zip(weeks, counts, spent, strict=True)],
            "weeks_on_target": met,
            "mean_sessions_per_week": round(sum(counts) / len(weeks), 2),
            "mean_minutes_per_week": round(sum(spent) / len(weeks), 1),
        })
    below = [
        {"group": g, "weeks_below": [w for w in weeks if len(by_week.get(w, ())) <
                                     target_sessions]}
        for g, by_week in sorted(group_weeks.items())
    ]
    return {
        "from": first.isoformat(), "to": last.isoformat(),
        "target": {"sessions_per_week": target_sessions, "minutes_per_week": target_minutes},
        "dosage": dosage,
        "attendance": {"marked": marked, "attended": attended,
                       "rate": round(attended / marked, 4) if marked else None},
        "no_shows": {"students": student_no_shows, "tutors": len(tutor_no_shows)},
        "groups_below_target": [b for b in below if b["weeks_below"]],
    }


CSV_COLUMNS = ("student", "week", "sessions", "minutes", "target_sessions", "target_minutes",
               "on_target")


def dosage_csv(figures: dict[str, Any]) -> str:
    """The report's dosage as CSV: one row per student and week (formula-like cells
    quoted, see :mod:`broker.csv_export`)."""
    if figures["dosage"] is None:
        raise NotAllowed("per-student dosage is not shown to vendor managers")
    target = figures["target"]
    rows = (
        (d["student"], w["week"], w["sessions"], w["minutes"], target["sessions_per_week"],
         target["minutes_per_week"],
         "yes" if w["sessions"] >= target["sessions_per_week"]
         and w["minutes"] >= target["minutes_per_week"] else "no")
        for d in figures["dosage"] for w in d["weeks"]
    )
    return csv_export.to_csv(CSV_COLUMNS, rows)
