"""What the staff dashboard's filters may offer a viewer: only what their scope allows.

:func:`filter_options` answers, for a :class:`~broker.identity.Scope`, the schools,
regions, vendors, languages and grades a filter may name, and which of them are fixed by
the scope. The statistics themselves are held to the scope by
:meth:`~broker.identity.Scope.narrow` whatever a page sends; this only keeps a page from
offering a choice that would be refused (a vendor manager offered another vendor, a
teacher offered another school).

Guarantees: a ``school`` scope is offered its own school only (with its name and its
grades), no region and every vendor and language; a ``vendor`` scope is offered its own
vendor only and that vendor's languages and grades, every school and region (its requests
come from any school); ``district`` is offered everything. School names come from the
directory (``schools``); a scope's school the directory does not know is offered by its
id. Vendors and languages come from the catalog (on-demand vendors only: the live
requests these figures count).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.db.models import schools
from broker.identity import Scope
from routing.catalog import Catalog

#: Every grade a filter may name (PK = -2, TK = -1, K = 0, then 1-12), as ``parse_grade``.
ALL_GRADES: tuple[int, ...] = tuple(range(-2, 13))


async def filter_options(
    engine: AsyncEngine, scope: Scope, catalog: Catalog | None
) -> dict[str, Any]:
    """``{"scope": {"kind", "id", "name"}, "fixed": [...], "schools": [{"id", "name",
    "region"}], "regions": [...], "vendors": [{"id", "name"}], "languages": [...],
    "grades": [...]}``; ``fixed`` names the filters the scope sets (``school`` or
    ``vendor``), which a page shows but does not let change."""
    stmt = sa.select(
        schools.c.id, schools.c.name, schools.c.region, schools.c.low_grade, schools.c.high_grade
    ).order_by(schools.c.name, schools.c.id)
    if scope.school is not None:
        stmt = stmt.where(schools.c.id == scope.school)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    found = [
        {"id": sid, "name": name, "region": region, "low": int(low), "high": int(high)}
        for sid, name, region, low, high in rows
    ]
    on_demand = list(catalog.on_demand_vendors) if catalog is not None else []
    vendors = [v for v in on_demand if scope.vendor is None or v.id == scope.vendor]
    languages = list(
        dict.fromkeys(lang for v in vendors for lang in v.languages)
        if scope.vendor is not None
        else (catalog.district_languages if catalog is not None else [])
    )
    grades = list(ALL_GRADES)
    name: str | None = None
    if scope.school is not None:
        if found:
            grades = [g for g in grades if found[0]["low"] <= g <= found[0]["high"]]
            name = found[0]["name"]
        else:
            found = [{"id": scope.school, "name": None, "region": None}]
    elif scope.vendor is not None and vendors:
        grades = [g for g in grades if any(v.serves_grade(g) for v in vendors)]
        name = vendors[0].name
    regions = (
        [] if scope.school is not None else sorted({str(s["region"]) for s in found if s["region"]})
    )
    return {
        "scope": {"kind": scope.kind, "id": scope.id, "name": name},
        "fixed": [kind for kind in ("school", "vendor") if scope.kind == kind],
        "schools": [{"id": s["id"], "name": s["name"], "region": s["region"]} for s in found],
        "regions": regions,
        "vendors": [{"id": v.id, "name": v.name} for v in vendors]
        or ([{"id": scope.vendor, "name": None}] if scope.vendor is not None else []),
        "languages": languages,
        "grades": grades,
    }
