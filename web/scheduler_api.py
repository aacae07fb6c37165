"""``/api/scheduler/*``, ``/api/parent/*`` and ``/feeds/*``: the scheduler over HTTP.

Handlers parse the request, call :mod:`broker.scheduler` and render JSON; who may do what
and every rule is decided there (a refusal is a typed problem body, see
``docs/scheduler.md``). Callers: signed-in staff and tutors (session cookie, or a bearer
socket token); parents through their link's token in the URL; calendar clients through
a feed token. Personal data reads are audited in ``broker/`` and answered with
``Cache-Control: no-store``.

=======  ================================================  ===================================
POST     ``/api/scheduler/offers``                         programme offer (district)
GET      ``/api/scheduler/offers``                         offers (vendor managers: theirs)
PUT      ``/api/scheduler/schools/{school}/bells``         zone, after-school end, bells
POST     ``/api/scheduler/schools/{school}/calendar``      dated days as JSON
POST     ``/api/scheduler/schools/{school}/calendar/import?format=csv|ics``  raw file
GET      ``/api/scheduler/schools/{school}/calendar``      the school's dated days
GET      ``/api/scheduler/schools/{school}/week?date=``    the school's week (audited)
GET      ``/api/scheduler/schools/{school}/groups``        the school's groups (audited)
PUT      ``/api/scheduler/tutors/{tutor}``                 tutor profile
PUT      ``/api/scheduler/tutors/{tutor}/availability``    weekly windows and exceptions
POST     ``/api/scheduler/availability/import?format=csv|json``  many tutors, whole
POST     ``/api/scheduler/offers/{offer}/enrolments``      enrol students
POST     ``/api/scheduler/groups``                         form a group
POST     ``/api/scheduler/groups/{group}/members``         add a student from a date on
POST     ``/api/scheduler/groups/{group}/members/{student}/remove``  from a date on
POST     ``/api/scheduler/offers/{offer}/enrolments/{student}/withdraw``  end an enrolment
GET      ``/api/scheduler/students/{student}/enrolments``  enrolments, withdrawn too (audited)
POST     ``/api/scheduler/series``                         book a series or appointment
GET      ``/api/scheduler/series/{series}``                series, occurrences, history
POST     ``/api/scheduler/occurrences/{occurrence}/{action}``  cancel, reschedule,
                                                           substitute, attendance, join
GET      ``/api/scheduler/students/{student}/schedule``    a student's term (audited)
GET      ``/api/scheduler/reports?school&offer&from&to``   dosage, attendance, no-shows
                                                           (``format=csv``: dosage rows)
GET      ``/api/scheduler/me/upcoming``                    a tutor's next sessions
POST     ``/api/scheduler/parent-links``                   issue a parent link
DELETE   ``/api/scheduler/parent-links/{student}``         withdraw a student's links
GET      ``/api/parent/{token}``                           the parent's view and open slots
POST     ``/api/parent/{token}/book``                      book through the link
POST     ``/api/parent/{token}/withdraw``                  withdraw the child (home-based)
POST     ``/api/scheduler/feeds``                          a new feed token
GET      ``/api/scheduler/feeds/{kind}/{owner}``           an owner's feeds (no secrets)
DELETE   ``/api/scheduler/feeds/{kind}/{owner}``           revoke an owner's feeds
DELETE   ``/api/scheduler/feeds/{kind}/{owner}/{feed}``    revoke one feed by its id
POST     ``/api/scheduler/feeds/revoke``                   revoke one feed by its token
GET      ``/feeds/{token}.ics``                            the iCalendar feed
=======  ================================================  ===================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from broker.errors import InvalidPayload, NotAllowed, Unauthenticated
from broker.identity import Identity
from broker.scheduler import (
    attendance,
    booking,
    enrolment,
    feeds,
    inputs,
    leaving,
    parents,
    reports,
    setup,
    views,
)
from broker.scheduler.service import Scheduler
from web import jsonlib
from web.auth import authorise, bearer_identity
from web.responses import NO_STORE, no_store_json

SchedulerGetter = Callable[[], Scheduler]
Identify = Callable[[web.Request], Awaitable[Identity]]
SCHEDULER: web.AppKey[SchedulerGetter] = web.AppKey("scheduler")
IDENTIFY: web.AppKey[Identify] = web.AppKey("scheduler_identify")
MAX_FILE = 2_000_000  # calendar and availability files (the app's JSON limit is 64 KiB)
P = "/api/scheduler"


async def signed_in(request: web.Request) -> Identity:
    """Staff or a tutor: a bearer socket token, else the session cookie (re-checked)."""
    return bearer_identity(request) or await authorise(request, ("staff", "tutor"))


def _ctx(request: web.Request) -> Scheduler:
    return request.app[SCHEDULER]()


async def _who(request: web.Request) -> Identity:
    identity = await request.app[IDENTIFY](request)
    if identity is None:
        raise Unauthenticated("please sign in")
    return identity


async def _body(request: web.Request) -> Mapping[str, Any]:
    return inputs.body(await jsonlib.request_json(request))


_json = no_store_json


def _endpoint(request: web.Request) -> str:
    return f"{request.method} {request.path}"[:200]


def _param(request: web.Request, name: str) -> str:
    value = request.match_info.get(name) or request.query.get(name) or ""
    if not inputs.ID.match(value):
        raise InvalidPayload(f"{name} must be an id", field=name)
    return value


def _day(request: web.Request, name: str, default: dt.date | None = None) -> dt.date:
    raw = request.query.get(name)
    if raw is None and default is not None:
        return default
    return inputs.parse_day(raw, name)


async def _file(request: web.Request) -> bytes:
    """The raw body of an import, up to :data:`MAX_FILE` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65_536):
        size += len(chunk)
        if size > MAX_FILE:
            raise InvalidPayload(f"the file is larger than {MAX_FILE} bytes", field="file")
        chunks.append(chunk)
    return b"".join(chunks)


