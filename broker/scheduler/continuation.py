"""Splitting a booked series at a cut, for a change of who it is for (a student leaving,
:mod:`broker.scheduler.leaving`, or joining, :func:`broker.scheduler.enrolment.add_to_group`).

``booking_students`` names who a whole *series* is for, so a change of students from a
date on splits the series rather than editing it. Guarantees:

* **The past stays.** Occurrences before the cut stay in the old series with its students
  (and their attendance); reports and calendars keep them.
* **Same sessions, new series.** The occurrences from the cut on (:func:`rules.split_for_leaving`)
  move, keeping their ids, times, status and attendance, to a *continuation* series: same
  group, offer, tutor, rule, zone and minutes, ``first_day`` the first moved session's
  booked day, the rule ending on the last one's (``UNTIL``), booked for the students given.
* **One run of the rule each side.** A session moved across the cut (or held after it)
  refuses the cut with ``conflict`` naming the occurrences: move it back or cancel it first.

The caller writes the history rows, notices and reminders, inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker.errors import Conflict
from broker.ids import new_id
from broker.scheduler import booking, rules, store


@dataclass(frozen=True, slots=True)
class Cut:
    """A series cut at an instant: ``tail`` (the occurrence rows from the cut on, in booked
    order), ``live`` (the tail's scheduled ones) and ``before`` (how many occurrences, of
    any status, stay before the cut)."""

    tail: list[dict[str, Any]]
    live: list[dict[str, Any]]
    before: int


async def cut_series(conn: AsyncConnection, series_id: str, cut: datetime) -> Cut:
    """Where series ``series_id`` is cut at ``cut``; :class:`Conflict` (``field`` ``from``,
    ``occurrences``) when a session was moved across it. Reads only."""
    occurrences = await store.occurrences_of(conn, series_id)
    split = rules.split_for_leaving(occurrences, cut)
    if split.stuck:
        raise Conflict("a session of this series was moved across the date; move it back "
                       "or cancel it first", field="from", occurrences=split.stuck)
    by_id = {o["id"]: dict(o) for o in occurrences}
    return Cut([by_id[i] for i in split.tail], [by_id[i] for i in split.scheduled],
               len(occurrences) - len(split.tail))


async def continue_after(conn: AsyncConnection, ser: Mapping[str, Any], cut: Cut,
                         students: Sequence[str], actor: str, now: datetime) -> str:
    """Move ``cut``'s tail of series ``ser`` (a ``booking_series`` row) to a new
    continuation series booked for ``students``; returns its id. The caller has checked
    the tail is not empty."""
    successor = new_id()
    zone = rules.zone_of(ser["timezone"])
    days = [o["original_starts_at"].astimezone(zone).date() for o in cut.tail]
    values = {k: v for k, v in ser.items() if k != "students"} | {
        "id": successor, "first_day": days[0], "created_by": actor[:64], "created_at": now,
        "rrule": booking._until(ser["rrule"], days[-1]),
    }
    await store.continue_series(conn, values, students, [o["id"] for o in cut.tail])
    return successor
