"""The live-state contract (broker/live/base.py), asserted identically on every backend.

Several handles stand for several broker processes sharing one Redis; in-process they are
one object, so the cross-handle tests hold trivially there and bite on Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable

from broker.live.base import LiveSession, LiveState, MessageStamp, TutorPresence

T0 = 1_718_000_000.0


def session(
    session_id: str, *, student: str = "", tutor: str = "t-1", **changes: object
) -> LiveSession:
    """An open session with plausible fields; ``changes`` override any of them."""
    made = LiveSession(
        id=session_id,
        request_id=f"req-{session_id}",
        student=student or f"stu-{session_id}",
        tutor_id=tutor,
        tutor_name="Ms. Tutor",
        vendor="acme",
        queue="acme:en",
        language="en",
        subject="math",
        accepted_at=T0,
        request={"id": f"req-{session_id}", "queue": "acme:en", "enqueued_at": T0 - 30.5},
        last_activity_at=T0,
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


async def by_id(live: LiveState) -> dict[str, LiveSession]:
    return {s.id: s for s in await live.sessions()}


# -- sessions --------------------------------------------------------------------------


async def test_open_get_and_sessions_round_trip_every_field(lives: list[LiveState]) -> None:
    live, other = lives[0], lives[1]
    full = session(
        "ü-1",
        tutor_name="Señora Ñ — 老师",
        request={"id": "r", "topic": "fractions ½", "grade": 7, "priority": 2, "x": None,
                 "enqueued_at": T0 + 0.123456},
        accepted_at=T0 + 0.000123,
        seq=7,
        messages_student=3,
        messages_tutor=4,
        chars_student=30,
        chars_tutor=4000,
        first_response_at=T0 + 12.25,
        last_activity_at=T0 + 99.875,
    )
    plain = session("s-2")
    await live.open_session(full)
    await other.open_session(plain)
    assert await other.get_session("ü-1") == full
    assert await live.get_session("s-2") == plain
    assert await live.get_session("missing") is None
    assert await by_id(lives[2]) == {"ü-1": full, "s-2": plain}


async def test_a_returned_session_is_a_snapshot(live: LiveState) -> None:
    await live.open_session(session("a"))
    before = await live.get_session("a")
    listed = await live.sessions()
    await live.record_message("a", "tutor", 5, T0 + 1)
    assert before == session("a") and listed == [session("a")]
    after = await live.get_session("a")
    assert after is not None and after.seq == 1


async def test_record_message_counts_each_sender(lives: list[LiveState]) -> None:
    live, other = lives[0], lives[1]
    await live.open_session(session("a"))
    assert await live.record_message("a", "student", 10, T0 + 1) == MessageStamp(1, False)
    assert await other.record_message("a", "student", 3, T0 + 2) == MessageStamp(2, False)
    # the tutor's first message is the first response, once
    assert await other.record_message("a", "tutor", 7, T0 + 5.5) == MessageStamp(3, True)
    assert await live.record_message("a", "tutor", 1, T0 + 6) == MessageStamp(4, False)
    assert await live.record_message("a", "student", 0, T0 + 8.25) == MessageStamp(5, False)
    got = await lives[2].get_session("a")
    assert got == session(
        "a",
        seq=5,
        messages_student=3,
        messages_tutor=2,
        chars_student=13,
        chars_tutor=8,
        first_response_at=T0 + 5.5,
        last_activity_at=T0 + 8.25,
    )


async def test_a_session_opened_with_a_first_response_keeps_it(live: LiveState) -> None:
    """A session put back (after a failed end, or rebuilt) has had its first response."""
    await live.open_session(session("a", first_response_at=T0 + 3, seq=2, messages_tutor=1))
    assert await live.record_message("a", "tutor", 4, T0 + 9) == MessageStamp(3, False)
    got = await live.get_session("a")
    assert got is not None and got.first_response_at == T0 + 3 and got.messages_tutor == 2


async def test_record_message_after_close_is_none(lives: list[LiveState]) -> None:
    live, other = lives[0], lives[1]
    await live.open_session(session("a"))
    await live.record_message("a", "tutor", 2, T0 + 1)
    closed = await other.close_session("a")
    assert closed is not None and closed.seq == 1
    assert await live.record_message("a", "student", 5, T0 + 2) is None
    assert await other.record_message("a", "tutor", 5, T0 + 2) is None
    assert await live.record_message("never-opened", "tutor", 5, T0 + 2) is None
    # and a refused message does not bring the session back
    assert await live.get_session("a") is None
    assert await lives[2].sessions() == []


async def test_close_returns_final_counters_once(lives: list[LiveState]) -> None:
    live, other = lives[0], lives[1]
    await live.open_session(session("a"))
    await live.open_session(session("b"))
    await live.record_message("a", "student", 4, T0 + 1)
    await other.record_message("a", "tutor", 6, T0 + 2)
    closed = await other.close_session("a")
    assert closed == session(
        "a",
        seq=2,
        messages_student=1,
        messages_tutor=1,
        chars_student=4,
        chars_tutor=6,
        first_response_at=T0 + 2,
        last_activity_at=T0 + 2,
    )
    assert await live.close_session("a") is None
    assert await other.close_session("a") is None
    assert await live.close_session("never-opened") is None
    assert await live.get_session("a") is None
    assert list(await by_id(lives[2])) == ["b"]


async def test_close_is_at_most_once_under_concurrent_closers(lives: list[LiveState]) -> None:
    """20 rounds of 25 closers over every handle, with messages racing the close: exactly
    one closer wins, and its session counts exactly the messages that were stamped."""
    for round_no in range(20):
        sid = f"s{round_no}"
        await lives[0].open_session(session(sid))

        async def close(n: int, sid: str = sid) -> LiveSession | None:
            return await lives[n % len(lives)].close_session(sid)

        async def send(n: int, sid: str = sid) -> MessageStamp | None:
            sender = "tutor" if n % 2 else "student"
            return await lives[n % len(lives)].record_message(sid, sender, 1, T0 + n)

        closers = [close(n) for n in range(25)]
        senders = [send(n) for n in range(25)]
        calls: list[Awaitable[LiveSession | MessageStamp | None]] = [*closers, *senders]
        random.Random(round_no).shuffle(calls)
        results = await asyncio.gather(*calls)
        won = [r for r in results if isinstance(r, LiveSession)]
        stamps = [r for r in results if isinstance(r, MessageStamp)]
        assert len(won) == 1, round_no
        [closed] = won
        assert closed.seq == len(stamps)
        assert sorted(s.seq for s in stamps) == list(range(1, len(stamps) + 1))
        assert closed.messages_student + closed.messages_tutor == len(stamps)
        assert closed.chars_student + closed.chars_tutor == len(stamps)
        assert sum(s.first_response for s in stamps) == (1 if closed.messages_tutor else 0)
        assert await lives[1].get_session(sid) is None


async def test_sequence_strictly_increases_across_handles(lives: list[LiveState]) -> None:
    """Ten lanes over every handle send 30 messages each, all at once: the numbers are
    exactly 1..300, and each lane (whose calls reach the backend in order) sees them rise."""
    await lives[0].open_session(session("a"))
    per_lane: dict[int, list[int]] = {}

    async def lane(n: int) -> None:
        handle = lives[n % len(lives)]
        seen = per_lane.setdefault(n, [])
        sender = "tutor" if n % 3 == 0 else "student"
        for i in range(30):
            stamp = await handle.record_message("a", sender, 2, T0 + i)
            assert stamp is not None
            seen.append(stamp.seq)

    await asyncio.gather(*(lane(n) for n in range(10)))
    every = sorted(seq for seqs in per_lane.values() for seq in seqs)
    assert every == list(range(1, 301))
    for seqs in per_lane.values():
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    final = await lives[1].get_session("a")
    assert final is not None
    assert final.seq == 300 and final.messages_tutor == 4 * 30 and final.messages_student == 6 * 30
    assert final.chars_tutor + final.chars_student == 600


async def test_a_closed_session_can_be_put_back(lives: list[LiveState]) -> None:
    """What the broker does when recording an ending fails: the session stays open with its
    counters, and its sequence goes on from where it was."""
    live, other = lives[0], lives[1]
    await live.open_session(session("a"))
    await live.record_message("a", "tutor", 3, T0 + 1)
    closed = await live.close_session("a")
    assert closed is not None
    await other.open_session(closed)
    assert await live.get_session("a") == closed
    assert await live.record_message("a", "student", 1, T0 + 2) == MessageStamp(2, False)


# -- presence ----------------------------------------------------------------------------


async def test_touch_and_last_seen(lives: list[LiveState]) -> None:
    live, other = lives[0], lives[1]
    assert await live.last_seen(["student:a"]) == {}
    assert await live.last_seen([]) == {}
    await live.touch([], T0)  # nothing to do
    await live.touch(["student:a", "tutor:t"], T0 + 0.125)
    assert await other.last_seen(["student:a", "tutor:t", "student:never"]) == {
        "student:a": T0 + 0.125,
        "tutor:t": T0 + 0.125,
    }
    # the last touch counts, from whichever handle
    await other.touch(["student:a"], T0 + 60.5)
    assert await live.last_seen(["student:a", "tutor:t"]) == {
        "student:a": T0 + 60.5,
        "tutor:t": T0 + 0.125,
    }
    many = [f"student:s{i}" for i in range(500)]
    await lives[2].touch(many, T0 + 1)
    seen = await lives[3].last_seen([*many, "tutor:t"])
    assert len(seen) == 501 and seen["student:s499"] == T0 + 1


# -- tutors ----------------------------------------------------------------------------


async def test_set_tutor_replace_and_forget(lives: list[LiveState]) -> None:
    live, other = lives[0], lives[1]
    assert await live.tutors() == []
    ana = TutorPresence("t-ana", "acme", ("en", "es"), "available")
    bo = TutorPresence("t-bo", "other", ("zh",), "away")
    await live.set_tutor(ana, "t-ana")
    await other.set_tutor(bo, "t-bo")
    assert sorted(await lives[2].tutors(), key=lambda t: t.tutor_id) == [ana, bo]
    away = dataclasses.replace(ana, status="away")
    await other.set_tutor(away, "t-ana")
    assert sorted(await live.tutors(), key=lambda t: t.tutor_id) == [away, bo]
    await live.set_tutor(None, "t-ana")
    assert await other.tutors() == [bo]
    await other.set_tutor(None, "t-never")  # forgetting an unknown tutor is harmless
    await other.set_tutor(None, "t-ana")
    assert await live.tutors() == [bo]


# -- one open request per student --------------------------------------------------------


async def test_hold_and_release(lives: list[LiveState]) -> None:
    live, other = lives[0], lives[1]
    assert await live.hold_student("stu", "r1") is None
    assert await other.hold_student("stu", "r2") == "r1"
    assert await live.hold_student("someone-else", "r3") is None
    # only the holder's request releases it
    await other.release_student("stu", "r2")
    assert await live.hold_student("stu", "r4") == "r1"
    await lives[2].release_student("stu", "r1")
    assert await other.hold_student("stu", "r5") is None
    assert await live.hold_student("stu", "r6") == "r5"
    await live.release_student("nobody", "r1")  # harmless
    assert await live.hold_student("someone-else", "r7") == "r3"


async def test_hold_is_atomic_across_handles(lives: list[LiveState]) -> None:
    """Twenty requests of one student race on every handle: exactly one holds, and every
    other is told that one's id."""
    for round_no in range(10):
        student = f"stu-{round_no}"
        ids = [f"r{round_no}-{n}" for n in range(20)]
        answers = await asyncio.gather(
            *(lives[n % len(lives)].hold_student(student, rid) for n, rid in enumerate(ids))
        )
        winners = [rid for rid, answer in zip(ids, answers, strict=True) if answer is None]
        assert len(winners) == 1
        assert {a for a in answers if a is not None} == set(winners)


