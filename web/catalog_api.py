"""``GET /api/catalog``: the district's subject list and the help languages a student can use.

``languages`` is every language the district offers (the widget lists them all); with a
student's bearer token, ``languages_for_student`` lists only the languages some vendor can
serve for that student's school and grade (from routing), without one every on-demand
language — the widget says which are not available now, and a request in one is recorded as
unmet demand.
"""

from __future__ import annotations

from aiohttp import web

from broker.errors import Unauthenticated
from web.auth import bearer_identity
from web.keys import BROKER


async def catalog(request: web.Request) -> web.Response:
    broker = request.app[BROKER]
    cat = broker.catalog
    school = None
    grade = None
    identity = bearer_identity(request)
    if identity is not None:
        if identity.learner is None:
            raise Unauthenticated("a student token is required")
        school = broker.directory.get(identity.learner.school_id)
        grade = identity.learner.grade
    return web.json_response(
        {
            "subjects": [{"id": sid, "label": label} for sid, label in cat.subjects],
            "languages": cat.district_languages,
            "languages_for_student": cat.languages_for(school, grade),
        }
    )


def setup_catalog_api(app: web.Application) -> None:
    app.router.add_get("/api/catalog", catalog)
