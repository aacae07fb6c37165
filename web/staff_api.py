"""Staff endpoints that read students' personal data (each read is audited by the broker).

Routes added by :func:`setup_staff_api`:

* ``GET /api/staff/students/{pseudonym}/sessions``: a student's help requests and session
  metadata (never message text), held to the reader's scope by
  :func:`broker.student_data.read_student_records`: **district** staff, any student;
  **school** staff and teachers, only what names their school (otherwise 404, exactly like
  an unknown pseudonym); **vendor managers**, tutors and students, 403. Every answered
  read, and every refusal naming a student, is in the audit log before anything is sent.
* ``GET /api/staff/audit.csv[?since=ISO&until=ISO]``: the audit log as CSV, for
  district-scope staff only; the export is itself audited.

Responses carry ``Cache-Control: no-store``. This module parses, calls and renders; who may
see what is decided in ``broker/``.
"""

from __future__ import annotations

import datetime as dt
import re

from aiohttp import web

from broker import audit
from broker.errors import InvalidPayload
from broker.student_data import read_student_records
from web.auth import authorise, require
from web.keys import ENGINE, IDENTITY

PSEUDONYM = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


async def student_sessions(request: web.Request) -> web.StreamResponse:
    pseudonym = request.match_info["pseudonym"]
    if not PSEUDONYM.match(pseudonym):
        raise InvalidPayload("not a pseudonym", field="pseudonym")
    reader = await authorise(request, ("staff", "teacher", "tutor", "student"))
    endpoint = f"GET /api/staff/students/{pseudonym}/sessions"
    records = await read_student_records(request.app[ENGINE], reader, pseudonym, endpoint)
    return web.json_response(records, headers={"Cache-Control": "no-store"})


def _when(request: web.Request, name: str) -> dt.datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise InvalidPayload(f"{name} must be an ISO 8601 date or time", field=name) from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@require("staff", scopes={"district"})
async def audit_csv(request: web.Request) -> web.StreamResponse:
    text = await audit.export_csv(
        request.app[ENGINE], request[IDENTITY], "GET /api/staff/audit.csv",
        since=_when(request, "since"), until=_when(request, "until"),
    )
    return web.Response(
        text=text, content_type="text/csv", charset="utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="audit-log.csv"',
            "Cache-Control": "no-store",
        },
    )


def setup_staff_api(app: web.Application) -> None:
    """Mount the staff personal-data endpoints (they need ``setup_auth``'s sign-in)."""
    app.router.add_get("/api/staff/students/{pseudonym}/sessions", student_sessions)
    app.router.add_get("/api/staff/audit.csv", audit_csv)
