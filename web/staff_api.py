"""Staff endpoints that read students' personal data, each read written to the audit log.

Routes added by :func:`setup_staff_api`:

* ``GET /api/staff/students/{pseudonym}/sessions``: a student's help requests and session
  metadata (never message text). **District** staff: any student. **School** staff and
  teachers: only the requests and sessions that name their school; a student with none
  there answers 404, exactly like an unknown pseudonym. **Vendor managers**: always 403
  (they get their vendor's figures, never a student's records). Tutors and students: 403.
* ``GET /api/staff/audit.csv[?since=ISO&until=ISO]``: the audit log as CSV, for
  district-scope staff only; the export is itself audited.

Every answered read is recorded (``student.sessions.read``) with the caller, the pseudonym
and the endpoint before the data is sent; refusals of a named student are recorded too
(``student.sessions.refused``). Responses carry ``Cache-Control: no-store``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from broker import audit
from broker.db.models import metadata
from broker.errors import InvalidPayload, NotAllowed, NotFound
from broker.tokens import Identity
from web.auth import ACCOUNTS, IDENTITY, authorise, ensure_auth_state, require, scope_of

PSEUDONYM = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
requests_t = metadata.tables["help_requests"]
sessions_t = metadata.tables["tutoring_sessions"]

REQUEST_FIELDS = (
    "id", "school_id", "school_kind", "grade", "language", "subject", "vendor", "overflow",
    "unmet_reason", "status", "requested_at", "queued_at", "accepted_at", "closed_at",
    "close_reason",
)
SESSION_FIELDS = (
    "id", "request_id", "vendor", "tutor_id", "language", "subject", "school_id",
    "school_kind", "grade", "queued_at", "accepted_at", "ended_at", "end_reason", "outcome",
    "tutored_subject", "resolved", "messages_student", "messages_tutor", "rating_helped",
    "rating_stars",
)


def _view(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for f in fields:
        value = row[f]
        out[f] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def _engine(request: web.Request) -> Any:
    return request.app[ACCOUNTS].engine


async def student_sessions(request: web.Request) -> web.StreamResponse:
    pseudonym = request.match_info["pseudonym"]
    if not PSEUDONYM.match(pseudonym):
        raise InvalidPayload("not a pseudonym", field="pseudonym")
    endpoint = f"GET /api/staff/students/{pseudonym}/sessions"
    identity = await authorise(request, ("staff", "teacher", "tutor", "student"))
    engine = _engine(request)
    scope, scope_id = scope_of(identity)
    if identity.role not in ("staff", "teacher") or scope not in ("district", "school"):
        await audit.record(engine, identity, "student.sessions.refused", pseudonym, endpoint,
                           f"role={identity.role} scope={scope}")
        raise NotAllowed("your role does not give access to students' records")
    if scope == "school" and not scope_id:
        raise NotAllowed("your account names no school")
    req_query = sa.select(requests_t).where(requests_t.c.student == pseudonym)
    ses_query = sa.select(sessions_t).where(sessions_t.c.student == pseudonym)
    if scope == "school":
        req_query = req_query.where(requests_t.c.school_id == scope_id)
        ses_query = ses_query.where(sessions_t.c.school_id == scope_id)
    async with engine.connect() as conn:
        reqs = (await conn.execute(req_query.order_by(requests_t.c.requested_at))).mappings().all()
        sess = (await conn.execute(ses_query.order_by(sessions_t.c.accepted_at))).mappings().all()
    if not reqs and not sess:
        if scope == "school":
            await audit.record(engine, identity, "student.sessions.refused", pseudonym,
                               endpoint, f"not in school {scope_id}")
        raise NotFound("no such student" + (" in your school" if scope == "school" else ""))
    await audit.record(
        engine, identity, "student.sessions.read", pseudonym, endpoint,
        f"scope={scope}:{scope_id or '*'} requests={len(reqs)} sessions={len(sess)}",
    )
    response = web.json_response({
        "student": pseudonym,
        "requests": [_view(r, REQUEST_FIELDS) for r in reqs],
        "sessions": [_view(s, SESSION_FIELDS) for s in sess],
    })
    response.headers["Cache-Control"] = "no-store"
    return response


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
    identity: Identity = request[IDENTITY]
    since, until = _when(request, "since"), _when(request, "until")
    engine = _engine(request)
    rows = await audit.entries(engine, since=since, until=until)
    await audit.record(engine, identity, "audit.export", None, "GET /api/staff/audit.csv",
                       f"rows={len(rows)}")
    response = web.Response(
        text=audit.to_csv(rows), content_type="text/csv", charset="utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="audit-log.csv"',
            "Cache-Control": "no-store",
        },
    )
    return response


def setup_staff_api(app: web.Application) -> None:
    """Mount the staff personal-data endpoints. Call after ``init_app``."""
    ensure_auth_state(app)
    app.router.add_get("/api/staff/students/{pseudonym}/sessions", student_sessions)
    app.router.add_get("/api/staff/audit.csv", audit_csv)
