"""The staff safety review (issue 12): flags (held and masked messages, reports, distress)
and alerts (distress, nobody on shift), and the actions on them.

Routes added by :func:`setup_safety_api` (district staff, or a school's designee held to
their school; vendor managers, tutors and students are refused):

* ``GET /api/safety/flags[?status=open|dismissed|session_ended|tutor_suspended|all]``: the
  review queue, newest first, without anyone's words;
* ``GET /api/safety/flags/{id}``: one flag with the held words and the session's kept
  messages, a picture message with its ``image`` (the read is audit-logged before it is
  answered);
* ``GET /api/safety/flags/{id}/images/{image_id}``: a picture of the flagged session (one
  its messages announced, or the flag's own), audit-logged in the read's transaction and
  sent with the participants' picture headers (``no-store``, ``nosniff``, sandbox);
* ``POST /api/safety/flags/{id}/action`` ``{"action": "dismiss"|"end_session"|
  "suspend_tutor"}``: decide it (audited; ``409`` if already decided);
* ``GET /api/safety/alerts[?all=1]``: open alerts (or the latest 100);
* ``POST /api/safety/alerts/{id}/acknowledge``: staff have seen it (audited).

Callers authenticate like the other staff APIs (a bearer socket token or the session
cookie). Responses carry ``Cache-Control: no-store``. This module parses, calls and
renders; who may see what is decided in ``broker/``.
"""

from __future__ import annotations

import re

from aiohttp import web

from broker.errors import InvalidPayload
from web import jsonlib
from web.auth import staff_caller
from web.keys import BROKER
from web.media_api import IMAGE_HEADERS
from web.responses import no_store_json

ID = re.compile(r"^[0-9a-f]{32}$")


def _id(request: web.Request, key: str = "id") -> str:
    value = request.match_info[key]
    if not ID.match(value):
        raise InvalidPayload("not an id", field=key)
    return value


_json = no_store_json


async def list_flags(request: web.Request) -> web.StreamResponse:
    staff = await staff_caller(request)
    status = request.query.get("status", "open")
    flags = await request.app[BROKER].safety.flags(staff, None if status == "all" else status)
    return _json({"flags": flags})


async def get_flag(request: web.Request) -> web.StreamResponse:
    staff = await staff_caller(request)
    flag_id = _id(request)
    view = await request.app[BROKER].desk.review(staff, flag_id, f"GET /api/safety/flags/{flag_id}")
    return _json(view)


async def get_flag_image(request: web.Request) -> web.StreamResponse:
    staff = await staff_caller(request)
    flag_id, image_id = _id(request), _id(request, "image_id")
    data, media_type = await request.app[BROKER].desk.flag_image(
        staff, flag_id, image_id, f"GET /api/safety/flags/{flag_id}/images/{image_id}"
    )
    return web.Response(body=data, content_type=media_type, headers=IMAGE_HEADERS)


async def act_on_flag(request: web.Request) -> web.StreamResponse:
    staff = await staff_caller(request)
    flag_id = _id(request)
    body = await jsonlib.request_json(request)
    action = body.get("action") if isinstance(body, dict) else None
    if not isinstance(action, str):
        raise InvalidPayload("action is required", field="action")
    result = await request.app[BROKER].desk.act(
        staff, flag_id, action, f"POST /api/safety/flags/{flag_id}/action"
    )
    return _json(result)


async def list_alerts(request: web.Request) -> web.StreamResponse:
    staff = await staff_caller(request)
    alerts = await request.app[BROKER].safety.alerts(
        staff, open_only=request.query.get("all") != "1"
    )
    return _json({"alerts": alerts})


async def acknowledge_alert(request: web.Request) -> web.StreamResponse:
    staff = await staff_caller(request)
    alert_id = _id(request)
    broker = request.app[BROKER]
    await broker.safety.acknowledge(
        staff, alert_id, f"POST /api/safety/alerts/{alert_id}/acknowledge", broker.clock()
    )
    return _json({"alert_id": alert_id, "acknowledged": True})


def setup_safety_api(app: web.Application) -> None:
    app.router.add_get("/api/safety/flags", list_flags)
    app.router.add_get("/api/safety/flags/{id}", get_flag)
    app.router.add_get("/api/safety/flags/{id}/images/{image_id}", get_flag_image)
    app.router.add_post("/api/safety/flags/{id}/action", act_on_flag)
    app.router.add_get("/api/safety/alerts", list_alerts)
    app.router.add_post("/api/safety/alerts/{id}/acknowledge", acknowledge_alert)