def _format(request: web.Request, allowed: tuple[str, ...]) -> str:
    fmt = request.query.get("format", "")
    if fmt not in allowed:
        raise InvalidPayload(f"format must be one of {', '.join(allowed)}", field="format")
    return fmt


# -- set-up ------------------------------------------------------------------------------------
async def create_offer(request: web.Request) -> web.StreamResponse:
    return _json(await setup.create_offer(_ctx(request), await _who(request),
                                          await _body(request)), 201)


async def list_offers(request: web.Request) -> web.StreamResponse:
    return _json({"offers": await setup.list_offers(_ctx(request), await _who(request))})


async def put_bells(request: web.Request) -> web.StreamResponse:
    return _json(await setup.set_school_schedule(
        _ctx(request), await _who(request), _param(request, "school"), await _body(request)))


async def post_calendar(request: web.Request) -> web.StreamResponse:
    return _json(await setup.add_calendar_days(
        _ctx(request), await _who(request), _param(request, "school"), await _body(request)))


async def import_calendar(request: web.Request) -> web.StreamResponse:
    actor = await _who(request)
    fmt = _format(request, ("csv", "ics"))
    return _json(await setup.import_calendar(
        _ctx(request), actor, _param(request, "school"), fmt, await _file(request)))


async def get_calendar(request: web.Request) -> web.StreamResponse:
    return _json({"days": await setup.school_calendar(
        _ctx(request), await _who(request), _param(request, "school"))})


async def put_tutor(request: web.Request) -> web.StreamResponse:
    return _json(await setup.set_tutor(
        _ctx(request), await _who(request), _param(request, "tutor"), await _body(request)))


async def put_availability(request: web.Request) -> web.StreamResponse:
    return _json(await setup.publish_availability(
        _ctx(request), await _who(request), _param(request, "tutor"), await _body(request)))


async def import_availability(request: web.Request) -> web.StreamResponse:
    actor = await _who(request)
    fmt = _format(request, ("csv", "json"))
    return _json(await setup.import_availability(_ctx(request), actor, fmt,
                                                 await _file(request)))


# -- enrolment, groups, booking ---------------------------------------------------------------
async def enrol(request: web.Request) -> web.StreamResponse:
    return _json(await enrolment.enrol(
        _ctx(request), await _who(request), _param(request, "offer"), await _body(request)))


async def form_group(request: web.Request) -> web.StreamResponse:
    return _json(await enrolment.form_group(_ctx(request), await _who(request),
                                            await _body(request)), 201)


async def add_member(request: web.Request) -> web.StreamResponse:
    return _json(await enrolment.add_to_group(
        _ctx(request), await _who(request), _param(request, "group"), await _body(request)))


async def school_groups(request: web.Request) -> web.StreamResponse:
    offer = request.query.get("offer")
    return _json({"groups": await views.school_groups(
        _ctx(request), await _who(request), _param(request, "school"),
        _param(request, "offer") if offer else None, _endpoint(request))})