async def test_hold_racing_a_release(lives: list[LiveState]) -> None:
    """The holder releases while others try to hold: every answer is ``None`` (recorded)
    or an id that really held, never two holders, and the hold left is the winner's."""
    for round_no in range(40):
        student = f"stu-{round_no}"
        assert await lives[0].hold_student(student, "first") is None
        ids = [f"r{round_no}-{n}" for n in range(8)]
        calls: list[Awaitable[str | None]] = [
            lives[n % len(lives)].hold_student(student, rid) for n, rid in enumerate(ids)
        ]
        at = round_no % (len(calls) + 1)  # the release goes first, last, or in between
        calls.insert(at, lives[round_no % len(lives)].release_student(student, "first"))
        answers = await asyncio.gather(*calls)
        holds = answers[:at] + answers[at + 1 :]
        winners = [rid for rid, answer in zip(ids, holds, strict=True) if answer is None]
        assert len(winners) <= 1, (round_no, holds)
        assert {a for a in holds if a is not None} <= {"first", *winners}, (round_no, holds)
        now_held = await lives[1].hold_student(student, "probe")
        assert now_held == (winners[0] if winners else None), (round_no, holds)


# -- rebuild ---------------------------------------------------------------------------


async def test_rebuild_replaces_sessions_and_holds(
    lives: list[LiveState], lose_state: Callable[[], Awaitable[LiveState]]
) -> None:
    live, other = lives[0], lives[1]
    assert not await live.has_state()
    await live.open_session(session("stale"))
    await live.hold_student("stu-stale", "req-stale")
    await live.hold_student("stu-kept", "req-old")
    await live.set_tutor(TutorPresence("t-1", "acme", ("en",), "available"), "t-1")
    await live.touch(["tutor:t-1"], T0)
    assert not await live.has_state()  # only a rebuild builds it

    fresh = [session("a", seq=4, messages_student=4), session("b", student="stu-kept")]
    await other.rebuild(fresh, {"stu-kept": "req-b", "stu-q": "req-q"})
    for handle in lives:
        assert await handle.has_state()
    assert await by_id(live) == {s.id: s for s in fresh}
    assert await live.get_session("stale") is None
    assert await live.close_session("stale") is None
    assert await live.record_message("stale", "tutor", 1, T0) is None
    assert await live.record_message("a", "tutor", 1, T0 + 1) == MessageStamp(5, True)
    # the holds are exactly the rebuilt ones
    assert await live.hold_student("stu-stale", "new") is None
    assert await live.hold_student("stu-kept", "new") == "req-b"
    assert await other.hold_student("stu-q", "new") == "req-q"
    # presence and tutors are not the rebuild's business: they stay
    assert await live.tutors() == [TutorPresence("t-1", "acme", ("en",), "available")]
    assert await live.last_seen(["tutor:t-1"]) == {"tutor:t-1": T0}

    # the state is lost (a restarted process, a Redis that lost its data): has_state says so
    after = await lose_state()
    assert not await after.has_state()
    assert await after.sessions() == []
    assert await after.get_session("a") is None
    assert await after.hold_student("stu-kept", "again") is None
    await after.rebuild([session("c")], {})
    assert await after.has_state()
    assert list(await by_id(after)) == ["c"]
    assert await after.hold_student("stu-kept", "again-2") is None


