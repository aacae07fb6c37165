"""Issue #11's changes on both databases, with a fake clock: a student removed from a
group from a date on (and a group emptied), an enrolment withdrawn by staff or through the
parent's link and enrolled again, single calendar feeds listed and revoked, and the
parent links job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from broker import audit
from broker.db import scheduler_models as m
from broker.db.models import metadata
from broker.errors import BrokerError, Conflict, InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity
from broker.outbox import KeepSender
from broker.scheduler import (
    attendance,
    booking,
    enrolment,
    feeds,
    jobs,
    leaving,
    parents,
    store,
)
from broker.scheduler.errors import ParentLinkExpired, ParentLinkInvalid
from broker.scheduler.service import Scheduler
from broker.settings import Settings
from broker.worker_jobs import WorkerContext, registered_jobs
from tests.scheduler.conftest import (
    DESIGNEE,
    DISTRICT,
    OTHER_DESIGNEE,
    VENDOR,
    FakeClock,
    World,
)
from tests.scheduler.test_running import SERIES

# SERIES: Mon 26, Wed 28, Thu 29 October, Mon 2, Wed 4, Thu 5 November, 15:30 Los Angeles
HOME = {"subject": "math", "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=4",
        "first_day": "2026-10-27", "start": "16:30", "minutes": 30}
outbox = metadata.tables["outbox"]


async def rows(ctx: Scheduler, query: Any) -> list[dict[str, Any]]:
    async with ctx.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def occurrences(ctx: Scheduler, series_id: str) -> list[dict[str, Any]]:
    occ = m.occurrences
    return await rows(ctx, sa.select(occ).where(occ.c.series_id == series_id)
                      .order_by(occ.c.starts_at))


async def series_students(ctx: Scheduler, series_id: str) -> list[str]:
    async with ctx.engine.connect() as conn:
        return await store.series_students(conn, series_id)


async def actions(ctx: Scheduler, series_id: str) -> list[str]:
    hist = m.schedule_changes
    return [r["action"] for r in await rows(ctx, sa.select(hist).where(
        hist.c.series_id == series_id).order_by(hist.c.at, hist.c.action))]


async def notices(ctx: Scheduler, kind: str) -> list[tuple[str, str]]:
    return sorted((r["recipient_kind"], r["recipient_id"]) for r in await rows(
        ctx, sa.select(outbox).where(outbox.c.kind == kind)))


async def refused(error: type[BrokerError], call: Any) -> BrokerError:
    with pytest.raises(error) as caught:
        await call
    return caught.value


async def test_a_student_leaves_a_group_from_a_date_and_the_past_stays(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    ids = [o["id"] for o in await occurrences(ctx, booked.series_id)]
    clock.at = datetime(2026, 10, 29, 0, 0, tzinfo=UTC)  # Wed 28 Oct, 17:00 in LA
    assert (await attendance.close_ended(ctx))["closed"] == 2  # Mon and Wed are held
    await attendance.queue_reminders(ctx)  # Thu 29's reminders: st1, st2, t1
    before = await rows(ctx, sa.select(m.attendance).order_by(
        m.attendance.c.occurrence_id, m.attendance.c.student_id))
    history = len(await rows(ctx, sa.select(m.schedule_changes)))

    await refused(InvalidPayload, leaving.remove_from_group(   # the past stays
        ctx, DESIGNEE, world.group, "st1", {"from": "2026-10-27"}, "POST r"))
    await refused(NotAllowed, leaving.remove_from_group(
        ctx, OTHER_DESIGNEE, world.group, "st1", {}, "POST r"))
    await refused(NotFound, leaving.remove_from_group(
        ctx, DESIGNEE, world.group, "st3", {}, "POST r"))
    assert len(await rows(ctx, sa.select(m.schedule_changes))) == history

    done = await leaving.remove_from_group(ctx, DESIGNEE, world.group, "st1", {
        "from": "2026-10-29", "reason": "moved to another school"}, "POST r")
    assert done["group"]["students"] == ["st2"] and done["cancelled"] == []
    successor = done["continued_as"][booked.series_id]
    # the past: two held sessions with both students and their attendance, as they were
    assert [o["id"] for o in await occurrences(ctx, booked.series_id)] == ids[:2]
    assert await series_students(ctx, booked.series_id) == ["st1", "st2"]
    assert await rows(ctx, sa.select(m.attendance).order_by(
        m.attendance.c.occurrence_id, m.attendance.c.student_id)) == before
    # the rest: the same sessions (ids), without st1
    rest = await occurrences(ctx, successor)
    assert [o["id"] for o in rest] == ids[2:] and {o["status"] for o in rest} == {"scheduled"}
    assert await series_students(ctx, successor) == ["st2"]
    assert await actions(ctx, booked.series_id) == ["book", "remove_student"]
    assert await actions(ctx, successor) == ["continues"]
    async with ctx.engine.connect() as conn:
        assert await store.student_busy(conn, ["st1"], rest[0]["starts_at"],
                                        rest[-1]["ends_at"]) == {}
    # st1 is told and loses the reminder; st2 and the tutor keep theirs
    assert await notices(ctx, "cancelled_rest") == [("student", "st1")]
    pending = await rows(ctx, sa.select(outbox).where(
        outbox.c.kind == "reminder", outbox.c.cancelled_at.is_(None)))
    assert sorted(r["recipient_id"] for r in pending) == ["st2", "t1"]
    # st1's calendar ends with the held sessions
    made = await feeds.create_feed(ctx, DESIGNEE, "student", "st1")
    text = (await feeds.render(ctx, made["token"])).decode()
    assert "COUNT=2" in text and text.count("BEGIN:VEVENT") == 1

    # the last student leaves from Monday: the rest is cancelled, the tutor told
    emptied = await leaving.remove_from_group(
        ctx, DISTRICT, world.group, "st2", {"from": "2026-11-02"}, "POST r")
    assert emptied["group"]["students"] == [] and len(emptied["cancelled"]) == 3
    assert [(o["status"], o["cancel_reason"]) for o in await occurrences(ctx, successor)] == [
        ("scheduled", None)] + [("cancelled", "group_empty")] * 3
    assert await notices(ctx, "cancelled_rest") == [
        ("student", "st1"), ("student", "st2"), ("tutor", "t1")]
    logged = [e for e in await audit.entries(ctx.engine)
              if e["action"] == "scheduler.remove_student"]
    assert [e["subject"] for e in logged] == ["st1", "st2"]


async def test_a_move_across_the_date_refuses_the_removal(ctx: Scheduler, world: World) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    ids = [o["id"] for o in await occurrences(ctx, booked.series_id)]
    await booking.reschedule(ctx, DESIGNEE, ids[0], {"scope": "one", "day": "2026-10-30",
                                                     "start": "15:30"})
    err = await refused(Conflict, leaving.remove_from_group(
        ctx, DESIGNEE, world.group, "st1", {"from": "2026-10-29"}, "POST r"))
    assert err.detail["occurrences"] == [ids[0]]
    assert await series_students(ctx, booked.series_id) == ["st1", "st2"]
    assert len(await rows(ctx, sa.select(m.booking_series))) == 1


async def test_withdrawn_by_the_school_then_enrolled_again(ctx: Scheduler, world: World) -> None:
    booked = await booking.book_series(ctx, DESIGNEE, {"group": world.group, **SERIES})
    later = await leaving.remove_from_group(ctx, DESIGNEE, world.group, "st1",
                                            {"from": "2026-11-02"}, "POST r")
    await refused(NotAllowed, leaving.withdraw_enrolment(
        ctx, VENDOR, world.school_offer, "st1", {}, "POST w"))
    # withdrawn now: also out of the sessions before the removal's date
    done = await leaving.withdraw_enrolment(ctx, DESIGNEE, world.school_offer, "st1",
                                            {"reason": "family request"}, "POST w")
    assert done["series"] == [booked.series_id] and done["cancelled"] == []
    october = done["continued_as"][booked.series_id]
    assert len(await occurrences(ctx, october)) == 3  # 26, 28 and 29 October
    assert await series_students(ctx, october) == ["st2"]
    assert await occurrences(ctx, booked.series_id) == []
    async with ctx.engine.connect() as conn:
        assert await store.student_busy(conn, ["st1"], datetime(2026, 10, 1, tzinfo=UTC),
                                        datetime(2026, 12, 1, tzinfo=UTC)) == {}
    november = later["continued_as"][booked.series_id]  # 2, 4 and 5 November
    async with ctx.engine.connect() as conn:
        assert (await store.group(conn, world.group) or {})["members"] == ["st2"]
    await refused(NotFound, leaving.withdraw_enrolment(      # already withdrawn
        ctx, DESIGNEE, world.school_offer, "st1", {}, "POST w"))
    again = await enrolment.enrol(ctx, DESIGNEE, world.school_offer, {
        "students": [{"student": "st1", "language": "en"}]})
    assert again["enrolled"] == ["st1"]
    history = await leaving.enrolment_history(ctx, DESIGNEE, "st1", "GET e")
    school = [e for e in history["enrolments"] if e["offer"] == world.school_offer]
    assert [(e["withdrawn_by"], e["withdraw_reason"]) for e in school] == [
        ("des-hs", "family request"), (None, "")]
    await refused(NotAllowed, leaving.enrolment_history(ctx, OTHER_DESIGNEE, "st1", "GET e"))
    joined = await enrolment.add_to_group(ctx, DESIGNEE, world.group, {"student": "st1"})
    assert joined["students"] == ["st1", "st2"]
    assert sorted(joined["series"]) == sorted([october, november])  # both still to come


async def test_a_home_based_withdrawal_by_the_district_or_through_the_link(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    spec = {"offer": world.home_offer, "tutor": "h1", **HOME}
    booked = await booking.book_series(ctx, DISTRICT, {**spec, "student": "st7"})
    await refused(NotAllowed, leaving.withdraw_enrolment(     # the parent enrolled the child
        ctx, DESIGNEE, world.home_offer, "st7", {}, "POST w"))
    done = await leaving.withdraw_enrolment(ctx, DISTRICT, world.home_offer, "st7",
                                            {"reason": "moved away"}, "POST w")
    assert len(done["cancelled"]) == 4 and done["continued_as"] == {}
    assert {(o["status"], o["cancel_reason"]) for o in await occurrences(
        ctx, booked.series_id)} == {("cancelled", "withdrawn")}
    assert await actions(ctx, booked.series_id) == ["book", "withdraw"]
    assert await notices(ctx, "cancelled_rest") == [("student", "st7"), ("tutor", "h1")]

    # a parent books through a link, then withdraws through the same (used) link
    link = await parents.issue_link(ctx, DISTRICT, {
        "student": "st7", "offer": world.home_offer, "language": "es"}, "POST l")
    choice = {"tutor": "h1", "start": "16:30", "weekdays": ["tue"], "subject": "math"}
    rebooked = await parents.book_from_link(ctx, link["token"], choice)
    body, mac = link["token"].split(".")
    await refused(ParentLinkInvalid, parents.withdraw_from_link(ctx, f"{body}x.{mac}", {}))
    await refused(InvalidPayload, parents.withdraw_from_link(
        ctx, link["token"], {"offer": world.school_offer}))
    gone = await parents.withdraw_from_link(ctx, link["token"], {"reason": "too late"})
    assert gone["offer"] == world.home_offer
    assert {o["status"] for o in await occurrences(ctx, rebooked["series"])} == {"cancelled"}
    history = await leaving.enrolment_history(ctx, DISTRICT, "st7", "GET e")
    home = [e for e in history["enrolments"] if e["offer"] == world.home_offer]
    assert home[0]["withdrawn_by"] == "dist-1" and home[0]["withdraw_reason"] == "moved away"
    assert home[1]["withdrawn_by"].startswith("parent-link:")
    assert home[1]["enrolled_by"] == home[1]["withdrawn_by"]
    clock.advance(days=15)  # the link has expired: nothing is withdrawn through it
    await refused(ParentLinkExpired, parents.withdraw_from_link(ctx, link["token"], {}))


async def test_single_feeds_listed_revoked_by_id_or_token(ctx: Scheduler, world: World,
                                                        clock: FakeClock) -> None:
    first = await feeds.create_feed(ctx, DESIGNEE, "student", "st1")
    clock.advance(minutes=1)
    second = await feeds.create_feed(ctx, DISTRICT, "student", "st1")
    listed = await feeds.list_feeds(ctx, DESIGNEE, "student", "st1", "GET f")
    assert [f["last_used_at"] for f in listed["feeds"]] == [None, None]
    assert all(len(f["id"]) == 16 and f["id"] not in (first["token"], second["token"])
               for f in listed["feeds"])
    await feeds.render(ctx, first["token"])
    clock.advance(minutes=10)
    await feeds.render(ctx, first["token"])  # within the hour: not written again
    listed = await feeds.list_feeds(ctx, DESIGNEE, "student", "st1", "GET f")
    newest, oldest = listed["feeds"]
    assert oldest["last_used_at"] == datetime(2026, 9, 1, 16, 1, tzinfo=UTC).isoformat()
    assert newest["last_used_at"] is None
    await refused(NotAllowed, feeds.list_feeds(ctx, OTHER_DESIGNEE, "student", "st1", "x"))
    await refused(NotAllowed, feeds.revoke_feed(ctx, OTHER_DESIGNEE, owner=(
        "student", "st1"), feed_id=oldest["id"]))
    done = await feeds.revoke_feed(ctx, DESIGNEE, owner=("student", "st1"),
                                   feed_id=oldest["id"])
    assert done["revoked"]["id"] == oldest["id"]
    await refused(NotFound, feeds.render(ctx, first["token"]))
    assert b"BEGIN:VCALENDAR" in await feeds.render(ctx, second["token"])  # the other stays
    await refused(NotFound, feeds.revoke_feed(ctx, DESIGNEE, owner=("student", "st1"),
                                              feed_id=oldest["id"]))
    await feeds.revoke_feed(ctx, DISTRICT, token=second["token"])
    await refused(NotFound, feeds.render(ctx, second["token"]))
    assert (await feeds.list_feeds(ctx, DISTRICT, "student", "st1", "GET f"))["feeds"] == []
    tutor = await feeds.create_feed(ctx, DISTRICT, "tutor", "t1")
    await refused(NotAllowed, feeds.revoke_feed(
        ctx, Identity("tutor", "t2", {"vendor": "tutorco"}), token=tutor["token"]))
    await feeds.revoke_feed(ctx, Identity("tutor", "t1", {"vendor": "tutorco"}),
                            token=tutor["token"])
    logged = [e["subject"] for e in await audit.entries(ctx.engine)
              if e["action"] == "scheduler.feeds"]
    assert logged == ["st1"] * 3  # each answered list; the refused one is not


async def test_the_links_job_marks_expired_and_purges_old_hashes(
    ctx: Scheduler, world: World, clock: FakeClock,
) -> None:
    def link(student: str) -> Any:
        return parents.issue_link(ctx, DISTRICT, {
            "student": student, "offer": world.home_offer, "language": "en"}, "POST l")

    used = await link("st7")
    await parents.book_from_link(ctx, used["token"], {
        "tutor": "h1", "start": "16:00", "weekdays": ["wed"], "subject": "math"})
    await link("st1")
    await link("st3")
    await link("st5")
    await parents.revoke_links(ctx, DISTRICT, "st5", "DELETE l")
    table = m.parent_links
    assert await parents.expire_links(ctx) == {"expired": 0, "purged": 0}  # none expired
    clock.advance(days=15)
    assert await parents.expire_links(ctx, batch=1) == {"expired": 2, "purged": 0}
    assert await parents.expire_links(ctx) == {"expired": 0, "purged": 0}  # idempotent
    marked = await rows(ctx, sa.select(table.c.student_id).where(table.c.expired_at.is_not(
        None)).order_by(table.c.student_id))
    assert [r["student_id"] for r in marked] == ["st1", "st3"]
    clock.advance(days=ctx.link_retention.days - 1)
    assert await jobs.expire_parent_links(ctx.engine, clock.at) == {"expired": 0, "purged": 0}
    clock.advance(days=1, seconds=1)
    assert await jobs.expire_parent_links(ctx.engine, clock.at) == {"expired": 0, "purged": 4}
    assert await rows(ctx, sa.select(table)) == []
    assert await parents.expire_links(ctx) == {"expired": 0, "purged": 0}
    names = [j.name for j in registered_jobs(WorkerContext(Settings(), ctx.engine,
                                                            KeepSender()))]
    assert "scheduler_parent_links" in names
