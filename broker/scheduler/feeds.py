"""Each person's schedule as an iCalendar feed at an unguessable, revocable URL.

A feed token is 32 random bytes (URL-safe); only its SHA-256 is stored, with its owner (a
student or a tutor). An unknown or revoked token is a plain 404, so a URL reveals nothing
once revoked. An owner may hold several feeds: each is listed by a public id (the first
16 hex digits of the hash, never the token), its creation and last use, and revoked one by
one (by id or by the token) or all at once. The feed is rendered by
:func:`broker.scheduler.ical.render_feed` from the database as it is now:

* one VEVENT per series with its RRULE (``COUNT`` of the occurrences booked) from the
  first occurrence's booked local start, in the series' zone with its VTIMEZONE;
* cancelled occurrences (and, in a tutor's feed, occurrences given to a substitute) as
  EXDATE, so a cancelled session disappears from the person's calendar;
* moved occurrences as RECURRENCE-ID overrides; a substitute's sessions as single events;
* ``SEQUENCE`` = the number of changes in the series' history, so clients take updates.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from broker import audit
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity
from broker.scheduler import policy, rules, store
from broker.scheduler.ical import FeedEvent, FeedMove, FeedSeries, render_feed
from broker.scheduler.notices import N_
from broker.scheduler.service import Scheduler
from i18n import translator

OWNER_KINDS = frozenset({"student", "tutor"})
ID_LENGTH = 16  # a feed's public id: the first hex digits of its token's SHA-256
TOUCH_EVERY = timedelta(hours=1)
SUMMARY = N_("Tutoring: %(subject)s")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _may_manage(ctx: Scheduler, actor: Identity, owner_kind: str, owner_id: str) -> None:
    if owner_kind not in OWNER_KINDS:
        raise InvalidPayload("owner must be a student or a tutor", field="owner_kind")
    if actor.role == "tutor":
        if owner_kind != "tutor" or actor.subject != owner_id:
            raise NotAllowed("a tutor manages only their own feed")
        return
    async with ctx.engine.connect() as conn:
        if owner_kind == "student":
            found = (await store.students_by_id(conn, [owner_id])).get(owner_id)
            if found is None:
                raise NotFound("no such student", field="owner")
            policy.school(actor, found["school_id"])
        else:
            tutor = await store.tutor(conn, owner_id)
            if tutor is None:
                raise NotFound("no such tutor", field="owner")
            policy.vendor(actor, tutor["vendor"])


async def create_feed(ctx: Scheduler, actor: Identity, owner_kind: str,
                      owner_id: str) -> dict[str, Any]:
    """A new feed token for the owner (shown once; earlier tokens stay valid until
    revoked)."""
    await _may_manage(ctx, actor, owner_kind, owner_id)
    token = secrets.token_urlsafe(32)
    async with ctx.engine.begin() as conn:
        await store.insert_feed(conn, {
            "token_hash": _hash(token), "owner_kind": owner_kind, "owner_id": owner_id,
            "created_at": ctx.now(), "revoked_at": None,
        })
    return {"token": token}


async def revoke_feeds(ctx: Scheduler, actor: Identity, owner_kind: str,
                       owner_id: str) -> dict[str, Any]:
    await _may_manage(ctx, actor, owner_kind, owner_id)
    async with ctx.engine.begin() as conn:
        count = await store.revoke_feeds(conn, owner_kind, owner_id, ctx.now())
    return {"revoked": count}


# -- one feed: list, revoke by id or by token ----------------------------------------------------
def feed_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A feed without its secret: its id, when it was made and last fetched."""
    last = row["last_used_at"]
    return {"id": row["token_hash"][:ID_LENGTH], "created_at": row["created_at"].isoformat(),
            "last_used_at": last.isoformat() if last is not None else None}


async def list_feeds(ctx: Scheduler, actor: Identity, owner_kind: str, owner_id: str,
                     endpoint: str) -> dict[str, Any]:
    """An owner's feeds that are not revoked (:func:`feed_view`), for whoever may manage
    them; a staff read of a student's feeds is audited."""
    await _may_manage(ctx, actor, owner_kind, owner_id)
    async with ctx.engine.connect() as conn:
        rows = await store.feeds_of(conn, owner_kind, owner_id)
    if owner_kind == "student":
        await audit.record(ctx.engine, actor, "scheduler.feeds", owner_id, endpoint,
                           f"feeds={len(rows)}", at=ctx.now())
    return {"owner_kind": owner_kind, "owner": owner_id,
            "feeds": [feed_view(r) for r in rows]}


