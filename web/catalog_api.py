"""``GET /api/catalog``: the district's subject list and the help languages a student can use.

With a student's bearer token, ``languages_for_student`` lists only the languages some vendor can
serve for that student's school and grade (from routing); without one, every on-demand
language.
"""

from __future__ import annotations

from aiohttp import web

from broker.errors import Unauthenticated
from routing.errors import UnknownGradeError
from routing.grades import parse_grade
from web.auth import bearer_identity


async def catalog(request: web.Request) -> web.Response:
    from web.app import BROKER

    broker = request.app[BROKER]
    cat = broker.catalog
    school = None
    grade = None
    identity = bearer_identity(request)
    if identity is not None:
        if identity.role != "student":
            raise Unauthenticated("a student token is required")
        school = broker.directory.get(identity.claims.get("school_id"))
        try:
            raw = identity.claims.get("grade")
            grade = parse_grade(raw) if raw is not None else None
        except UnknownGradeError:
            grade = None
    return web.json_response(
        {
            "subjects": [{"id": sid, "label": label} for sid, label in cat.subjects],
            "languages_for_student": cat.languages_for(school, grade),
        }
    )


def setup_catalog_api(app: web.Application) -> None:
    app.router.add_get("/api/catalog", catalog)
