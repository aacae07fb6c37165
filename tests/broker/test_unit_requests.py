"""Broker unit tests: asking, queueing, cancelling, unmet demand, accepting, capacity.

Memory backends, a fake clock and a recording notifier (tests/broker/unit.py): nothing here
waits on time, and every push is made by an explicit flush.
"""

from __future__ import annotations

import asyncio

import pytest

from broker.errors import AlreadyTaken, Conflict, NotAllowed, NotFound, OverCapacity, Unmet
from broker.identity import Identity
from broker.lifecycle_store import at
from tests.broker.unit import T0, Rig, Sent, broker_rig, student, tutor


async def test_a_request_is_recorded_queued_and_pushed_once_flushed(rig: Rig) -> None:
    ana = student("s-ana")
    await rig.connect(ana)
    ack = await rig.broker.request_help(ana, "math", "en", topic="fractions")
    assert ack == {
        "id": ack["id"],
        "vendor": "paper",
        "vendor_name": "Paper.co",
        "language": "en",
        "subject": "math",
        "position": 1,
        "eta_s": None,  # no tutor available and no accepts yet: no basis for an estimate
        "overflow": False,
        # nobody on shift, and no accepts in the last weeks to say when they come back
        "nobody_on_shift": True,
        "next_expected_at": None,
    }
    row = await rig.request_row(ack["id"])
    assert (row["status"], row["vendor"], row["queue"]) == ("queued", "paper", "paper:en")
    assert row["requested_at"] == row["queued_at"] == at(T0)
    assert rig.notifier.sent == []  # the push is coalesced, not made yet
    await rig.flush()
    [snapshot] = rig.notifier.sent
    assert snapshot.to == "queue:paper:en" and snapshot.event == "queue:snapshot"
    assert snapshot.data["total"] == 1
    assert [r["id"] for r in snapshot.data["requests"]] == [ack["id"]]
    assert snapshot.data["requests"][0]["topic"] == "fractions"
    # the ack already told the student their position: no queue:position repeats it


async def test_a_burst_of_changes_makes_one_push_of_what_changed(rig: Rig) -> None:
    ana, bob, cy = student("s-ana"), student("s-bob"), student("s-cy")
    ids = []
    for who in (ana, bob, cy):  # a second apart: asked at one instant, ids would order them
        ids.append(await rig.ask(who))
        rig.clock.advance(1)
    await rig.broker.cancel(bob, ids[1], origin="bob-tab-1")
    assert rig.notifier.sent == [
        Sent(
            "student:s-bob",
            "request:closed",
            {"request_id": ids[1], "status": "cancelled", "reason": "student"},
            skip="bob-tab-1",  # that tab has its ack; bob's other tabs are told
        )
    ]
    rig.notifier.clear()
    await rig.flush()
    snapshots = rig.notifier.of(event="queue:snapshot")
    assert len(snapshots) == 1 and snapshots[0]["total"] == 2
    # only cy's position changed (3 -> 2)
    assert rig.notifier.of(event="queue:position") == [
        {"request_id": ids[2], "position": 2, "eta_s": None,
         "nobody_on_shift": True, "next_expected_at": None}
    ]
    assert rig.notifier.of(to="student:s-ana") == []
    await rig.flush()  # nothing pending: nothing more is sent
    assert len(rig.notifier.sent) == 2


async def _started_pushes_done(rig: Rig) -> None:
    """The pushes already started finish; those waiting out their window keep waiting."""
    await asyncio.sleep(0)  # a push due at once starts
    waiting = {*rig.broker._pending_pushes.values(), *rig.broker._pending_positions.values()}
    await asyncio.gather(*(t for t in list(rig.broker._tasks) if t not in waiting))


async def test_a_quiet_queue_is_pushed_at_once_and_a_busy_one_once_per_window(
    unit_db: str,
) -> None:
    async with broker_rig(unit_db, lead_pushes=True) as rig:  # the window: an hour
        ana, bob, cy = student("s-ana"), student("s-bob"), student("s-cy")
        first = await rig.ask(ana)
        await _started_pushes_done(rig)
        [snapshot] = rig.notifier.of(event="queue:snapshot")  # no flush: the first at once
        assert [r["id"] for r in snapshot["requests"]] == [first]
        rig.clock.advance(1)
        second = await rig.ask(bob)
        rig.clock.advance(1)
        await rig.broker.cancel(ana, first)
        await _started_pushes_done(rig)
        assert len(rig.notifier.of(event="queue:snapshot")) == 1  # within the window: held
        await rig.flush()  # the window's end, brought forward: one push of both changes
        later = rig.notifier.of(event="queue:snapshot")
        assert len(later) == 2 and [r["id"] for r in later[1]["requests"]] == [second]
        assert rig.notifier.of(event="queue:position") == [
            {"request_id": second, "position": 1, "eta_s": None,
             "nobody_on_shift": True, "next_expected_at": None}
        ]
        rig.broker.push_delay_s = 0.0  # the window since that push has passed
        rig.clock.advance(1)
        third = await rig.ask(cy)
        await _started_pushes_done(rig)
        last = rig.notifier.of(event="queue:snapshot")
        assert len(last) == 3 and [r["id"] for r in last[2]["requests"]] == [second, third]


