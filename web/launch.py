"""What a successful LTI launch becomes: a student in the widget, or staff in the dashboard.

* Learner -> student. Their pseudonym is the HMAC of issuer and LTI subject; their school,
  grade and student groups come from the imported roster joined on the SIS number
  (``custom.student_id``, Schoology's ``$com.schoology.User.uniqueId``; the roster's
  OneRoster ``identifier``), else from the custom ``school_id`` / ``grade`` parameters,
  else the widget asks for the grade. A ``school_id`` the directory does not know is kept
  (routing lets the grade decide, and staff see the school in unmet demand).
* Instructor / TeachingAssistant -> teacher, scoped to their school (``custom.school_id``,
  or the roster school of ``custom.student_id`` is never used for teachers).
* Administrator -> staff: scoped to ``custom.school_id`` when given, else district-wide.

Nothing is written to the database by a launch: the identity lives in a signed token.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from broker import tokens
from broker.db.engine import session_factory
from broker.directory import find_student
from broker.pseudonym import pseudonym
from routing.errors import UnknownGradeError
from routing.grades import parse_grade
from routing.oneroster import ID_MAX
from web.auth import set_session_cookie
from web.lti import LaunchData
from web.pages import student_launch_response

log = logging.getLogger(__name__)


async def student_identity(request: web.Request, launch: LaunchData) -> tokens.Identity:
    from web.app import BROKER, SETTINGS

    settings = request.app[SETTINGS]
    broker = request.app[BROKER]
    claims: dict[str, Any] = {
        "school_id": None,
        "grade": None,
        "groups": [],
        "locale": launch.locale,
        "given_name": launch.given_name or "",
        "test": launch.is_test_user,
        "issuer": launch.issuer,
    }
    sis_id = launch.custom.get("student_id")
    student = None
    if sis_id:
        async with session_factory(broker.store.engine)() as session:
            student = await find_student(session, str(sis_id)[:64])
    if student is not None:
        claims.update(
            school_id=student.school_id,
            grade=student.grade,
            groups=sorted(str(g) for g in student.groups),
        )
    else:
        claims["school_id"] = launch_school_id(launch.custom.get("school_id"))
        raw_grade = launch.custom.get("grade")
        if raw_grade:
            try:
                claims["grade"] = parse_grade(raw_grade)
            except UnknownGradeError:
                log.info("launch gave an unknown grade; the widget will ask")
    subject = pseudonym(settings.pseudonym_secret, launch.issuer, launch.subject)
    return tokens.Identity("student", subject, claims)


def launch_school_id(value: object) -> str | None:
    """The launch's ``school_id`` as a request records it, in the directory or not: an
    unknown school is itself a finding for staff, and routing lets the grade decide. None
    when absent, longer than a school id can be, or not printable text."""
    if not isinstance(value, str) or not (text := value.strip()):
        return None
    if len(text) > ID_MAX or not text.isprintable():
        log.info("launch gave an unusable school_id (%d characters); ignored", len(text))
        return None
    return text


def staff_identity(request: web.Request, launch: LaunchData) -> tokens.Identity:
    from web.app import SETTINGS

    settings = request.app[SETTINGS]
    subject = "lti-" + pseudonym(settings.pseudonym_secret, launch.issuer, launch.subject)[2:]
    school_id = launch.custom.get("school_id")
    claims: dict[str, Any] = {"source": "lti", "display_name": launch.given_name or ""}
    if launch.role == "teacher":
        claims.update(scope="school", scope_id=school_id or None, school_id=school_id or None)
        return tokens.Identity("teacher", subject, claims)
    if school_id:
        claims.update(scope="school", scope_id=str(school_id))
    else:
        claims.update(scope="district", scope_id=None)
    return tokens.Identity("staff", subject, claims)


async def on_launch(request: web.Request, launch: LaunchData) -> web.StreamResponse:
    if launch.role == "student":
        identity = await student_identity(request, launch)
        log.info("student launch (school given: %s)", bool(identity.claims["school_id"]))
        return student_launch_response(request, identity, launch.locale)
    identity = staff_identity(request, launch)
    log.info("%s launch", identity.role)
    response = web.HTTPSeeOther("/staff")
    set_session_cookie(response, request, identity)
    return response
