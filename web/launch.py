"""What a successful LTI launch becomes: a student in the widget, or staff in the dashboard.

* Learner -> student. Their pseudonym is the HMAC of issuer and LTI subject; their school,
  grade, student groups and roster id (how the broker finds their booked sessions, see
  ``broker.rooms``) come from the imported roster joined on the SIS number
  (``custom.student_id``, Schoology's ``$com.schoology.User.uniqueId``; the roster's
  OneRoster ``identifier``), else from the custom ``school_id`` / ``grade`` parameters,
  else the widget asks for the grade. A ``school_id`` the directory does not know is kept
  (routing lets the grade decide, and staff see the school in unmet demand).
* Instructor / TeachingAssistant -> teacher, scoped to their school (``custom.school_id``,
  or the roster school of ``custom.student_id`` is never used for teachers).
* Administrator -> staff: scoped to ``custom.school_id`` when given, else district-wide.

Teachers and staff are sent to ``/staff`` with the session cookie and, as students are, with
their token in the redirect's fragment (for an LMS iframe whose browser refuses the cookie).

Nothing is written to the database by a launch: the identity lives in a signed token.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from aiohttp import web

from broker import tokens
from broker.constants import SESSION_COOKIE_TTL_S
from broker.directory import student_by_sis
from broker.identity import LTI_SOURCE, Identity, Learner, Scope, staff_identity
from broker.identity import student_identity as identity_of_student
from broker.pseudonym import pseudonym
from routing.errors import UnknownGradeError
from routing.grades import parse_grade
from routing.oneroster import ID_MAX
from web.auth import set_session_cookie
from web.keys import ENGINE, SETTINGS
from web.lti import LaunchData
from web.pages import student_launch_response

log = logging.getLogger(__name__)


async def student_identity(request: web.Request, launch: LaunchData) -> Identity:
    settings = request.app[SETTINGS]
    sis_id = launch.custom.get("student_id")
    student = await student_by_sis(request.app[ENGINE], str(sis_id)) if sis_id else None
    roster_id: str | None = None
    if student is not None:
        school_id: str | None = student.school_id
        grade: int | None = student.grade
        groups = tuple(sorted(str(g) for g in student.groups))
        roster_id = student.sourced_id
    else:
        school_id, grade, groups = launch_school_id(launch.custom.get("school_id")), None, ()
        raw_grade = launch.custom.get("grade")
        if raw_grade:
            try:
                grade = parse_grade(raw_grade)
            except UnknownGradeError:
                log.info("launch gave an unknown grade; the widget will ask")
    learner = Learner(
        school_id=school_id,
        grade=grade,
        groups=groups,
        locale=launch.locale,
        given_name=launch.given_name or "",
        test=launch.is_test_user,
        issuer=launch.issuer,
        roster_id=roster_id,
    )
    subject = pseudonym(settings.pseudonym_secret, launch.issuer, launch.subject)
    return identity_of_student(subject, learner)


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


def launch_staff_identity(request: web.Request, launch: LaunchData) -> Identity:
    """A teacher is held to the launch's school; an administrator to it too when given,
    else the whole district."""
    settings = request.app[SETTINGS]
    subject = "lti-" + pseudonym(settings.pseudonym_secret, launch.issuer, launch.subject)[2:]
    school_id = launch_school_id(launch.custom.get("school_id"))
    scope = Scope("school", school_id) if school_id else None
    if launch.role != "teacher" and scope is None:
        scope = Scope.district()
    role = "teacher" if launch.role == "teacher" else "staff"
    return staff_identity(
        subject, scope, role=role, source=LTI_SOURCE, display_name=launch.given_name or ""
    )


async def on_launch(request: web.Request, launch: LaunchData) -> web.StreamResponse:
    if launch.role == "student":
        identity = await student_identity(request, launch)
        given = identity.learner is not None and identity.learner.school_id is not None
        log.info("student launch (school given: %s)", given)
        return student_launch_response(request, identity, launch.locale)
    identity = launch_staff_identity(request, launch)
    log.info("%s launch", identity.role)
    # The token travels in the fragment too (never sent to a server; the dashboard keeps it
    # in the tab and erases it): inside the LMS's iframe the browser may refuse our cookie.
    token = tokens.issue(request.app[SETTINGS].secret_key, identity, SESSION_COOKIE_TTL_S)
    response = web.HTTPSeeOther("/staff#token=" + quote(token, safe=""))
    set_session_cookie(response, request, identity)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
