"""The scheduler's pages: a school designee's scheduling page, the parent's link page and
the demo outbox page, with the two reads the designee's page needs besides
``/api/scheduler/*`` (:mod:`web.scheduler_api`).

=======  ================================================  ===================================
GET      ``/staff/scheduling``                             enrol, group, book, week view
GET      ``/staff/outbox``                                 reminders waiting and sent (demo)
GET      ``/parent/{token}``                               a parent's link: book a slot
GET      ``/api/scheduling/schools/{school}/roster?offer=``  roster, enrolments, tutors
GET      ``/api/scheduling/outbox``                        the newest outbox rows (district)
=======  ================================================  ===================================

The staff pages sign in like the dashboard (the session cookie's token or a demo token)
and call the JSON APIs with it; the parent page needs no account: the link's token is the
key, checked here before anything is shown (a tampered link is a 403 page, an expired,
used or withdrawn one a 410 page), and the page is shown in the link's language unless
``?lang=`` asks otherwise. Who may read what is decided in ``broker/``.
"""

from __future__ import annotations

from aiohttp import web

from broker import outbox_view, school_roster
from broker.errors import InvalidPayload, Unauthenticated
from broker.identity import Identity
from broker.scheduler import inputs, parents
from broker.scheduler.errors import ParentLinkExpired, ParentLinkInvalid
from web.negotiation import page_locale
from web.pages import signin_config, subjects_of
from web.problems import answered_as_outage, retry_later
from web.render import N_, render_page
from web.responses import no_store_json
from web.scheduler_api import IDENTIFY, SCHEDULER

_json = no_store_json


async def scheduling_page(request: web.Request) -> web.Response:
    config = signin_config(request, "/staff/scheduling")
    config.update(api="/api/scheduler", roster_url="/api/scheduling/schools",
                  today=request.app[SCHEDULER]().now().date().isoformat())
    return render_page("scheduling.html", page_locale(request), config=config)


async def outbox_page(request: web.Request) -> web.Response:
    config = signin_config(request, "/staff/outbox")
    config.update(outbox_url="/api/scheduling/outbox")
    return render_page("outbox.html", page_locale(request), config=config)


LINK_PROBLEMS = {
    ParentLinkInvalid: (403, N_("This link is not valid"),
                        N_("Please use the whole link from the district's message, or ask "
                           "your child's school for a new one.")),
    ParentLinkExpired: (410, N_("This link can no longer be used"),
                        N_("It has expired, been used already or been withdrawn. Ask your "
                           "child's school for a new link.")),
}


UNAVAILABLE = (N_("This page is briefly unavailable"),
               N_("Please try again in a minute. Your link still works."))


async def parent_page(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    try:
        view = await parents.open_link(request.app[SCHEDULER](), token)
    except (ParentLinkInvalid, ParentLinkExpired) as exc:
        status, title, text = LINK_PROBLEMS[type(exc)]
        return render_page("parent_error.html", page_locale(request), status=status,
                           title=title, text=text)
    except Exception as exc:  # the database unavailable: a page a parent can read, not JSON
        if not answered_as_outage(request, exc):
            raise
        title, text = UNAVAILABLE
        return retry_later(render_page("parent_error.html", page_locale(request), status=503,
                                       title=title, text=text))
    config = {"book_url": f"/api/parent/{token}/book", "view": view,
              "subjects": subjects_of(request.app)}
    return render_page("parent.html", page_locale(request, view["language"]), config=config,
                       child=view["child"])


async def _who(request: web.Request) -> Identity:
    identity = await request.app[IDENTIFY](request)
    if identity is None:
        raise Unauthenticated("please sign in")
    return identity


async def roster(request: web.Request) -> web.StreamResponse:
    actor = await _who(request)
    school, offer = request.match_info["school"], request.query.get("offer", "")
    for name, value in (("school", school), ("offer", offer)):
        if not inputs.ID.match(value):
            raise InvalidPayload(f"{name} must be an id", field=name)
    ctx = request.app[SCHEDULER]()
    return _json(await school_roster.school_roster(
        ctx.engine, actor, school, offer, f"GET {request.path}"[:200], ctx.now()))


async def outbox(request: web.Request) -> web.StreamResponse:
    actor = await _who(request)
    ctx = request.app[SCHEDULER]()
    return _json({"messages": await outbox_view.latest(
        ctx.engine, actor, f"GET {request.path}", ctx.now())})


def setup_scheduling_pages(app: web.Application) -> None:
    """Mount the pages and reads (after :func:`web.scheduler_api.setup_scheduler_api`)."""
    app.router.add_get("/staff/scheduling", scheduling_page)
    app.router.add_get("/staff/outbox", outbox_page)
    app.router.add_get("/parent/{token}", parent_page)
    app.router.add_get("/api/scheduling/schools/{school}/roster", roster)
    app.router.add_get("/api/scheduling/outbox", outbox)
