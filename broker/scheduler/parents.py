"""A parent enrols their child in home-based tutoring through a signed, expiring,
single-child link the district sends (no account).

Guarantees:

* The link names one student, a language and one home-based offer or none (then every
  home-based offer whose grades include the child and that tutors in the language, so the
  parent chooses among the vendors); what it shows is that child's first name and grade,
  those offers, and their open slots **in the link's language** only. Nothing else about
  the student or any other student is reachable through it.
* A tampered, malformed or unknown link is ``link_invalid`` (403); one past its expiry,
  already used or revoked is ``link_expired`` (410). Checks use the scheduler's clock.
* Booking through the link enrols the child (if not yet enrolled), books the series with
  every rule (:func:`broker.scheduler.booking.book`) and marks the link used, in one
  transaction: a refused booking leaves the link usable and nothing written.
* Issuing a link is audited (it gives access to a child's enrolment).
* Through a link that has not expired and was not revoked (used or not: the link that
  booked), the parent withdraws the child's enrolment in a home-based offer the link
  covers (:func:`withdraw_from_link`), with the same effects as a withdrawal by staff.
* :func:`expire_links` (a worker job) marks links past their expiry and never used
  ``expired``, and deletes links (their hashes) expired longer than the retention period;
  one transaction per batch, idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker import audit
from broker.errors import InvalidPayload, NotFound
from broker.identity import Identity
from broker.ids import new_id
from broker.scheduler import booking, inputs, leaving, parent_links, policy, rules, store
from broker.scheduler.errors import ParentLinkExpired, ParentLinkInvalid
from broker.scheduler.service import Scheduler

MAX_SLOTS = 200
SLOT_STEP_MIN = 30


async def issue_link(ctx: Scheduler, actor: Identity, spec: Mapping[str, Any],
                     endpoint: str) -> dict[str, Any]:
    """A link for ``student`` in ``language`` to one home-based ``offer``, or (no
    ``offer``) to every home-based offer open to the child in that language (district staff
    or the student's school's staff); returns the token and its expiry."""
    student_id, offer_id = inputs.ident(spec, "student"), inputs.optional_ident(spec, "offer")
    language = inputs.language(spec)
    now = ctx.now()
    expires = now + ctx.link_ttl
    async with ctx.engine.begin() as conn:
        found = (await store.students_by_id(conn, [student_id])).get(student_id)
        if found is None:
            raise NotFound("no such student", field="student")
        policy.school(actor, found["school_id"])
        if offer_id is not None:
            offer = await store.offer(conn, offer_id)
            if offer is None or offer["programme"] != booking.HOME_BASED:
                raise InvalidPayload("links are for home-based offers", field="offer")
            if not _open_to(offer, found, language, now.date()):
                raise InvalidPayload("the offer does not take this child in this language",
                                     field="language")
        elif not await _offers_for(conn, found, language, None, now.date()):
            raise InvalidPayload("no home-based offer takes this child in this language",
                                 field="language")
        token, link_id = parent_links.issue(ctx.secret, expires)
        await store.insert_parent_link(conn, {
            "id": link_id, "student_id": student_id, "offer_id": offer_id,
            "language": language, "created_by": actor.subject, "created_at": now,
            "expires_at": expires, "used_at": None, "revoked_at": None,
        })
        await audit.record(conn, actor, "scheduler.parent_link", student_id, endpoint,
                           f"offer={offer_id or '*'}", at=now)
    return {"token": token, "expires_at": expires.isoformat()}


async def revoke_links(ctx: Scheduler, actor: Identity, student_id: str,
                       endpoint: str) -> dict[str, int]:
    """Withdraw every unused link of a student (district or the student's school staff);
    a withdrawn link answers ``link_expired``."""
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        found = (await store.students_by_id(conn, [student_id])).get(student_id)
        if found is None:
            raise NotFound("no such student", field="student")
        policy.school(actor, found["school_id"])
        count = await store.revoke_parent_links(conn, student_id, now)
        await audit.record(conn, actor, "scheduler.parent_link.revoke", student_id, endpoint,
                           f"links={count}", at=now)
    return {"revoked": count}


async def _link(conn: AsyncConnection, ctx: Scheduler, token: object, *,
                used_ok: bool = False) -> dict[str, Any]:
    """The link's row if it is genuine, known, unexpired, not revoked and (unless
    ``used_ok``) unused."""
    now = ctx.now()
    link_id = parent_links.verify(ctx.secret, token, now)
    row = await store.parent_link(conn, link_id)
    if row is None:
        raise ParentLinkInvalid("this link is not valid")
    used = row["used_at"] is not None and not used_ok
    if used or row["revoked_at"] is not None or row["expires_at"] <= now:
        raise ParentLinkExpired("this link has been used or withdrawn")
    return row


def _open_to(offer: Mapping[str, Any], child: Mapping[str, Any], language: str,
             today: date) -> bool:
    return (offer["programme"] == booking.HOME_BASED
            and offer["low_grade"] <= child["grade"] <= offer["high_grade"]
            and language in store.split(offer["languages"]) and offer["term_end"] > today)


async def _offers_for(conn: AsyncConnection, child: Mapping[str, Any], language: str,
                      offer_id: str | None, today: date) -> list[dict[str, Any]]:
    """The link's offer, or every home-based offer open to the child in ``language``."""
    found = await store.offers(conn, programme=booking.HOME_BASED)
    return [o for o in found if (offer_id is None or o["id"] == offer_id)
            and _open_to(o, child, language, today)]


