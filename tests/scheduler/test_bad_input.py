"""Bad input on both databases that the other suites did not cover yet: an availability
CSV refused at its bad line (whole, and only a vendor's own tutors), a booking at a local
time the spring-forward change skips, a booking through an expired or tampered parent
link, and a group joined over its limit; each refused with its code, nothing written."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from broker.db import scheduler_models as m
from broker.errors import BrokerError, InvalidPayload, NotAllowed
from broker.scheduler import booking, enrolment, parents, setup, store
from broker.scheduler.errors import ParentLinkExpired, ParentLinkInvalid, SchedulingError
from broker.scheduler.service import Scheduler
from tests.scheduler.conftest import DESIGNEE, DISTRICT, VENDOR, FakeClock, World, forged


async def rows(ctx: Scheduler, query: Any) -> list[dict[str, Any]]:
    async with ctx.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def refused(error: type[BrokerError], call: Any) -> BrokerError:
    with pytest.raises(error) as caught:
        await call
    return caught.value


async def test_an_availability_csv_is_refused_at_its_bad_line(ctx: Scheduler,
                                                             world: World) -> None:
    bad = (b"tutor,weekday,date,available,start,end\nt1,mon,,,15:00,18:00\n"
           b"t1,,2026-11-31,no,,\n")
    err = await refused(InvalidPayload, setup.import_availability(ctx, VENDOR, "csv", bad))
    assert (err.detail["line"], err.detail["tutor"]) == (3, "t1")
    err = await refused(InvalidPayload, setup.import_availability(
        ctx, VENDOR, "csv", b"who,weekday,start,end\nt1,mon,15:00,18:00\n"))
    assert err.detail["line"] == 1
    assert await rows(ctx, sa.select(m.availability_windows).where(
        m.availability_windows.c.tutor_id == "t1")) == []
    await refused(NotAllowed, setup.import_availability(   # another vendor's tutor
        ctx, VENDOR, "csv", b"tutor,weekday,start,end\nt1,mon,15:00,18:00\nh1,mon,16:00,17:00\n"))
    assert await rows(ctx, sa.select(m.availability_windows).where(
        m.availability_windows.c.tutor_id == "t1")) == []


async def test_bad_input_not_covered_elsewhere(ctx: Scheduler, world: World,
                                               clock: FakeClock) -> None:
    """A booking at a local time the spring-forward change skips, a booking through an
    expired or tampered link, and a group joined over its limit: each refused with its
    code, nothing written."""
    await setup.publish_availability(ctx, DISTRICT, "h1", {"weekly": [
        {"weekday": "sun", "start": "01:00", "end": "04:00"}]})
    err = await refused(SchedulingError, booking.book_series(ctx, DISTRICT, {
        "offer": world.home_offer, "student": "st7", "tutor": "h1", "subject": "math",
        "rrule": "FREQ=WEEKLY;BYDAY=SU;COUNT=4", "first_day": "2027-02-28",
        "start": "02:30", "minutes": 30}))
    assert err.code == "bad_recurrence" and err.detail["dates"] == ["2027-03-14"]
    assert await rows(ctx, sa.select(m.booking_series)) == []

    link = await parents.issue_link(ctx, DISTRICT, {
        "student": "st3", "offer": world.home_offer, "language": "en"}, "POST l")
    choice = {"tutor": "h1", "start": "16:00", "weekdays": ["tue"], "subject": "math"}
    body, mac = link["token"].split(".")
    await refused(
        ParentLinkInvalid, parents.book_from_link(ctx, f"{body}.{forged(mac)}", choice)
    )
    clock.advance(days=15)
    await refused(ParentLinkExpired, parents.book_from_link(ctx, link["token"], choice))
    async with ctx.engine.connect() as conn:
        assert await store.enrolments(conn, world.home_offer, ["st3"]) == {}
    assert await rows(ctx, sa.select(m.booking_series)) == []

    for student in ("st3", "st5"):
        await enrolment.add_to_group(ctx, DESIGNEE, world.group, {"student": student})
    err = await refused(SchedulingError, enrolment.add_to_group(   # a fifth of four
        ctx, DISTRICT, world.group, {"student": "st4"}))
    assert err.code == "group_over_limit"
    async with ctx.engine.connect() as conn:
        assert (await store.group(conn, world.group) or {})["members"] == [
            "st1", "st2", "st3", "st5"]
