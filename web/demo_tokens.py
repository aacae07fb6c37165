"""Demo-mode sign-in (``HH_DEMO=1`` only): tokens for demo students, tutors and staff.

Never mounted outside demo mode. Students get the same pseudonym and roster facts an LTI
launch would give them; tutors and staff get a demo identity for the chosen vendor/scope.
"""

from __future__ import annotations

import re

from aiohttp import web

from broker import tokens
from broker.directory import student_by_sis
from broker.errors import InvalidPayload, NotFound
from broker.identity import (
    Identity,
    Learner,
    Scope,
    staff_identity,
    student_identity,
    tutor_identity,
)
from broker.pseudonym import pseudonym
from web import jsonlib
from web import payloads as p
from web.keys import ENGINE, SETTINGS

DEMO_ISSUER = "https://demo.homework-help.invalid"
DEMO_SOURCE = "demo"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


async def demo_token(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    data = p.obj(await jsonlib.request_json(request))
    role = p.text(data, "role", max_len=16)
    identity: Identity
    if role == "student":
        sis_id = p.text(data, "sis_id", max_len=64)
        student = await student_by_sis(request.app[ENGINE], sis_id)
        if student is None:
            raise NotFound(f"no demo student {sis_id!r}")
        learner = Learner(
            school_id=student.school_id,
            grade=student.grade,
            groups=tuple(sorted(str(g) for g in student.groups)),
            given_name=student.given_name,
            test=True,
            roster_id=student.sourced_id,
        )
        subject = pseudonym(settings.pseudonym_secret, DEMO_ISSUER, sis_id)
        identity = student_identity(subject, learner)
    elif role == "tutor":
        vendor = p.text(data, "vendor", max_len=32)
        name = p.text(data, "display_name", required=False, max_len=60, default="Demo tutor")
        tutor_id = p.text(data, "id", required=False, max_len=64, default=f"demo-{vendor}")
        languages = data.get("languages", ["en"])
        if (
            not isinstance(languages, list)
            or not all(isinstance(x, str) and _SAFE.match(x) for x in languages)
            or not _SAFE.match(tutor_id)
        ):
            raise InvalidPayload("languages must be a list of language codes")
        identity = tutor_identity(
            tutor_id, vendor, languages, source=DEMO_SOURCE, display_name=name
        )
    elif role == "staff":
        identity = staff_identity("demo-staff", Scope.district(), source=DEMO_SOURCE)
    else:
        raise InvalidPayload("role must be student, tutor or staff")
    return web.json_response({"token": tokens.issue(settings.secret_key, identity)})


def setup_demo_tokens(app: web.Application) -> None:
    app.router.add_post("/demo/token", demo_token)