async def book_series(request: web.Request) -> web.StreamResponse:
    booked = await booking.book_series(_ctx(request), await _who(request),
                                       await _body(request))
    return _json(booked.view(), 201)


async def get_series(request: web.Request) -> web.StreamResponse:
    return _json(await views.series_history(
        _ctx(request), await _who(request), _param(request, "series"), _endpoint(request)))


OCCURRENCE_ACTIONS: dict[str, Callable[..., Awaitable[Any]]] = {
    "cancel": booking.cancel,
    "reschedule": booking.reschedule,
    "substitute": booking.substitute,
    "attendance": attendance.mark,
}


async def occurrence_action(request: web.Request) -> web.StreamResponse:
    action = request.match_info["action"]
    occurrence = _param(request, "occurrence")
    actor = await _who(request)
    if action == "join":  # the tutor's console; students join through their launch
        if actor.role != "tutor":
            raise NotAllowed("only the session's tutor joins here")
        return _json({"status": await attendance.record_join(
            _ctx(request), occurrence, "tutor", actor.tutor_profile or actor.subject)})
    handler = OCCURRENCE_ACTIONS.get(action)
    if handler is None:
        raise web.HTTPNotFound()
    return _json(await handler(_ctx(request), actor, occurrence, await _body(request)))


# -- reads -----------------------------------------------------------------------------------
async def school_week(request: web.Request) -> web.StreamResponse:
    return _json(await views.school_week(
        _ctx(request), await _who(request), _param(request, "school"),
        _day(request, "date", _ctx(request).now().date()), _endpoint(request)))


async def student_schedule(request: web.Request) -> web.StreamResponse:
    return _json(await views.student_schedule(
        _ctx(request), await _who(request), _param(request, "student"), _endpoint(request)))


async def my_upcoming(request: web.Request) -> web.StreamResponse:
    return _json(await views.tutor_upcoming(_ctx(request), await _who(request)))


async def report(request: web.Request) -> web.StreamResponse:
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidPayload("format must be json or csv", field="format")
    figures = await reports.report(
        _ctx(request), await _who(request), _param(request, "school"),
        _param(request, "offer"), _day(request, "from"), _day(request, "to"),
        _endpoint(request))
    if fmt == "json":
        return _json(figures)
    return web.Response(
        text=reports.dosage_csv(figures), content_type="text/csv", charset="utf-8",
        headers={**NO_STORE,
                 "Content-Disposition": 'attachment; filename="tutoring-dosage.csv"'})


# -- parents ---------------------------------------------------------------------------------
async def issue_parent_link(request: web.Request) -> web.StreamResponse:
    return _json(await parents.issue_link(_ctx(request), await _who(request),
                                          await _body(request), _endpoint(request)), 201)


async def revoke_parent_links(request: web.Request) -> web.StreamResponse:
    return _json(await parents.revoke_links(
        _ctx(request), await _who(request), _param(request, "student"), _endpoint(request)))


async def parent_view(request: web.Request) -> web.StreamResponse:
    return _json(await parents.open_link(_ctx(request), request.match_info["token"]))


async def parent_book(request: web.Request) -> web.StreamResponse:
    return _json(await parents.book_from_link(
        _ctx(request), request.match_info["token"], await _body(request)), 201)


# -- feeds -----------------------------------------------------------------------------------
async def create_feed(request: web.Request) -> web.StreamResponse:
    actor = await _who(request)
    spec = await _body(request)
    made = await feeds.create_feed(_ctx(request), actor, inputs.text(spec, "owner_kind", 16),
                                   inputs.ident(spec, "owner"))
    return _json({**made, "url": f"/feeds/{made['token']}.ics"}, 201)


async def revoke_feeds(request: web.Request) -> web.StreamResponse:
    return _json(await feeds.revoke_feeds(
        _ctx(request), await _who(request), request.match_info["kind"],
        _param(request, "owner")))


async def feed(request: web.Request) -> web.StreamResponse:
    body = await feeds.render(_ctx(request), request.match_info["token"])
    return web.Response(body=body, content_type="text/calendar", charset="utf-8",
                        headers=NO_STORE)


# -- leaving, withdrawals, single feeds (issue #11's changes) -------------------------------------
async def remove_member(request: web.Request) -> web.StreamResponse:
    return _json(await leaving.remove_from_group(
        _ctx(request), await _who(request), _param(request, "group"),
        _param(request, "student"), await _body(request), _endpoint(request)))


