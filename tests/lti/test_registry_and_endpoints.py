"""Registrations from settings, the tool's JWKS and configuration, and the embedding headers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from joserfc.jwk import RSAKey

from broker.errors import ConfigError
from broker.settings import Settings
from tests.lti.conftest import LtiEnv
from web.lti import frame_ancestors_middleware, tool_keys
from web.lti.errors import UnknownClient, UnknownIssuer
from web.lti.registry import (
    SCHOOLOGY_AUTH_URL,
    SCHOOLOGY_ISSUER,
    SCHOOLOGY_JWKS_URL,
    Registry,
    parse_platforms,
)
from web.lti.tool_keys import ToolKeys, load_tool_keys

ROOT = Path(__file__).resolve().parents[2]

SCHOOLOGY = {
    "name": "Schoology",
    "issuer": SCHOOLOGY_ISSUER,
    "client_id": "7654321",
    "deployment_ids": ["7654321-1-abc"],
    "auth_login_url": SCHOOLOGY_AUTH_URL,
    "jwks_url": SCHOOLOGY_JWKS_URL,
}


def test_platforms_from_json_text_file_and_wrapper(tmp_path: Path) -> None:
    second = {**SCHOOLOGY, "client_id": "999", "deployment_ids": "999-1"}
    [one] = parse_platforms(json.dumps([SCHOOLOGY]))
    assert one.issuer == "https://schoology.schoology.com"
    assert one.deployment_ids == frozenset({"7654321-1-abc"})
    assert one.auth_origin == "https://lti-service.svc.schoology.com"
    path = tmp_path / "platforms.json"
    path.write_text(json.dumps({"platforms": [SCHOOLOGY, second]}))
    registry = Registry(parse_platforms(str(path)))
    assert len(registry) == 2
    assert registry.find(SCHOOLOGY_ISSUER, "999").deployment_ids == frozenset({"999-1"})
    with pytest.raises(UnknownClient):
        registry.find(SCHOOLOGY_ISSUER)  # two registrations, no client id: ambiguous
    with pytest.raises(UnknownIssuer):
        registry.find("https://schoology.schoology.com/")  # exact match only
    assert parse_platforms(None) == [] and parse_platforms("  ") == []


@pytest.mark.parametrize(
    "bad",
    [
        "not json and not a file",
        "[{}]",
        json.dumps([{**SCHOOLOGY, "deployment_ids": []}]),
        json.dumps([{**SCHOOLOGY, "jwks_url": "ftp://x"}]),
        json.dumps({"platforms": "x"}),
    ],
)
def test_bad_platform_config_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_platforms(bad)


def test_tool_key_from_env_or_persisted_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "key.pem"
    first = load_tool_keys({}, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_tool_keys({}, path).kid == first.kid  # survives a restart
    pem = path.read_text()
    assert load_tool_keys({"HH_LTI_PRIVATE_KEY": pem}, tmp_path / "unused.pem").kid == first.kid
    assert not (tmp_path / "unused.pem").exists()
    with pytest.raises(ConfigError):
        load_tool_keys({"HH_LTI_PRIVATE_KEY": "garbage"}, path)


def test_tool_key_made_by_another_process_meanwhile_is_the_one_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process links its key into place between this one's check and its own link
    (two `serve` processes started at once on a fresh checkout): this one uses that key, so
    both sign with one key, and leaves no temporary file behind."""
    path = tmp_path / "var" / "key.pem"
    theirs = tool_keys._generate_pem()
    ours = tool_keys._generate_pem()

    def generate_while_another_process_wins() -> bytes:
        path.write_bytes(theirs)
        return ours

    monkeypatch.setattr(tool_keys, "_generate_pem", generate_while_another_process_wins)
    got = load_tool_keys({}, path)
    assert path.read_bytes() == theirs
    assert got.kid == ToolKeys(RSAKey.import_key(theirs)).kid
    assert got.kid != ToolKeys(RSAKey.import_key(ours)).kid
    assert sorted(p.name for p in path.parent.iterdir()) == ["key.pem"]