async def revoke_feed(ctx: Scheduler, actor: Identity, *, token: str | None = None,
                      owner: tuple[str, str] | None = None,
                      feed_id: str | None = None) -> dict[str, Any]:
    """Revoke one feed, named by its ``token`` or by ``owner`` and ``feed_id`` (its public
    id), for whoever may manage the owner's feeds (the tutor themself, the student's
    school staff, the tutor's vendor manager, the district). Unknown or already revoked:
    :class:`NotFound`. The feed's URL answers 404 from then on; the owner's other feeds
    stay valid."""
    if token is None and owner is not None:
        await _may_manage(ctx, actor, *owner)  # before anything about the owner is read
    async with ctx.engine.connect() as conn:
        if token is not None:
            found = await store.feed(conn, _hash(token)) if 20 <= len(token) <= 64 else None
        elif owner is not None and feed_id is not None:
            found = next((r for r in await store.feeds_of(conn, *owner)
                          if r["token_hash"][:ID_LENGTH] == feed_id.lower()), None)
        else:
            raise InvalidPayload("name the feed by its token or its id", field="token")
    if found is None or found["revoked_at"] is not None:
        raise NotFound("no such feed", field="feed")
    await _may_manage(ctx, actor, found["owner_kind"], found["owner_id"])
    async with ctx.engine.begin() as conn:
        count = await store.revoke_feed(conn, found["token_hash"], ctx.now())
    if not count:
        raise NotFound("no such feed", field="feed")
    return {"revoked": feed_view(found)}


def _local(when: datetime, zone: str) -> datetime:
    return when.astimezone(rules.zone_of(zone)).replace(tzinfo=None)


def _count_rule(rule: str, count: int) -> str:
    parts = [p for p in rule.upper().removeprefix("RRULE:").split(";")
             if p and not p.startswith(("COUNT=", "UNTIL="))]
    return ";".join([*parts, f"COUNT={count}"])


def feed_items(owner_kind: str, owner_id: str, series: Sequence[Mapping[str, Any]],
               locale: str = "en") -> tuple[list[FeedSeries], list[FeedEvent]]:
    """The feed's series and single events for one owner (pure)."""
    tr = translator(locale)
    out: list[FeedSeries] = []
    events: list[FeedEvent] = []
    for s in series:
        occurrences = s["occurrences"]
        if not occurrences:
            continue
        zone = s["timezone"]
        summary = tr.gettext(SUMMARY) % {"subject": s["subject"]}
        length = timedelta(minutes=s["minutes"])
        mine = owner_kind == "student" or s["tutor_id"] == owner_id
        for o in occurrences:  # a substitute's sessions in another tutor's series
            if not mine and o["tutor_id"] == owner_id and o["status"] != "cancelled":
                events.append(FeedEvent(
                    uid=f"{o['id']}@homework-help", summary=summary, description="",
                    location="", zone=zone, start_local=_local(o["starts_at"], zone),
                    duration=o["ends_at"] - o["starts_at"], sequence=s["changes"]))
        if not mine:
            continue
        gone = [o for o in occurrences if o["status"] == "cancelled" or (
            owner_kind == "tutor" and o["tutor_id"] != owner_id)]
        moved = [o for o in occurrences if o not in gone
                 and o["starts_at"] != o["original_starts_at"]]
        out.append(FeedSeries(
            uid=f"{s['id']}@homework-help", summary=summary, description="", location="",
            zone=zone, first_start_local=_local(occurrences[0]["original_starts_at"], zone),
            duration=length, rrule=_count_rule(s["rrule"], len(occurrences)),
            cancelled_local_starts=[_local(o["original_starts_at"], zone) for o in gone],
            moved=[FeedMove(_local(o["original_starts_at"], zone),
                            _local(o["starts_at"], zone)) for o in moved],
            sequence=s["changes"], cancelled=len(gone) == len(occurrences),
        ))
    return out, events


async def render(ctx: Scheduler, token: str) -> bytes:
    """The feed of a valid token; :class:`NotFound` for an unknown or revoked one. Its
    use is recorded (``last_used_at``, at most once per :data:`TOUCH_EVERY`)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 64:
        raise NotFound("no such feed")
    async with ctx.engine.connect() as conn:
        found = await store.feed(conn, _hash(token))
        if found is None or found["revoked_at"] is not None:
            raise NotFound("no such feed")
        series = await store.feed_series(conn, found["owner_kind"], found["owner_id"])
    now = ctx.now()
    if found["last_used_at"] is None or found["last_used_at"] <= now - TOUCH_EVERY:
        async with ctx.engine.begin() as conn:
            await store.touch_feed(conn, found["token_hash"], now, now - TOUCH_EVERY)
    items, events = feed_items(found["owner_kind"], found["owner_id"], series,
                               _feed_locale(series))
    return render_feed("Tutoring", items, events, now=ctx.now())


def _feed_locale(series: Sequence[Mapping[str, Any]]) -> str:
    languages = {s["language"] for s in series}
    return languages.pop() if len(languages) == 1 else "en"
