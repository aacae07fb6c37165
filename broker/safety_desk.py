"""What the broker does for chat safety beyond screening messages: participants' reports,
staff actions that end sessions or suspend a tutor, ending a silent student's session,
and the "nobody on shift" watch (issue 12).

Guarantees:

* A report is accepted only from a participant of the session (its student or tutor; in a
  booked room, its tutor or a booked student), while it is open or afterwards for as long
  as its record exists; the other side is never told.
* ``end_session`` and ``suspend_tutor`` end each affected session at most once (the same
  guarded transaction as any end); a suspended tutor's students go back to the head of
  their queues, the tutor's connections are told and the account cannot sign in again.
* ``student_silent`` is the tutor's to choose only when the student has written nothing
  since the tutor's first message for ``HH_STUDENT_SILENT_S``; otherwise it is refused
  and nothing changes.
* The no-tutor watch runs in every process's sweep: a queue with students waiting and no
  tutor on shift (status available, present) for ``HH_NO_TUTOR_ALERT_S`` raises one alert
  (recorded once whichever process sees it first), cleared when a tutor is back or the
  queue is empty. Each process's "since when" is memory (allowed to be lost: after a
  restart the wait is counted again).
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from broker import rooms_store
from broker.constants import LEFT_QUESTION_S
from broker.db.models import metadata
from broker.errors import Conflict, NotAllowed, NotFound
from broker.identity import Identity
from broker.lifecycle_store import at, epoch
from broker.media.service import image_view
from broker.media.store import CLIENT_ID_PREFIX
from broker.presence import student_subject
from broker.rooms import Room, role_in
from broker.safety import ACTIONS
from broker.views import OpenSession, iso

if TYPE_CHECKING:
    from broker.service import Broker

log = logging.getLogger(__name__)

sessions = metadata.tables["tutoring_sessions"]
messages = metadata.tables["chat_messages"]
users = metadata.tables["users"]

NEXT_EXPECTED_WEEKS = 4  # "when tutors are next expected": the last four weeks' accepts
NEXT_EXPECTED_TTL_S = 300.0


class SafetyDesk:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._unserved_since: dict[str, float] = {}
        self._next_expected: dict[str, tuple[float, str | None]] = {}
        # Suspended tutors' account ids: the database's, re-read every sweep (so every
        # process refuses their accepts within a sweep), and at once in the process that
        # suspended them.
        self.suspended: set[str] = set()

    async def disabled(self, account_id: str) -> bool:
        """Whether the account is suspended or otherwise disabled (one indexed read)."""
        if account_id in self.suspended:
            return True
        async with self.broker.store.engine.connect() as conn:
            value = (await conn.execute(
                sa.select(users.c.disabled).where(users.c.id == account_id)
            )).scalar()
        return bool(value)

    async def refresh_suspended(self) -> None:
        async with self.broker.store.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(users.c.id).where(users.c.role == "tutor", users.c.disabled.is_(True))
            )
            self.suspended = {str(tutor_id) for (tutor_id,) in rows}

    # -- participants --------------------------------------------------------------------
    async def report(
        self, identity: Identity, session_id: str, seq: int | None, note: str
    ) -> dict[str, Any]:
        b = self.broker
        by = await self._member(identity, session_id)
        await b._throttle(b.request_limiter, identity.subject)
        flag_id = await b.safety.report(
            await b.where(session_id), by, now=b.clock(), seq=seq, note=note
        )
        return {"report_id": flag_id}

    async def _member(self, identity: Identity, session_id: str) -> str:
        """The caller's part in the session (``student`` / ``tutor``), open or ended."""
        b = self.broker
        row = await b.store.session(session_id)
        if row is None:
            raise NotFound("no such session of yours")
        if row.get("booking") is not None:
            found = await rooms_store.rooms(b.store.engine, [session_id])
            if found and role_in(identity, Room.from_row(found[0])) is not None:
                return "tutor" if identity.role == "tutor" else "student"
            raise NotFound("no such session of yours")
        if identity.role == "student" and row["student"] == identity.subject:
            return "student"
        if identity.role == "tutor" and row["tutor_id"] == identity.subject:
            return "tutor"
        raise NotFound("no such session of yours")

    async def end_student_silent(self, identity: Identity, session_id: str) -> None:
        """The tutor ends a session whose student has said nothing since the greeting."""
        b = self.broker
        rows = await b.store.open_sessions(session_id=session_id)
        if not rows or identity.role != "tutor" or rows[0]["tutor_id"] != identity.subject:
            raise NotFound("no such open session of yours")
        row = rows[0]
        greeted = epoch(row.get("first_response_at"))
        if greeted is None:
            raise Conflict("say hello first: the student has not been greeted yet")
        async with b.store.engine.connect() as conn:
            last = (await conn.execute(
                sa.select(sa.func.max(messages.c.at)).where(
                    messages.c.session_id == session_id, messages.c.sender == "student"
                )
            )).scalar()
        since = max(greeted, epoch(last) or 0.0)
        now = b.clock()
        wait = b.settings.student_silent_s
        if now - since < wait:
            left = math.ceil(wait - (now - since))
            raise Conflict(
                f"the student may still answer; you can end it as silent in {left} s",
                retry_after=left,
            )
        if not await b._end(OpenSession.from_row(row), "student_silent", now):
            raise NotFound("no such open session of yours")

    async def leave_question(
        self, identity: Identity, request_id: str, topic: str | None
    ) -> dict[str, Any]:
        """Nobody is on shift: the student leaves their question (optionally rewritten) and
        may go; the request keeps its place for ``LEFT_QUESTION_S`` and is accepted when
        they are back (a tutor sees it marked ``left``)."""
        b = self.broker
        await b._throttle(b.request_limiter, identity.subject)
        until = b.clock() + LEFT_QUESTION_S
        if not await b.store.leave_question(request_id, identity.subject, topic, until):
            raise NotFound("no such waiting request")
        b.push_queue((await b.store.request(request_id) or {}).get("queue") or "")
        return {"request_id": request_id, "left_until": iso(until)}

    async def check_left_question(self, row: dict[str, Any]) -> None:
        """A tutor may accept a left question only while its student is here."""
        if row.get("left_until") is None:
            return
        b = self.broker
        subject = student_subject(row["student"])
        now = b.clock()
        # presence unreachable (or another process blind): let the tutor try (the sweep judges)
        seen = ((await b.judge.last_seen([subject], now)) or {}).get(subject, now)
        if now - seen > 3 * b.sweep_interval:  # every process touches its people each sweep
            raise Conflict("this student left their question and is away; they keep their "
                           "place and will be matched when they come back")

    # -- staff ---------------------------------------------------------------------------
    async def review(self, staff: Identity, flag_id: str, endpoint: str) -> dict[str, Any]:
        """One flag for its reviewer (:meth:`Safety.flag`, audited), with the pictures the
        session still holds: a picture message's ``image`` and, when the flagged message
        itself was a picture (a held caption's), the flag's ``image``; fetched one at a
        time with :meth:`flag_image`."""
        media = self.broker.media
        row, view = await self.broker.safety.flag(staff, flag_id, endpoint)
        await media.attach(row["session_id"], view["messages"])
        client_id = row.get("client_id") or ""
        if client_id.startswith(CLIENT_ID_PREFIX):
            found = await media.store.find(row["session_id"], client_id[len(CLIENT_ID_PREFIX):])
            if found is not None:
                view["image"] = image_view(found)
        return view

    async def flag_image(
        self, staff: Identity, flag_id: str, image_id: str, endpoint: str
    ) -> tuple[bytes, str]:
        """(bytes, media type) of a picture of the flagged session for its reviewer (the
        flag's scope: district staff, or the school's designee): one its messages
        announced, or the flag's own; audited in the read's transaction. ``not_found`` once
        the review period has deleted it."""
        row = await self.broker.safety.scoped_flag(staff, flag_id)
        found = await self.broker.media.store.staff_read(
            row["session_id"], image_id, held=row.get("client_id") == CLIENT_ID_PREFIX + image_id,
            actor=staff, endpoint=endpoint, detail=f"flag={flag_id}",
        )
        if found is None:
            raise NotFound("no such picture")
        return found

    async def act(
        self, staff: Identity, flag_id: str, action: str, endpoint: str
    ) -> dict[str, Any]:
        """Dismiss a flag, end its session, or suspend its tutor (ending all their open
        sessions); audited. :class:`Conflict` if the flag was already decided."""
        b = self.broker
        if action not in ACTIONS:
            raise NotAllowed("unknown action")
        row, _ = await b.safety.flag(staff, flag_id, endpoint)
        if row["status"] != "open":
            raise Conflict("this flag was already decided")
        now = b.clock()
        ended = 0
        if action == "suspend_tutor":
            if not await b.safety.suspend(staff, row, endpoint, now):
                raise NotFound("that tutor has no account here to suspend")
            self.suspended.add(row["tutor_id"])
            ended = await self._end_all_of(row["tutor_id"], "tutor_suspended", now)
            await b.notifier.to_tutor(row["tutor_id"], "account:suspended", {})
        else:
            if not await b.safety.decide_flag(staff, row, ACTIONS[action], endpoint, now):
                raise Conflict("this flag was already decided")
            if action == "end_session":
                ended = await self._end_one(row["session_id"], "ended_by_staff", now)
        log.warning("staff %s: %s on flag %s (%d sessions ended)",
                    staff.subject, action, flag_id, ended)
        return {"flag_id": flag_id, "status": ACTIONS[action], "sessions_ended": ended}

    async def _end_one(self, session_id: str, reason: str, now: float) -> int:
        b = self.broker
        room = await b.rooms.room(session_id)
        if room is not None:
            return int(await b.rooms.close(room, reason))
        rows = await b.store.open_sessions(session_id=session_id)
        if rows and await b._end(OpenSession.from_row(rows[0]), reason, now):
            return 1
        return 0

    async def _end_all_of(self, tutor_id: str, reason: str, now: float) -> int:
        """End every open on-demand session of the tutor; their students go back to the
        head of their queues."""
        b = self.broker
        ended = 0
        for row in await b.store.open_sessions(tutor=tutor_id):
            if await b._end(OpenSession.from_row(row), reason, now, requeue=True, at_head=True):
                ended += 1
        return ended

    # -- nobody on shift -----------------------------------------------------------------
    async def watch_queues(self, now: float, unserved: set[str]) -> None:
        """Raise or clear the ``no_tutor`` alert of each queue (see the module's
        guarantees); ``unserved``: the queues with students waiting and nobody on shift."""
        b = self.broker
        limit = b.settings.no_tutor_alert_s
        if not limit:
            return
        for name in list(self._unserved_since):
            if name not in unserved:
                del self._unserved_since[name]
        for name in unserved:
            since = self._unserved_since.setdefault(name, now)
            if now - since >= limit:
                vendor = name.split(":", 1)[0]
                await b.safety.alert(
                    "no_tutor", f"no_tutor:{name}", now, queue=name, vendor=vendor,
                    minutes=int(limit // 60) or 1,
                )
        open_keys = await b.safety.open_alert_keys("no_tutor")
        served = [key for key in open_keys if key.split(":", 1)[1] not in unserved]
        if served:
            await b.safety.clear("no_tutor", served, now)

    def nobody_on_shift(self, name: str, available: int) -> dict[str, Any]:
        """What a waiting student is told of tutors: nobody on shift, and when tutors are
        next expected (from the last weeks' accepts), if known."""
        if available > 0:
            return {}
        cached = self._next_expected.get(name)
        return {"nobody_on_shift": True, "next_expected_at": cached[1] if cached else None}

    async def refresh_next_expected(self, now: float, names: set[str]) -> None:
        """For each queue in ``names``: the next start of an hour of the week in which a
        tutor accepted a request of that queue in the last :data:`NEXT_EXPECTED_WEEKS`
        weeks (the shift plan, when one exists, will say better: issue 15)."""
        for name in names:
            cached = self._next_expected.get(name)
            if cached is not None and now - cached[0] < NEXT_EXPECTED_TTL_S:
                continue
            vendor, _, language = name.partition(":")
            since = at(now) - timedelta(weeks=NEXT_EXPECTED_WEEKS)
            async with self.broker.store.engine.connect() as conn:
                rows = (await conn.execute(
                    sa.select(sessions.c.accepted_at).where(
                        sessions.c.vendor == vendor, sessions.c.language == language,
                        sessions.c.accepted_at >= since, sessions.c.booking.is_(None),
                    )
                )).scalars().all()
            self._next_expected[name] = (now, next_expected(now, [epoch(r) or 0.0 for r in rows]))


def next_expected(now: float, accepted: list[float]) -> str | None:
    """The start of the next hour (of the week, UTC) after ``now`` in which any of
    ``accepted`` fell, as an ISO time; ``None`` if none did."""
    week = 7 * 24
    hours = {int(moment // 3600) % week for moment in accepted}
    if not hours:
        return None
    this_hour = int(now // 3600)
    for ahead in range(1, week + 1):
        if (this_hour + ahead) % week in hours:
            return iso(float((this_hour + ahead) * 3600))
    return None

