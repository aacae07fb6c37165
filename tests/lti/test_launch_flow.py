"""The happy path through the real redirects, the platform-storage path, and LaunchData."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.lti.conftest import STUDENT, LtiEnv, form_fields, storage_config
from web.lti import routes
from web.lti.launch import CLAIM, TEST_USER


async def test_full_launch_follows_login_redirect_and_platform_autopost(env: LtiEnv) -> None:
    login = await env.client.get(
        env.platform.login_initiation_url(STUDENT, locale="es-US", storage=False)[len(env.base):],
        allow_redirects=False,
    )
    assert login.status == 302
    location = login.headers["Location"]
    assert location.startswith(env.base + "/platform/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["scope"] == "openid"
    assert query["response_type"] == "id_token"
    assert query["response_mode"] == "form_post"
    assert query["prompt"] == "none"
    assert query["client_id"] == "homework-help-demo"
    assert query["redirect_uri"] == env.base + "/lti/launch"
    assert query["login_hint"] == STUDENT
    assert query["lti_message_hint"] == "demo-link-1|es-US"
    assert query["state"] and query["nonce"]
    cookie = login.headers["Set-Cookie"]
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/lti/"):
        assert attribute in cookie

    page = await env.client.get(location[len(env.base):])
    assert page.status == 200
    action, fields = form_fields(await page.text())
    assert action == env.base + "/lti/launch"
    assert set(fields) == {"id_token", "state"}

    done = await env.client.post("/lti/launch", data=fields)
    assert done.status == 200, await done.text()
    assert await done.text() == "<p>widget</p>"
    assert "Max-Age=0" in done.headers["Set-Cookie"]  # the state cookie is spent

    [launch] = env.launches
    assert launch.role == "student"
    assert launch.issuer == "https://demo.homework-help.invalid"
    assert launch.subject == STUDENT
    assert launch.client_id == "homework-help-demo"
    assert launch.deployment_id == "demo-deployment-1"
    assert launch.locale == "es-US"
    assert launch.custom == {"student_id": "demo-1002", "grade": "7", "school_id": "demo-k8-1"}
    assert launch.context == {"id": "demo-course-1", "title": "Demo course"}
    assert launch.given_name == "Kenji"
    assert launch.resource_link_id == "demo-link-1"
    assert launch.target_link_uri == env.base + "/lti/launch"
    assert launch.is_test_user is False


async def test_launch_data_lowercases_custom_keys_and_marks_test_users(env: LtiEnv) -> None:
    login = await env.login("demo-t-1")
    claims = env.claims(login, "demo-t-1", locale="fr-FR")
    claims[CLAIM + "custom"] = {
        "Student_ID": "S-1", "GRADE": 5, "School_Id": "sch-9", "unset": "$User.id",
    }
    claims[CLAIM + "roles"].append(TEST_USER)
    response = await env.launch(env.platform.sign_launch(claims), login.state)
    assert response.status == 200, await response.text()
    [launch] = env.launches
    assert launch.role == "teacher"
    assert launch.is_test_user is True
    assert launch.locale == "fr-FR"
    assert launch.custom == {"student_id": "S-1", "grade": "5", "school_id": "sch-9"}


async def test_admin_launch_maps_to_staff(env: LtiEnv) -> None:
    login = await env.login("demo-a-1")
    response = await env.launch(
        env.platform.sign_launch(env.claims(login, "demo-a-1")), login.state
    )
    assert response.status == 200
    assert env.launches[0].role == "staff"


async def test_platform_storage_binds_state_when_the_cookie_is_lost(env: LtiEnv) -> None:
    login = await env.login(storage=True)
    page = await login.response.text()
    config = storage_config(page)
    assert config["mode"] == "put"
    assert config["target"] == "_parent"
    assert config["origin"] == env.base
    assert "Partitioned" in login.response.headers["Set-Cookie"]
    env.client.session.cookie_jar.clear()  # a browser that blocks third-party cookies

    token = env.platform.sign_launch(env.claims(login))
    first = await env.launch(token, login.state)
    assert first.status == 200
    get_page = await first.text()
    assert storage_config(get_page) == {
        "mode": "get", "target": "_parent", "origin": env.base, "key": config["key"],
    }
    action, fields = form_fields(get_page)
    assert fields["id_token"] == token and fields["lti_storage_checked"] == "1"
    assert env.launches == []

    # What the page's script posts back after lti.get_data answered with the stored value.
    fields["lti_storage_value"] = config["value"]
    done = await env.client.post(action[len(env.base):], data=fields)
    assert done.status == 200, await done.text()
    assert len(env.launches) == 1


async def test_platform_storage_with_a_wrong_value_is_refused_with_a_new_tab_fallback(
    env: LtiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    login = await env.login(storage=True)
    env.client.session.cookie_jar.clear()
    token = env.platform.sign_launch(env.claims(login))
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(
            token, login.state, lti_storage_checked="1", lti_storage_value="forged"
        )
    assert response.status == 401
    assert "bad_state" in caplog.text
    body = await response.text()
    assert "/lti/login?" in body and 'target="_blank"' in body
    assert env.launches == []


async def test_error_page_uses_the_launch_locale_else_accept_language(
    env: LtiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str | None] = []
    real_render = routes.render_page

    def recording_render(template: str, locale: str | None, **kwargs: Any) -> Any:
        asked.append(locale)
        return real_render(template, locale, **kwargs)

    monkeypatch.setattr(routes, "render_page", recording_render)
    login = await env.login()
    claims = env.claims(login, locale="es-MX")
    claims[CLAIM + "version"] = "1.1"
    response = await env.launch(env.platform.sign_launch(claims), login.state)
    assert response.status == 400
    assert asked[-1] == "es"  # the launch's es-MX, matched to the shipped catalog
    html = await response.text()
    assert '<html lang="es" dir="ltr">' in html

    response = await env.client.post(
        "/lti/launch", data={"id_token": "x", "state": "y"},
        headers={"Accept-Language": "fr-CA,fr;q=0.8,en;q=0.5"},
    )
    assert response.status == 401
    assert asked[-1] == "fr"  # Accept-Language's first tag a catalog serves
    assert '<html lang="fr" dir="ltr">' in await response.text()
    assert env.launches == []
