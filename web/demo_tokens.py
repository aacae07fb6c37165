"""Demo-mode sign-in (``HH_DEMO=1`` only): tokens for demo students, tutors and staff.

Never mounted outside demo mode. Students get the same pseudonym and roster facts an LTI
launch would give them; tutors and staff get a demo identity for the chosen vendor/scope.
"""

from __future__ import annotations

import re

from aiohttp import web

from broker import tokens
from broker.db.engine import session_factory
from broker.directory import find_student
from broker.errors import InvalidPayload, NotFound
from broker.pseudonym import pseudonym
from web import payloads as p

DEMO_ISSUER = "https://demo.homework-help.invalid"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


async def demo_token(request: web.Request) -> web.Response:
    from web.app import BROKER, SETTINGS

    settings = request.app[SETTINGS]
    try:
        data = p.obj(await request.json())
    except ValueError as exc:
        raise InvalidPayload("body must be JSON") from exc
    role = p.text(data, "role", max_len=16)
    if role == "student":
        sis_id = p.text(data, "sis_id", max_len=64)
        broker = request.app[BROKER]
        async with session_factory(broker.store.engine)() as session:
            student = await find_student(session, sis_id)
        if student is None:
            raise NotFound(f"no demo student {sis_id!r}")
        identity = tokens.Identity(
            "student",
            pseudonym(settings.pseudonym_secret, DEMO_ISSUER, sis_id),
            {
                "school_id": student.school_id,
                "grade": student.grade,
                "groups": sorted(str(g) for g in student.groups),
                "given_name": student.given_name,
                "test": True,
            },
        )
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
        identity = tokens.Identity(
            "tutor",
            tutor_id,
            {"vendor": vendor, "languages": languages, "display_name": name},
        )
    elif role == "staff":
        identity = tokens.Identity("staff", "demo-staff", {"scope": "district"})
    else:
        raise InvalidPayload("role must be student, tutor or staff")
    return web.json_response({"token": tokens.issue(settings.secret_key, identity)})


def setup_demo_tokens(app: web.Application) -> None:
    app.router.add_post("/demo/token", demo_token)
