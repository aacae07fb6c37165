"""The pages over plain HTTP (no browser): headers, token hand-over, translations, assets."""

from __future__ import annotations

import gzip
import json
import re
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp import web

from broker import tokens
from tests.broker.harness import SECRET
from tests.browser.conftest import Broker
from web.pages import STUDENT_COOKIE, student_launch_response

CONFIG = re.compile(r'<script type="application/json" id="hh-config">(.*?)</script>', re.S)


def config_of(html: str) -> dict[str, Any]:
    found = CONFIG.search(html)
    assert found, "no configuration block"
    return json.loads(found.group(1))


PAGES = [
    ("/widget", 200), ("/tutor", 200), ("/staff", 200), ("/login", 200), ("/demo/lms", 200),
    ("/lti/login", 400),  # the LTI error page
    ("/staff/scheduling", 200), ("/staff/outbox", 200),
    ("/parent/not-a-link", 403),  # the parent link's error page
]


@pytest.mark.parametrize(("path", "status"), PAGES)
async def test_pages_have_a_strict_csp_and_no_inline_script_or_style(
    live_broker: Broker, path: str, status: int
) -> None:
    async with aiohttp.ClientSession() as http, http.get(live_broker.url + path) as resp:
        assert resp.status == status
        html = await resp.text()
        policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "unsafe" not in policy
    assert resp.headers["Cache-Control"] == "no-store"
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    for attrs, body in scripts:
        assert "src=" in attrs or 'type="application/json"' in attrs, f"inline script: {body!r}"
    assert "<style" not in html and not re.search(r"\sstyle=", html), "inline style"
    assert 'id="hh-config"' in html and '<link rel="stylesheet" href="/static/css/app.css">' in html
    assert not re.search(r"https?://(?!127\.0\.0\.1)", html.replace("http://www.w3.org", ""))


async def test_widget_renders_the_token_of_the_student_cookie(live_broker: Broker) -> None:
    identity = tokens.Identity(
        "student",
        "stu-1",
        {"school_id": "hs", "grade": 9, "given_name": "</script><b>Zoë", "locale": "es"},
    )
    token = tokens.issue(SECRET, identity)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        http.cookie_jar.update_cookies({STUDENT_COOKIE: token})
        async with http.get(live_broker.url + "/widget") as resp:
            html = await resp.text()
    assert "</script><b>" not in html  # the name is JSON-escaped inside the config block
    config = config_of(html)
    assert config["token"] == token
    assert config["given_name"] == "</script><b>Zoë"
    assert config["locale"] == "es"  # from the launch locale
    assert '<html lang="es" dir="ltr">' in html and "Pedir un tutor" in html


async def test_widget_ignores_a_forged_or_foreign_cookie(live_broker: Broker) -> None:
    staff = tokens.issue(SECRET, tokens.Identity("staff", "s", {"scope": "district"}))
    for value in ("forged.token", staff):
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            http.cookie_jar.update_cookies({STUDENT_COOKIE: value})
            async with http.get(live_broker.url + "/widget?lang=en") as resp:
                config = config_of(await resp.text())
        assert config["token"] is None and config["given_name"] == ""


async def test_student_launch_response_sets_cookie_and_fragment(live_broker: Broker) -> None:
    from aiohttp.test_utils import make_mocked_request

    assert live_broker.test_server is not None
    app: web.Application = live_broker.test_server.app
    request = make_mocked_request("POST", "/lti/launch", app=app)
    identity = tokens.Identity("student", "stu-9", {"school_id": "elem", "grade": 2})
    response = student_launch_response(request, identity, "es-MX")
    location = response.headers["Location"]
    # the launch's locale is a hint (below the person's own choice), not a choice
    assert location.startswith("/widget?launch_lang=es#token=")
    from http.cookies import SimpleCookie

    header = response.headers["Set-Cookie"]
    assert "Path=/widget" in header and "HttpOnly" in header and "SameSite=Lax" in header
    cookie = SimpleCookie(header.split(";", 1)[0])[STUDENT_COOKIE]
    assert tokens.verify(SECRET, cookie.value).subject == "stu-9"
    assert tokens.verify(SECRET, unquote(location.split("#token=", 1)[1])).subject == "stu-9"


async def test_js_catalog_serves_script_messages(live_broker: Broker) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(live_broker.url + "/i18n/es-MX.json") as resp:
            body = await resp.json()
        async with http.get(live_broker.url + "/i18n/xx.json") as resp:
            fallback = await resp.json()
    assert body["locale"] == "es"
    assert body["messages"]["You are next in line."] == "Eres el siguiente en la fila."
    assert "Ask for a tutor" not in body["messages"]  # template-only strings stay server-side
    assert fallback == {"locale": "en", "messages": {}}


async def test_vendored_files_are_served(live_broker: Broker) -> None:
    async with aiohttp.ClientSession() as http:
        for path in (
            "/static/vendor/socket.io-client-4.8.3/socket.io.min.js",
            "/static/vendor/uplot-1.6.32/uPlot.iife.min.js",
            "/static/vendor/axe-core-4.11.1/axe.min.js",
            "/static/js/widget.js",
        ):
            async with http.get(live_broker.url + path) as resp:
                assert resp.status == 200, path
                assert "javascript" in resp.headers["Content-Type"], path


def test_message_catalog_is_up_to_date() -> None:
    from i18n.extract import check

    assert check() == 0, "run: python -m i18n.extract extract && python -m i18n.extract update"


async def test_scripts_and_catalogs_are_gzipped_when_accepted(live_broker: Broker) -> None:
    """web/compression.py: gzip for browsers that accept it, plain for the others."""
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for path in ("/static/js/widget.js", "/static/css/app.css", "/i18n/es.json"):
            async with http.get(live_broker.url + path,
                                headers={"Accept-Encoding": "identity"}) as plain:
                raw = await plain.read()
                assert plain.status == 200 and "Content-Encoding" not in plain.headers
                kind = plain.content_type
            async with http.get(live_broker.url + path,
                                headers={"Accept-Encoding": "gzip, br"}) as zipped:
                body = await zipped.read()
                assert zipped.headers["Content-Encoding"] == "gzip", path
                assert "Accept-Encoding" in zipped.headers["Vary"]
                assert zipped.content_type == kind
            assert gzip.decompress(body) == raw and len(body) < len(raw) / 2
        async with http.get(live_broker.url + "/static/js/nope.js",
                            headers={"Accept-Encoding": "gzip"}) as missing:
            assert missing.status == 404


async def test_a_parent_link_during_a_database_outage_is_a_translated_503_page(
    live_broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent opening their link while the database is down reads a page in their
    language that says to try again in a minute (503, ``Retry-After``), not a JSON body."""
    from tests.services import database_refused
    from web import scheduling_pages

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise database_refused()

    monkeypatch.setattr(scheduling_pages.parents, "open_link", refused)
    url = live_broker.url + "/parent/any-link"
    async with aiohttp.ClientSession() as http, http.get(
        url, headers={"Accept-Language": "es-MX,es;q=0.9"}
    ) as resp:
        html = await resp.text()
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
        assert resp.headers["Content-Type"].startswith("text/html")
    assert '<html lang="es" dir="ltr">' in html
    assert "Vuelva a intentarlo en un minuto. Su enlace sigue funcionando." in html
