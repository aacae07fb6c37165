"""Sign-in over HTTP: form and JSON, cookie flags, rate limit, disabled accounts, tokens."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from broker import sign_in as sign_in_module
from broker import tokens
from broker.accounts import Accounts
from broker.constants import (
    LOGIN_IP_FAILURES,
    LOGIN_USER_FAILURES,
    LOGIN_WINDOW_S,
    SOCKET_TOKEN_TTL_S,
)
from broker.outages import OutageLog
from broker.sign_in import GENERIC_FAILURE
from i18n import negotiate
from tests.accounts.conftest import PASSWORD, AuthServer, make_people
from tests.broker.harness import SECRET
from tests.services import database_refused
from web import auth, problems
from web.keys import SIGN_IN


async def test_form_sign_in_sets_a_signed_httponly_lax_cookie(
    server: AuthServer, accounts: Accounts
) -> None:
    people = await make_people(accounts)
    async with server.http() as http:
        page = await http.get("/login?next=/tutor")
        html = await page.text()
        assert page.status == 200 and 'name="password"' in html and "Sign in" in html
        resp = await http.post("/login", data={"username": "paper.tutor", "password": PASSWORD,
                                               "next": "/tutor"}, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/tutor"
        cookie = resp.cookies[auth.COOKIE]
        assert cookie["httponly"] is True and cookie["samesite"] == "Lax"
        assert cookie["path"] == "/" and not cookie["secure"]  # plain http in the test
        identity = tokens.verify(SECRET, cookie.value)
        assert identity == people["paper_tutor"].identity()
        me = await (await http.get("/api/me")).json()
        assert me["identity"] == {"role": "tutor", "id": people["paper_tutor"].id,
                                  "display_name": "Ms. Paper", "vendor": "paper",
                                  "languages": ["en", "es"]}


async def test_cookie_is_secure_behind_https(settings: Any, accounts: Accounts) -> None:
    await make_people(accounts)
    srv = await AuthServer(settings.with_(public_url="https://help.example.org")).start()
    try:
        async with srv.http() as http:
            resp = await http.post("/api/login", json={"username": "district.staff",
                                                       "password": PASSWORD})
            assert resp.status == 200
            assert resp.cookies[auth.COOKIE]["secure"] is True
    finally:
        await srv.stop()


async def test_next_must_be_a_local_path(server: AuthServer, accounts: Accounts) -> None:
    await make_people(accounts)
    async with server.http() as http:
        for evil in ("https://evil.example", "//evil.example", "/\\evil.example"):
            resp = await http.post("/login", data={"username": "paper.tutor",
                                                   "password": PASSWORD, "next": evil},
                                   allow_redirects=False)
            assert resp.headers["Location"] == "/"


async def test_failures_are_generic_and_disabled_accounts_refused(
    server: AuthServer, accounts: Accounts
) -> None:
    await make_people(accounts)
    await accounts.disable("elem.staff")
    async with server.http() as http:
        bodies = []
        for username, password in (("nobody", PASSWORD), ("paper.tutor", "wrong password!!"),
                                   ("elem.staff", PASSWORD)):
            resp = await http.post("/api/login", json={"username": username,
                                                       "password": password})
            assert resp.status == 401
            assert auth.COOKIE not in resp.cookies
            body = await resp.json()
            bodies.append((body["code"], body["title"]))
        assert bodies == [("unauthenticated", GENERIC_FAILURE)] * 3
        form = await http.post("/login", data={"username": "elem.staff", "password": PASSWORD})
        assert form.status == 401 and "Incorrect username or password." in await form.text()


async def test_disabling_ends_http_access_of_a_signed_in_account(
    server: AuthServer, accounts: Accounts
) -> None:
    await make_people(accounts)
    async with server.http() as http:
        await http.post("/api/login", json={"username": "paper.tutor", "password": PASSWORD})
        assert (await http.get("/api/token")).status == 200
        await accounts.disable("paper.tutor")
        assert (await http.get("/api/token")).status == 401
        assert (await http.get("/api/me")).status == 401


async def test_sign_in_is_rate_limited_per_username(
    server: AuthServer, accounts: Accounts
) -> None:
    await make_people(accounts)
    async with server.http() as http:
        for _ in range(LOGIN_USER_FAILURES):
            resp = await http.post("/api/login", json={"username": "paper.tutor",
                                                       "password": "wrong password!!"})
            assert resp.status == 401
        # now even the right password is refused without being checked
        resp = await http.post("/api/login", json={"username": "paper.tutor",
                                                   "password": PASSWORD})
        assert resp.status == 429
        assert resp.content_type == "application/problem+json"
        assert (await resp.json())["code"] == "rate_limited"
        assert 0 < int(resp.headers["Retry-After"]) <= LOGIN_WINDOW_S
        form = await http.post("/login", data={"username": "paper.tutor", "password": PASSWORD})
        assert form.status == 429 and "Too many sign-in attempts" in await form.text()
        # another username from the same address is still allowed
        ok = await http.post("/api/login", json={"username": "tc.tutor", "password": PASSWORD})
        assert ok.status == 200


async def test_sign_in_is_rate_limited_per_client_address(
    server: AuthServer, accounts: Accounts
) -> None:
    await make_people(accounts)
    async with server.http() as http:
        for i in range(LOGIN_IP_FAILURES):
            resp = await http.post("/api/login", json={"username": f"guess{i}",
                                                       "password": "wrong password!!"})
            assert resp.status == 401
        resp = await http.post("/api/login", json={"username": "tc.tutor", "password": PASSWORD})
        assert resp.status == 429


async def test_token_carries_the_session_identity_and_logout_clears(
    server: AuthServer, accounts: Accounts
) -> None:
    people = await make_people(accounts)
    async with server.http() as http:
        assert (await http.get("/api/token")).status == 401
        await http.post("/api/login", json={"username": "district.staff", "password": PASSWORD})
        body = await (await http.get("/api/token")).json()
        assert body["expires_in"] == SOCKET_TOKEN_TTL_S
        assert tokens.verify(SECRET, body["token"]) == people["district"].identity()
        resp = await http.post("/logout", headers={"Accept": "application/json"})
        assert resp.status == 204
        assert (await http.get("/api/me")).status == 401


async def test_foreign_origin_posts_are_refused(server: AuthServer, accounts: Accounts) -> None:
    await make_people(accounts)
    async with server.http() as http:
        resp = await http.post("/api/login", json={"username": "paper.tutor",
                                                   "password": PASSWORD},
                               headers={"Origin": "https://evil.example"})
        assert resp.status == 403
        resp = await http.post("/api/login", data="username=x", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 400


@pytest.mark.parametrize("lang", ["es-MX", "en", "zz"])
async def test_sign_in_page_follows_the_language(server: AuthServer, lang: str) -> None:
    async with server.http() as http:
        resp = await http.get("/login", headers={"Accept-Language": f"{lang};q=0.9"})
        assert f'lang="{negotiate(lang)}"' in await resp.text()
        resp = await http.get(f"/login?lang={lang}")
        assert f'lang="{negotiate(lang)}"' in await resp.text()


async def test_sign_in_during_a_database_outage_is_503_then_works(
    server: AuthServer, accounts: Accounts, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While the accounts cannot be read the form answers its page in the reader's language
    with a wait-a-minute message and the JSON sign-in a 503 ``unavailable`` problem, both
    with ``Retry-After``; no cookie, no traceback; then signing in works."""
    await make_people(accounts)
    sign_in = server.test_server.app[SIGN_IN]  # type: ignore[union-attr]
    real = sign_in.accounts.authenticate
    down = True

    async def maybe_down(*args: Any, **kwargs: Any) -> Any:
        if down:
            raise database_refused()
        return await real(*args, **kwargs)

    monkeypatch.setattr(sign_in.accounts, "authenticate", maybe_down)
    monkeypatch.setattr(problems, "outages", OutageLog(problems.log))  # a fresh pace
    caplog.set_level(logging.INFO)
    form = {"username": "paper.tutor", "password": PASSWORD, "next": "/tutor"}
    async with server.http() as http:
        resp = await http.post("/login", data=form, allow_redirects=False,
                               headers={"Accept-Language": "vi"})
        html = await resp.text()
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
        assert "Tạm thời không thể đăng nhập." in html and 'value="paper.tutor"' in html
        assert auth.COOKIE not in resp.cookies
        resp = await http.post("/api/login", json={"username": "paper.tutor",
                                                   "password": PASSWORD})
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
        assert (await resp.json(content_type=None))["code"] == "unavailable"
        assert auth.COOKIE not in resp.cookies
        assert not [r for r in caplog.records if r.exc_info]
        down = False
        resp = await http.post("/login", data=form, allow_redirects=False)
        assert resp.status == 303 and auth.COOKIE in resp.cookies


async def test_sign_in_whose_counts_do_not_answer_is_503_not_let_through(
    server: AuthServer, accounts: Accounts, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sign-in counts are protection that must hold: when they do not answer (Redis
    frozen) the form answers its wait-a-minute page after ``REDIS_WAIT_S``, 503, and no
    cookie; it neither lets the attempt through unchecked nor holds it."""
    await make_people(accounts)
    sign_in = server.test_server.app[SIGN_IN]  # type: ignore[union-attr]
    never = asyncio.Event()

    async def unanswered(*args: Any, **kwargs: Any) -> Any:
        await never.wait()

    monkeypatch.setattr(sign_in_module, "REDIS_WAIT_S", 0.2)
    monkeypatch.setattr(sign_in.by_user, "retry_after", unanswered)
    form = {"username": "paper.tutor", "password": PASSWORD, "next": "/tutor"}
    async with server.http() as http:
        resp = await asyncio.wait_for(http.post("/login", data=form, allow_redirects=False), 10)
        assert resp.status == 503 and resp.headers["Retry-After"] == "5"
        assert "Sign-in is briefly unavailable" in await resp.text()
        assert auth.COOKIE not in resp.cookies