def _first_day(offer: Mapping[str, Any], today: date) -> date:
    term_start: date = offer["term_start"]
    return max(term_start, today + timedelta(days=1))


async def open_link(ctx: Scheduler, token: object) -> dict[str, Any]:
    """What the parent's page shows: the child (first name, grade), the offers open to
    them and their vendors' open weekly slots in the link's language."""
    now = ctx.now()
    async with ctx.engine.connect() as conn:
        link = await _link(conn, ctx, token)
        child = (await store.students_by_id(conn, [link["student_id"]]))[link["student_id"]]
        offers = await _offers_for(conn, child, link["language"], link["offer_id"], now.date())
        slots = [slot | {"offer": offer["id"], "vendor": offer["vendor"]}
                 for offer in offers
                 for slot in await open_slots(conn, offer, link["language"], now)]
    return {
        "child": {"given_name": child["given_name"], "grade": child["grade"]},
        "offers": [{"id": o["id"], "vendor": o["vendor"],
                    "subjects": store.split(o["subjects"]),
                    "session_minutes": o["session_minutes"],
                    "min_sessions_per_week": o["min_sessions_per_week"],
                    "term_end": o["term_end"].isoformat()} for o in offers],
        "language": link["language"], "slots": slots[:MAX_SLOTS],
    }


async def open_slots(conn: AsyncConnection, offer: Mapping[str, Any], language: str,
                     now: datetime) -> list[dict[str, Any]]:
    """Weekly starts (every 30 minutes inside each published window, in the tutor's zone)
    of the offer's tutors who tutor in ``language``, free on their next date."""
    out: list[dict[str, Any]] = []
    minutes = offer["session_minutes"]
    for tutor in await store.tutors_of(conn, offer["vendor"]):
        if language not in store.split(tutor["languages"]):
            continue
        zone = tutor["timezone"]
        hours = await store.availability(conn, tutor["tutor_id"], zone)
        first = _first_day(offer, now.astimezone(rules.zone_of(zone)).date())
        week = [rules.slot(first, 0, 1, zone).starts_at,
                rules.slot(first + timedelta(days=8), 0, 1, zone).starts_at]
        busy = await store.tutor_busy(conn, tutor["tutor_id"], week[0], week[1])
        for weekday, windows in sorted(hours.weekly.items()):
            day = first + timedelta(days=(weekday - first.weekday()) % 7)
            if day > offer["term_end"]:
                continue
            for opens, closes in sorted(windows):
                for start in range(opens, closes - minutes + 1, SLOT_STEP_MIN):
                    candidate = rules.slot(day, start, minutes, zone)
                    if rules.overlapping([candidate], busy):
                        continue
                    out.append({"tutor": tutor["tutor_id"],
                                "tutor_name": tutor["display_name"],
                                "weekday": rules.WEEKDAYS[weekday].lower(),
                                "start": rules.hhmm(start), "timezone": zone,
                                "first_date": day.isoformat()})
                    if len(out) >= MAX_SLOTS:
                        return out
    return out


