"""Reports per school and programme offer over a period of local dates: dosage (sessions
and minutes per student per ISO week against the offer's target), attendance rate,
no-shows by side, and groups scheduled below target.

Who may read: district staff, a school's staff for their own school, and a vendor's
managers for their own vendor's offers without the per-student rows; every answered read
is audit-logged.

:func:`district` is the same report summed over every school and offer the caller may
see, per ISO week, for the staff dashboard (``GET /api/stats/scheduled``).

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
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from broker import audit, csv_export
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity, Scope
from broker.scheduler import policy, report_store, rules, store
from broker.scheduler.service import Scheduler
from broker.stats import Filters

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


# -- the district's figures (the staff dashboard) ----------------------------------------------
def _rate(part: int, whole: int, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


async def district(engine: AsyncEngine, actor: Identity, scope: Scope, filters: Filters,
                   endpoint: str, *, students: bool = False,
                   at: datetime | None = None) -> dict[str, Any]:
    """Booked tutoring per school, offer and ISO week for ``filters`` (already held to
    ``scope`` by :meth:`~broker.identity.Scope.narrow`), the district's weekly totals, and
    the groups below target. Per-student rows (``students``; else ``None``) only when
    asked for, only to staff who read students' records (district and school staff; a
    vendor manager or a teacher is refused, :class:`NotAllowed`) and only for one school
    (else :class:`InvalidPayload` naming ``school``). Every answered read is audit-logged
    (``stats.scheduled``), saying whether per-student rows were in it."""
    if students and (actor.role != "staff" or not scope.reads_student_records):
        raise NotAllowed("per-student rows are for district and school staff",
                         parameter="students")
    if students and filters.school_id is None:
        raise InvalidPayload("per-student rows are given for one school: choose a school",
                             parameter="school")
    async with engine.connect() as conn:
        weeks = await report_store.programme_weeks(conn, filters)
        tutors = await report_store.tutor_no_shows(conn, filters)
        below = await report_store.groups_below(conn, filters)
        per_student = await report_store.student_weeks(conn, filters) if students else None
        offers, names = await report_store.offers_and_schools(
            conn, {r["offer_id"] for r in (*weeks, *tutors, *below)},
            {r["school_id"] for r in (*weeks, *tutors, *below)})
    period = "..".join(x.isoformat() if x else "" for x in (filters.start, filters.end))
    await audit.record(engine, actor, "stats.scheduled", None, endpoint,
                       f"school={filters.school_id or '*'} vendor={filters.vendor or '*'} "
                       f"period={period} students={'yes' if students else 'no'}", at=at)
    return district_summary(weeks, tutors, below, offers, names, per_student)


Key = tuple[str, str, date]


def district_summary(weeks: Iterable[dict[str, Any]], tutors: Iterable[dict[str, Any]],
                     below: Iterable[dict[str, Any]], offers: dict[str, dict[str, Any]],
                     names: dict[str, str],
                     per_student: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The figures of :func:`district` from :mod:`broker.scheduler.report_store`'s rows
    (pure)."""
    as_date = report_store.as_date
    cells: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in weeks:
        cell = cells[(r["school_id"], r["offer_id"], as_date(r["week"]))]
        for name in ("students", "on_target", "sessions", "minutes", "marked", "absent"):
            cell[name] += int(r[name] or 0)
    for r in tutors:
        cells[(r["school_id"], r["offer_id"], as_date(r["week"]))]["tutors"] += int(r["tutors"])
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    described: dict[str, dict[str, Any]] = {}
    for r in below:
        key = (r["school_id"], r["offer_id"], as_date(r["week"]))
        cells[key]["groups_below"] += 1
        groups[(r["school_id"], r["offer_id"], r["group_id"])].append({
            "week": _week(key[2]), "sessions": int(r["sessions"]),
            "target": int(r["target_sessions"])})
        described[r["group_id"]] = {
            "subject": r["subject"], "grade_band": r["grade_band"], "language": r["language"],
            "tutor": r["tutor_id"], "tutor_name": r["display_name"] or r["tutor_id"]}
    rows = [_cell_row(key, cell, offers.get(key[1], {}), names)
            for key, cell in sorted(cells.items())]
    return {
        "weeks": _weekly(rows),
        "programmes": _programmes(rows, groups),
        "rows": rows,
        "groups_below_target": [
            {"school": s, "school_name": names.get(s), "offer": o, "group": g,
             **described[g], "weeks": w}
            for (s, o, g), w in sorted(groups.items())],
        "students": None if per_student is None else [_student_row(r) for r in per_student],
        "totals": _totals(rows),
    }