@pytest.mark.parametrize(
    ("who", "language", "reason"),
    [
        (student("s-de"), "de", "language_unsupported"),
        # school unknown and a grade (7) that two vendors could serve: never guessed
        (student("s-mid", school_id=None, grade=7), "en", "school_unknown_grade_ambiguous"),
    ],
)
async def test_unmet_requests_are_recorded_with_their_reason(
    rig: Rig, who: Identity, language: str, reason: str
) -> None:
    await rig.connect(who)
    with pytest.raises(Unmet) as caught:
        await rig.broker.request_help(who, "math", language)
    assert caught.value.detail["reason"] == reason
    row = await rig.request_row(caught.value.detail["request_id"])
    assert (row["status"], row["unmet_reason"]) == ("unmet", reason)
    assert row["queue"] is None and row["closed_at"] == at(T0)
    assert await rig.lengths() == {}
    assert rig.notifier.sent == []
    # an unmet request holds no place: the student may ask again at once
    with pytest.raises(Unmet):
        await rig.broker.request_help(who, "math", language)


async def test_one_open_request_per_student(rig: Rig) -> None:
    ana = student("s-ana")
    first = await rig.ask(ana)
    with pytest.raises(Conflict) as caught:
        await rig.broker.request_help(ana, "reading", "es")
    assert caught.value.detail == {"request_id": first}
    assert await rig.lengths() == {"paper:en": 1}
    await rig.broker.cancel(ana, first)
    again = await rig.ask(ana)
    assert again != first and await rig.waiting() == [again]


async def test_cancel_by_someone_else_is_refused_and_changes_nothing(rig: Rig) -> None:
    ana, bob = student("s-ana"), student("s-bob")
    rid = await rig.ask(ana)
    await rig.connect(bob)
    with pytest.raises(NotFound):
        await rig.broker.cancel(bob, rid)
    assert await rig.waiting() == [rid]
    assert (await rig.request_row(rid))["status"] == "queued"
    with pytest.raises(Conflict):  # ana still holds her place
        await rig.broker.request_help(ana, "math", "en")
    await rig.flush()
    assert rig.notifier.of(event="request:closed") == []

    await rig.broker.cancel(ana, rid)
    row = await rig.request_row(rid)
    assert (row["status"], row["close_reason"], row["closed_at"]) == (
        "cancelled",
        "student",
        at(T0),
    )
    with pytest.raises(NotFound):  # at most once
        await rig.broker.cancel(ana, rid)
    assert len(rig.notifier.of(event="request:closed")) == 1


async def test_accept_starts_a_session_once(rig: Rig) -> None:
    ana, ms_x = student("s-ana"), tutor("t-x", languages=("en", "es"), name="Ms. X")
    rid = await rig.ask(ana)
    await rig.connect(ms_x)
    rig.clock.advance(42)
    view = await rig.broker.accept(ms_x, rid)
    assert view["request_id"] == rid and view["tutor"] == {"display_name": "Ms. X"}
    assert view["student"]["pseudonym"] == "s-ana"
    [started] = rig.notifier.of(to="student:s-ana", event="session:started")
    assert started["session_id"] == view["session_id"] and "student" not in started
    with pytest.raises(AlreadyTaken):
        await rig.broker.accept(tutor("t-y"), rid)
    assert await rig.load("t-x") == 1 and await rig.load("t-y") == 0
    request = await rig.request_row(rid)
    assert (request["status"], request["accepted_at"]) == ("accepted", at(T0 + 42))
    session = await rig.session_row(view["session_id"])
    assert (session["tutor_id"], session["queued_at"]) == ("t-x", at(T0))
    with pytest.raises(AlreadyTaken):
        await rig.broker.accept(ms_x, "no-such-request")


async def test_a_tutor_takes_only_their_vendor_and_languages(rig: Rig) -> None:
    rid = await rig.ask(student("s-ana"))
    for outsider in (tutor("t-tc", vendor="tutorcom", languages=("en",)),
                     tutor("t-fr", languages=("fr",))):
        with pytest.raises(NotAllowed):
            await rig.broker.accept(outsider, rid)
        assert await rig.load(outsider.id) == 0
    assert await rig.waiting() == [rid]
    await rig.flush()
    # the snapshot goes to paper:en's watchers only
    assert {s.to for s in rig.notifier.sent if s.event == "queue:snapshot"} == {"queue:paper:en"}


async def test_capacity_is_enforced_and_freed_by_an_end(rig: Rig) -> None:
    busy = tutor("t-busy")  # Paper.co allows 2 sessions at once
    ids = [await rig.ask(student(f"s-{i}")) for i in range(3)]
    first = await rig.broker.accept(busy, ids[0])
    await rig.broker.accept(busy, ids[1])
    with pytest.raises(OverCapacity):
        await rig.broker.accept(busy, ids[2])
    assert await rig.waiting() == [ids[2]]
    assert (await rig.request_row(ids[2]))["status"] == "queued"
    await rig.broker.end(student("s-0"), first["session_id"])
    assert await rig.load("t-busy") == 1
    third = await rig.broker.accept(busy, ids[2])
    assert third["request_id"] == ids[2] and await rig.load("t-busy") == 2