async def book_from_link(ctx: Scheduler, token: object, spec: Mapping[str, Any]
                         ) -> dict[str, Any]:
    """Book the child weekly in ``offer`` (one the link shows) with ``tutor`` at ``start``
    on ``weekdays`` for ``subject`` until the term ends (see the module's guarantees)."""
    tutor_id, subject = inputs.ident(spec, "tutor"), inputs.text(spec, "subject", 16)
    chosen = inputs.optional_ident(spec, "offer")
    start = inputs.minute(spec, "start")
    raw_days = spec.get("weekdays")
    if not isinstance(raw_days, list) or not raw_days or len(raw_days) > 7:
        raise InvalidPayload("weekdays must list the chosen days", field="weekdays")
    weekdays = sorted({inputs.weekday(d, "weekdays") for d in raw_days})
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        link = await _link(conn, ctx, token)
        actor = f"parent-link:{link['id'][:16]}"
        student = link["student_id"]
        child = (await store.students_by_id(conn, [student]))[student]
        offers = await _offers_for(conn, child, link["language"], link["offer_id"],
                                   now.date())
        offer = next((o for o in offers if chosen in (None, o["id"])), None)
        if offer is None or (chosen is None and len(offers) > 1):
            raise InvalidPayload("choose one of the offers the link shows", field="offer")
        if not await store.enrolments(conn, offer["id"], [student]):
            await store.insert_enrolments(conn, [{
                "id": new_id(), "student_id": student, "offer_id": offer["id"],
                "school_id": child["school_id"], "language": link["language"],
                "accommodations": "", "enrolled_by": actor, "enrolled_at": now,
            }])
        tutor = await store.tutor(conn, tutor_id)
        zone = tutor["timezone"] if tutor else "UTC"
        first = _first_day(offer, now.astimezone(rules.zone_of(zone)).date())
        plan = await booking.home_plan(conn, offer["id"], student, tutor_id, subject, {
            "rrule": rules.weekly_rule(weekdays, until=offer["term_end"]),
            "first_day": first.isoformat(), "start": rules.hhmm(start),
        })
        plan = replace(plan, zone=zone)  # the slots were offered in the tutor's zone
        booked = await booking.book(conn, ctx, plan, actor, now, reason="parent link")
        if not await store.use_parent_link(conn, link["id"], now):
            raise ParentLinkExpired("this link has been used or withdrawn")
    return booked.view()


# -- a parent withdraws; the links job ---------------------------------------------------------
async def withdraw_from_link(ctx: Scheduler, token: object, spec: Mapping[str, Any]
                             ) -> dict[str, Any]:
    """Withdraw the link's child from ``offer`` (optional when the child is enrolled in
    only one home-based offer the link covers), with ``reason``: sessions from now on are
    cancelled with notices, the enrolment is marked withdrawn by ``parent-link:<id>``."""
    chosen = inputs.optional_ident(spec, "offer")
    reason = inputs.text(spec, "reason", 200, "")
    now = ctx.now()
    async with ctx.engine.begin() as conn:
        link = await _link(conn, ctx, token, used_ok=True)
        student = link["student_id"]
        homes = await store.offers(conn, programme=booking.HOME_BASED)
        enrolled = [o["id"] for o in homes
                    if await store.enrolment_row(conn, o["id"], student) is not None]
        offer_id = leaving.offers_to_withdraw(link["offer_id"], enrolled, chosen)
        offer = next(o for o in homes if o["id"] == offer_id)
        row = await store.enrolment_row(conn, offer_id, student)
        assert row is not None  # read above, in this transaction
        done = await leaving.withdraw_enrolment_in(
            conn, offer, row, f"parent-link:{link['id'][:16]}", now, reason)
    return {k: v for k, v in done.items() if k != "student"}


async def expire_links(ctx: Scheduler, batch: int = 500, max_batches: int = 20
                       ) -> dict[str, int]:
    """Mark links past their expiry and never used or revoked ``expired``, then delete
    every link whose expiry is older than ``ctx.link_retention`` (the secret's hash goes
    with it). One transaction per batch of at most ``batch`` links, at most
    ``max_batches`` of each, so a round ends; running it again changes nothing new."""
    now = ctx.now()
    before = now - ctx.link_retention
    expired = await _in_batches(
        ctx, lambda conn: store.links_to_expire(conn, now, batch),
        lambda conn, ids: store.mark_links_expired(conn, ids, now), batch, max_batches)
    purged = await _in_batches(
        ctx, lambda conn: store.links_to_purge(conn, before, batch),
        lambda conn, ids: store.delete_links(conn, ids, before), batch, max_batches)
    return {"expired": expired, "purged": purged}


async def _in_batches(ctx: Scheduler, pick: Callable[[AsyncConnection], Awaitable[list[str]]],
                      act: Callable[[AsyncConnection, list[str]], Awaitable[int]],
                      batch: int, max_batches: int) -> int:
    """``act`` on what ``pick`` finds, one transaction per batch, until a batch is short."""
    done = 0
    for _ in range(max_batches):
        async with ctx.engine.begin() as conn:
            ids = await pick(conn)
            done += await act(conn, ids)
        if len(ids) < batch:
            break
    return done