def _cell_row(key: Key, cell: dict[str, int], offer: dict[str, Any],
              names: dict[str, str]) -> dict[str, Any]:
    school, offer_id, monday = key
    target = int(offer.get("min_sessions_per_week") or 0)
    students = cell["students"]
    return {
        "school": school, "school_name": names.get(school), "offer": offer_id,
        "programme": offer.get("programme"), "vendor": offer.get("vendor"),
        "week": _week(monday), "week_start": monday.isoformat(),
        "target_sessions": target,
        "target_minutes": target * int(offer.get("session_minutes") or 0),
        "students": students, "students_on_target": cell["on_target"],
        "share_on_target": _rate(cell["on_target"], students),
        "sessions": cell["sessions"], "minutes": cell["minutes"],
        "sessions_per_student": _rate(cell["sessions"], students, 2),
        "minutes_per_student": _rate(cell["minutes"], students, 1),
        "marked": cell["marked"], "attended": cell["sessions"],
        "attendance_rate": _rate(cell["sessions"], cell["marked"]),
        "student_no_shows": cell["absent"], "tutor_no_shows": cell["tutors"],
        "groups_below_target": cell["groups_below"],
    }


def _sums(rows: Iterable[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        for name in ("students", "students_on_target", "sessions", "minutes", "marked",
                     "student_no_shows", "tutor_no_shows", "groups_below_target"):
            out[name] += r[name]
        out["target_sessions"] += r["target_sessions"] * r["students"]
        out["target_minutes"] += r["target_minutes"] * r["students"]
    return out


def _weekly(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The district's weeks: means per booked student against the mean target."""
    by_week: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_week[r["week"]].append(r)
    out = []
    for week, items in sorted(by_week.items()):
        sums = _sums(items)
        out.append({
            "week": week, "week_start": items[0]["week_start"], "students": sums["students"],
            "students_on_target": sums["students_on_target"],
            "share_on_target": _rate(sums["students_on_target"], sums["students"]),
            "sessions_per_student": _rate(sums["sessions"], sums["students"], 2),
            "target_sessions_per_student": _rate(sums["target_sessions"], sums["students"], 2),
            "minutes_per_student": _rate(sums["minutes"], sums["students"], 1),
            "target_minutes_per_student": _rate(sums["target_minutes"], sums["students"], 1),
            "marked": sums["marked"], "attended": sums["sessions"],
            "attendance_rate": _rate(sums["sessions"], sums["marked"]),
            "no_shows": {"students": sums["student_no_shows"], "tutors": sums["tutor_no_shows"]},
        })
    return out


def _programmes(rows: list[dict[str, Any]],
                groups: dict[tuple[str, str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per school and offer over the period."""
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_pair[(r["school"], r["offer"])].append(r)
    out = []
    for (school, offer), items in sorted(by_pair.items()):
        sums = _sums(items)
        first = items[0]
        out.append({
            "school": school, "school_name": first["school_name"], "offer": offer,
            "programme": first["programme"], "vendor": first["vendor"],
            "target": {"sessions_per_week": first["target_sessions"],
                       "minutes_per_week": first["target_minutes"]},
            "weeks": len(items), "student_weeks": sums["students"],
            "student_weeks_on_target": sums["students_on_target"],
            "share_on_target": _rate(sums["students_on_target"], sums["students"]),
            "sessions_per_student_week": _rate(sums["sessions"], sums["students"], 2),
            "attendance": {"marked": sums["marked"], "attended": sums["sessions"],
                           "rate": _rate(sums["sessions"], sums["marked"])},
            "no_shows": {"students": sums["student_no_shows"], "tutors": sums["tutor_no_shows"]},
            "groups_below_target": sum(1 for s, o, _ in groups if (s, o) == (school, offer)),
        })
    return out


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sums = _sums(rows)
    return {
        "student_weeks": sums["students"], "student_weeks_on_target": sums["students_on_target"],
        "share_on_target": _rate(sums["students_on_target"], sums["students"]),
        "attendance": {"marked": sums["marked"], "attended": sums["sessions"],
                       "rate": _rate(sums["sessions"], sums["marked"])},
        "no_shows": {"students": sums["student_no_shows"], "tutors": sums["tutor_no_shows"]},
        "groups_below_target": sums["groups_below_target"],
    }


def _student_row(r: dict[str, Any]) -> dict[str, Any]:
    sessions, minutes = int(r["sessions"] or 0), int(r["minutes"] or 0)
    return {
        "school": r["school_id"], "offer": r["offer_id"], "student": r["student_id"],
        "week": _week(report_store.as_date(r["week"])), "sessions": sessions,
        "minutes": minutes, "target_sessions": int(r["target_sessions"]),
        "target_minutes": int(r["target_minutes"]),
        "on_target": sessions >= int(r["target_sessions"])
        and minutes >= int(r["target_minutes"]),
    }


#: The CSV of ``GET /api/stats/scheduled?format=csv``: one row per school, offer and week.
DISTRICT_CSV_COLUMNS = (
    "school", "school_name", "offer", "programme", "vendor", "week", "week_start",
    "target_sessions", "target_minutes", "students", "students_on_target", "share_on_target",
    "sessions_per_student", "minutes_per_student", "marked", "attended", "attendance_rate",
    "student_no_shows", "tutor_no_shows", "groups_below_target",
)


def district_table(figures: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """:data:`DISTRICT_CSV_COLUMNS` and the rows of :func:`district`'s figures."""
    columns = list(DISTRICT_CSV_COLUMNS)
    return columns, [[r[c] for c in columns] for r in figures["rows"]]