async def test_rebuild_with_nothing_still_marks_state(live: LiveState) -> None:
    await live.open_session(session("a"))
    await live.hold_student("stu", "r")
    await live.rebuild([], {})
    assert await live.has_state()
    assert await live.sessions() == []
    assert await live.hold_student("stu", "r2") is None


async def test_rebuild_racing_opens_leaves_no_half_session(lives: list[LiveState]) -> None:
    """Sessions opened on other handles while one rebuilds: each one either survived (listed
    and readable) or was replaced (neither); never readable but missing from the list."""
    for round_no in range(10):
        opens = [
            lives[1 + n % (len(lives) - 1)].open_session(session(f"o{round_no}-{n}"))
            for n in range(30)
        ]
        rebuild = lives[0].rebuild([session(f"kept{round_no}")], {})
        calls: list[Awaitable[None]] = [*opens]
        calls.insert(15, rebuild)
        await asyncio.gather(*calls)
        listed = await by_id(lives[2])
        assert f"kept{round_no}" in listed
        for n in range(30):
            sid = f"o{round_no}-{n}"
            readable = await lives[3].get_session(sid) is not None
            closable = await lives[4].close_session(sid) is not None
            assert readable == (sid in listed) == closable, (round_no, sid)
        await lives[0].rebuild([], {})