RACE = """
import sys, time
from pathlib import Path
from web.lti.tool_keys import load_tool_keys
go = Path(sys.argv[1])
Path(sys.argv[3]).touch()
while not go.exists():
    time.sleep(0.001)
print(load_tool_keys({}, Path(sys.argv[2])).kid)
"""


def test_processes_starting_at_once_agree_on_one_tool_key(tmp_path: Path) -> None:
    """Four real processes, each waiting with its imports done, load the key from a fresh
    path at the same moment: every one starts (none finds the file taken or half-written)
    and all hold the same key."""
    go, path = tmp_path / "go", tmp_path / "var" / "key.pem"
    ready = [tmp_path / f"ready-{n}" for n in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(go), str(path), str(flag)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 60
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # every process imported and waiting: they all look at once
    go.touch()
    outcomes = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err for _, err in outcomes]
    kids = {out.strip() for out, _ in outcomes}
    assert len(kids) == 1 and load_tool_keys({}, path).kid in kids
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["key.pem"]


async def test_jwks_is_public_only(env: LtiEnv) -> None:
    response = await env.client.get("/lti/jwks.json")
    assert response.status == 200
    [key] = (await response.json())["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["kid"]
    assert "d" not in key and "p" not in key


async def test_config_uses_the_request_host_or_public_url(
    env: LtiEnv, make_env: Callable[..., Awaitable[LtiEnv]]
) -> None:
    body = await (await env.client.get("/lti/config.json")).json()
    assert body["oidc_initiation_url"] == env.base + "/lti/login"
    assert body["redirect_uris"] == [env.base + "/lti/launch"]
    assert body["jwks_url"] == env.base + "/lti/jwks.json"
    assert body["target_link_uri"] == env.base + "/lti/launch"
    assert body["custom_parameters"] == {"student_id": "$com.schoology.User.uniqueId"}
    assert set(body["optional_custom_parameters"]) == {"grade", "school_id"}
    public = await make_env(
        settings=Settings(secret_key="s", public_url="https://help.example.org/")
    )
    body = await (await public.client.get("/lti/config.json")).json()
    assert body["login_url"] == "https://help.example.org/lti/login"


async def test_frame_ancestors_on_html_and_never_x_frame_options(env: LtiEnv) -> None:
    for path in ("/demo/lms", "/lti/login"):  # a page and an error page
        response = await env.client.get(path)
        assert response.content_type == "text/html"
        directives = [d.strip() for d in response.headers["Content-Security-Policy"].split(";")]
        assert [d for d in directives if d.startswith("frame-ancestors")] == [
            "frame-ancestors 'self' https://*.schoology.com"
        ]
        assert "script-src 'self'" in directives and "style-src 'self'" in directives
        assert "X-Frame-Options" not in response.headers
    jwks = await env.client.get("/lti/jwks.json")
    assert "Content-Security-Policy" not in jwks.headers


async def test_middleware_merges_csp_and_strips_x_frame_options(
    aiohttp_client: Callable[..., Awaitable[Any]],
) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text="<p>hi</p>",
            content_type="text/html",
            headers={
                "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            },
        )

    async def missing(request: web.Request) -> web.Response:
        raise web.HTTPNotFound(headers={"X-Frame-Options": "DENY"})

    settings = Settings(frame_ancestors="'self' https://district.schoology.com")
    app = web.Application(middlewares=[frame_ancestors_middleware(settings)])
    app.router.add_get("/", page)
    app.router.add_get("/missing", missing)
    client = await aiohttp_client(app)
    response = await client.get("/")
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; frame-ancestors 'self' https://district.schoology.com"
    )
    assert "X-Frame-Options" not in response.headers
    response = await client.get("/missing")
    assert response.status == 404 and "X-Frame-Options" not in response.headers


async def test_demo_lms_lists_students_instructor_and_admin(env: LtiEnv) -> None:
    body = await (await env.client.get("/demo/lms")).text()
    assert body.count("data-login=") == 7
    assert "lti_storage_target=_parent" in body
    assert "Kenji Watanabe" in body and "Pat Rivera" in body and "Jordan Lee" in body
