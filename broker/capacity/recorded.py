"""A period of the district's own recorded requests, as arrivals a replay can drive.

:func:`read_recorded` reads the requests made between two local dates (test traffic
left out) and turns each into a :class:`broker.capacity.synthetic.Arrival`, so
``homework-help simulate --recorded FROM TO`` replays what students really asked, when
they asked it, through a broker with another headcount (a published plan, the advice):

* time: ``requested_at`` (unmet requests too: they are asked again and refused again);
* student: a pseudonym, ``syn-r-`` and a keyed hash of the id (the replay's database never
  holds a real id), with the school (from ``schools``), grade and groups the request
  recorded;
* language and subject: as asked;
* handle time: accept to end of the request's first ended session; for a request never
  served, a draw from the synthetic year's distribution (log-normal, median 15 min);
* patience: for a request that gave up, the time it waited before giving up; for one that
  was accepted, its wait plus a draw from an exponential of the period's mean patience
  (total time in line over give-ups; 5 min when nobody gave up), since a served student's
  patience is only known to be longer than their wait and the exponential is memoryless;
  for an unmet one, a draw from the same exponential.

Requests without a known school are left out (the replay routes by the school's span,
as the broker does) and counted in :attr:`Recorded.skipped`.

Deterministic: the same records and ``seed`` give the same arrivals, in time order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import random
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from broker.capacity import synthetic
from broker.db.engine import create_engine
from broker.db.models import help_requests, schools, tutoring_sessions
from broker.settings import Settings
from broker.stats import GAVE_UP_STATUSES
from routing.schools import School, SchoolKind

PREFIX = "syn-r-"


@dataclass(frozen=True)
class Recorded:
    """The period read: its UTC bounds, the arrivals as a :class:`synthetic.Year` (so the
    replay and the advice take it as they take the synthetic one), and the requests left
    out for want of a school."""

    start: dt.datetime
    end: dt.datetime
    year: synthetic.Year
    skipped: int


def _pseudonym(secret: str, student: str) -> str:
    mac = hmac.new(secret.encode(), f"replay\x1f{student}".encode(), hashlib.sha256)
    return PREFIX + mac.hexdigest()[:20]


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def read_recorded(settings: Settings, first: dt.date, until: dt.date,
                        seed: int = 2024) -> Recorded:
    """The requests made in ``[first, until)`` (local dates, the catalog's zone) of the
    database at ``settings.database_url``."""
    from broker.catalog_source import load_catalog

    if until <= first:
        raise ValueError("the period's end must be after its start")
    tz = load_catalog(settings).timezone
    start = dt.datetime.combine(first, dt.time(), tz).astimezone(dt.UTC)
    end = dt.datetime.combine(until, dt.time(), tz).astimezone(dt.UTC)
    r, s = help_requests, tutoring_sessions
    handle = (
        sa.select(s.c.request_id, sa.func.min(s.c.accepted_at).label("accepted"),
                  sa.func.min(s.c.ended_at).label("ended"))
        .where(s.c.request_id.is_not(None), s.c.ended_at.is_not(None))
        .group_by(s.c.request_id).subquery()
    )
    query = (
        sa.select(r.c.student, r.c.school_id, r.c.grade, r.c.groups, r.c.language,
                  r.c.subject, r.c.status, r.c.requested_at, r.c.queued_at, r.c.accepted_at,
                  r.c.closed_at, handle.c.accepted, handle.c.ended)
        .select_from(r.outerjoin(handle, handle.c.request_id == r.c.id))
        .where(r.c.requested_at >= start, r.c.requested_at < end,
               sa.or_(r.c.is_test.is_(None), r.c.is_test.is_(False)))
        .order_by(r.c.requested_at, r.c.id)
    )
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            known = {row["id"]: School(row["id"], row["name"], row["region"],
                                       int(row["low_grade"]), int(row["high_grade"]),
                                       SchoolKind(row["kind"]))
                     for row in (await conn.execute(sa.select(schools))).mappings()}
    finally:
        await engine.dispose()
    return _arrivals(rows, known, start, end, settings.pseudonym_secret, seed, tz.key)


def _arrivals(rows: Any, known: dict[str, School], start: dt.datetime, end: dt.datetime,
              secret: str, seed: int, timezone: str) -> Recorded:
    rng = random.Random(seed)
    in_line = 0.0
    gave_up = 0
    for row in rows:
        queued = _utc(row["queued_at"])
        if queued is None:
            continue
        if row["status"] in GAVE_UP_STATUSES and row["accepted_at"] is None:
            gave_up += 1
            in_line += ((_utc(row["closed_at"]) or queued) - queued).total_seconds()
        elif row["accepted_at"] is not None:
            in_line += (_utc(row["accepted_at"]) - queued).total_seconds()  # type: ignore[operator]
    mean_patience = in_line / gave_up if gave_up else synthetic.PATIENCE_MEAN_S
    students: dict[str, synthetic.Student] = {}
    arrivals: list[synthetic.Arrival] = []
    skipped = 0
    for row in rows:
        school = known.get(row["school_id"] or "")
        if school is None or row["grade"] is None:
            skipped += 1
            continue
        sid = _pseudonym(secret, row["student"])
        groups = frozenset(g for g in (row["groups"] or "").split(",") if g)
        student = students.setdefault(sid, synthetic.Student(
            sid, school, int(row["grade"]), groups, row["language"] or "en"))
        queued, accepted = _utc(row["queued_at"]), _utc(row["accepted_at"])
        if row["ended"] is not None and row["accepted"] is not None:
            handle_s = (_utc(row["ended"]) - _utc(row["accepted"])).total_seconds()  # type: ignore[operator]
        else:
            handle_s = synthetic.HANDLE_MEDIAN_S * math.exp(rng.gauss(0.0, synthetic.HANDLE_SIGMA))
        if queued is not None and accepted is None and row["status"] in GAVE_UP_STATUSES:
            patience = ((_utc(row["closed_at"]) or queued) - queued).total_seconds()
        elif queued is not None and accepted is not None:
            patience = (accepted - queued).total_seconds() + rng.expovariate(1 / mean_patience)
        else:
            patience = rng.expovariate(1 / mean_patience)
        at = _utc(row["requested_at"])
        assert at is not None  # the query's bounds need it
        arrivals.append(synthetic.Arrival(
            at.replace(microsecond=0), student, row["language"] or "en",
            row["subject"] or "other", round(max(1.0, handle_s), 1), round(max(0.0, patience), 1)))
    arrivals.sort(key=lambda a: (a.at, a.student.id))
    local = start.astimezone(ZoneInfo(timezone))
    shape = synthetic.Shape(
        sessions=max(1, len(arrivals)), students=max(1, len(students)), group_users=(),
        start=local.date(), end=max(end.astimezone(ZoneInfo(timezone)).date(),
                                    local.date() + dt.timedelta(days=1)),
        timezone=timezone)
    year = synthetic.Year(shape, seed, tuple(students.values()), tuple(arrivals))
    return Recorded(start, end, year, skipped)


__all__ = ["PREFIX", "Recorded", "read_recorded"]