async def withdraw_enrolment(request: web.Request) -> web.StreamResponse:
    return _json(await leaving.withdraw_enrolment(
        _ctx(request), await _who(request), _param(request, "offer"),
        _param(request, "student"), await _body(request), _endpoint(request)))


async def student_enrolments(request: web.Request) -> web.StreamResponse:
    return _json(await leaving.enrolment_history(
        _ctx(request), await _who(request), _param(request, "student"), _endpoint(request)))


async def parent_withdraw(request: web.Request) -> web.StreamResponse:
    return _json(await parents.withdraw_from_link(
        _ctx(request), request.match_info["token"], await _body(request)))


async def list_feeds(request: web.Request) -> web.StreamResponse:
    return _json(await feeds.list_feeds(
        _ctx(request), await _who(request), request.match_info["kind"],
        _param(request, "owner"), _endpoint(request)))


async def revoke_feed(request: web.Request) -> web.StreamResponse:
    return _json(await feeds.revoke_feed(
        _ctx(request), await _who(request),
        owner=(request.match_info["kind"], _param(request, "owner")),
        feed_id=_param(request, "feed")))


async def revoke_feed_by_token(request: web.Request) -> web.StreamResponse:
    spec = await _body(request)
    return _json(await feeds.revoke_feed(_ctx(request), await _who(request),
                                         token=inputs.text(spec, "token", 64)))


def setup_leaving_routes(r: web.UrlDispatcher) -> None:
    """The routes of the block above."""
    r.add_post(f"{P}/groups/{{group}}/members/{{student}}/remove", remove_member)
    r.add_post(f"{P}/offers/{{offer}}/enrolments/{{student}}/withdraw", withdraw_enrolment)
    r.add_get(f"{P}/students/{{student}}/enrolments", student_enrolments)
    r.add_post("/api/parent/{token}/withdraw", parent_withdraw)
    r.add_post(f"{P}/feeds/revoke", revoke_feed_by_token)
    r.add_get(f"{P}/feeds/{{kind}}/{{owner}}", list_feeds)
    r.add_delete(f"{P}/feeds/{{kind}}/{{owner}}/{{feed}}", revoke_feed)


def setup_scheduler_api(app: web.Application, scheduler: SchedulerGetter,
                        identify: Identify = signed_in) -> None:
    """Mount the scheduler's routes; ``scheduler`` gives the context at request time."""
    app[SCHEDULER] = scheduler
    app[IDENTIFY] = identify
    r = app.router
    r.add_post(f"{P}/offers", create_offer)
    r.add_get(f"{P}/offers", list_offers)
    r.add_put(f"{P}/schools/{{school}}/bells", put_bells)
    r.add_post(f"{P}/schools/{{school}}/calendar", post_calendar)
    r.add_get(f"{P}/schools/{{school}}/calendar", get_calendar)
    r.add_post(f"{P}/schools/{{school}}/calendar/import", import_calendar)
    r.add_get(f"{P}/schools/{{school}}/week", school_week)
    r.add_get(f"{P}/schools/{{school}}/groups", school_groups)
    r.add_put(f"{P}/tutors/{{tutor}}", put_tutor)
    r.add_put(f"{P}/tutors/{{tutor}}/availability", put_availability)
    r.add_post(f"{P}/availability/import", import_availability)
    r.add_post(f"{P}/offers/{{offer}}/enrolments", enrol)
    r.add_post(f"{P}/groups", form_group)
    r.add_post(f"{P}/groups/{{group}}/members", add_member)
    r.add_post(f"{P}/series", book_series)
    r.add_get(f"{P}/series/{{series}}", get_series)
    r.add_post(f"{P}/occurrences/{{occurrence}}/{{action}}", occurrence_action)
    r.add_get(f"{P}/students/{{student}}/schedule", student_schedule)
    r.add_get(f"{P}/reports", report)
    r.add_get(f"{P}/me/upcoming", my_upcoming)
    r.add_post(f"{P}/parent-links", issue_parent_link)
    r.add_delete(f"{P}/parent-links/{{student}}", revoke_parent_links)
    r.add_post(f"{P}/feeds", create_feed)
    r.add_delete(f"{P}/feeds/{{kind}}/{{owner}}", revoke_feeds)
    r.add_get("/api/parent/{token}", parent_view)
    r.add_post("/api/parent/{token}/book", parent_book)
    r.add_get("/feeds/{token}.ics", feed)
    setup_leaving_routes(r)
