"""``GET /i18n/{locale}.json``: a locale's translations for the pages' scripts.

The scripts translate with ``t("English text")`` (``web/static/js/i18n.js``); Babel extracts
those calls into the same ``messages.pot`` as the templates (``i18n/babel.cfg``). This
endpoint serves the messages of the locale's ``.po`` catalog that occur in JavaScript
files, as ``{"locale": "es", "messages": {"English text": "Texto en español"}}``. Untranslated
and fuzzy messages are left out, so ``t()`` falls back to the English source. An unknown
locale answers the best supported one (``es-MX`` -> ``es``; anything else -> ``en``, with no
messages), never a 404, so a page can always start.
"""

from __future__ import annotations

import gzip
import json
import re
from functools import lru_cache
from typing import Any

from aiohttp import web

from i18n import DEFAULT_LOCALE, DOMAIN, LOCALES_DIR, html_lang, negotiate, pseudo

_TAG = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8}){0,3}$")


def _po_mtime(locale: str) -> float:
    po = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    return po.stat().st_mtime if po.is_file() else 0.0


# The catalog's subject labels and vendor names (web/catalog_labels.py): the scripts show them.
LABELS_MODULE = "catalog_labels.py"


@lru_cache(maxsize=32)
def _catalog(locale: str, mtime: float) -> dict[str, str]:
    """msgid -> msgstr of the JavaScript messages of ``locale`` (cached per file version)."""
    if locale == DEFAULT_LOCALE or not mtime:
        return {}
    from babel.messages.pofile import read_po

    po = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    out: dict[str, str] = {}
    for message in catalog:
        if not message.id or message.fuzzy or not isinstance(message.id, str):
            continue
        if not isinstance(message.string, str) or not message.string:
            continue
        if message.locations and not any(
            path.endswith((".js", LABELS_MODULE)) for path, _line in message.locations
        ):
            continue
        out[message.id] = message.string
    return out


def js_catalog(locale: str | None) -> dict[str, Any]:
    """The JSON body for ``locale``: ``{"locale", "messages"}``."""
    name = negotiate(locale)
    if name == pseudo.PSEUDO_LOCALE:
        return {"locale": html_lang(name), "messages": pseudo.messages()}
    return {"locale": html_lang(name), "messages": _catalog(name, _po_mtime(name))}


@lru_cache(maxsize=64)
def _encoded(name: str, mtime: float) -> tuple[bytes, bytes]:
    """A locale's catalog body as JSON, plain and gzipped, made once per catalog version:
    serving it then costs what serving English's empty one does."""
    body = json.dumps(js_catalog(name), ensure_ascii=False, separators=(",", ":")).encode()
    return body, gzip.compress(body, compresslevel=9, mtime=0)


async def catalog_json(request: web.Request) -> web.Response:
    raw = request.match_info["locale"]
    name = negotiate(raw if _TAG.match(raw) else None)
    plain, zipped = _encoded(name, _po_mtime(name) if name != pseudo.PSEUDO_LOCALE else 0.0)
    headers = {
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in request.headers.get("Accept-Encoding", "").lower():
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=zipped, content_type="application/json", headers=headers)
    return web.Response(body=plain, content_type="application/json", headers=headers)


def setup_i18n_js(app: web.Application) -> None:
    app.router.add_get("/i18n/{locale}.json", catalog_json)
