"""Every refused launch: a 4xx error page, the reason code logged on ``web.lti``, and
``on_launch`` never called."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from tests.lti.conftest import LtiEnv
from web.lti.launch import CLAIM
from web.lti.state import LoginState, StateCodec

Claims = dict[str, Any]


async def refused(
    env: LtiEnv, caplog: pytest.LogCaptureFixture, response: aiohttp.ClientResponse, code: str
) -> str:
    body = await response.text()
    assert 400 <= response.status < 500, (response.status, body)
    assert response.content_type == "text/html"
    assert re.search(rf"Reason code:\s*(<code[^>]*>)?{re.escape(code)}\b", body), body[-800:]
    codes = [r.lti_code for r in caplog.records if r.name == "web.lti" and hasattr(r, "lti_code")]
    assert codes and codes[-1] == code, caplog.text
    assert env.launches == []
    return body


def _set(name: str, value: Any) -> Callable[[Claims], None]:
    def mutate(claims: Claims) -> None:
        claims[name] = value
    return mutate


def _drop(name: str) -> Callable[[Claims], None]:
    return lambda claims: claims.pop(name, None)


def _times(iat: float, exp: float) -> Callable[[Claims], None]:
    def mutate(claims: Claims) -> None:
        now = time.time()
        claims["iat"], claims["exp"] = int(now + iat), int(now + exp)
    return mutate


CLAIM_CASES: list[tuple[str, Callable[[Claims], None], str]] = [
    ("expired", _times(-400, -61 - 5), "expired"),
    ("iat_too_old", _times(-3600, 300), "expired"),
    ("future_iat", _times(+300, 600), "iat_in_future"),
    ("wrong_aud", _set("aud", "someone-else"), "bad_audience"),
    ("extra_untrusted_aud", _set("aud", ["homework-help-demo", "evil-client"]), "bad_audience"),
    ("azp_not_us", _set("azp", "evil-client"), "bad_azp"),
    ("missing_deployment", _drop(CLAIM + "deployment_id"), "unknown_deployment"),
    ("unknown_deployment", _set(CLAIM + "deployment_id", "other-dep"), "unknown_deployment"),
    (
        "target_link_mismatch",
        _set(CLAIM + "target_link_uri", "https://elsewhere.example/lti/launch"),
        "target_link_mismatch",
    ),
    ("missing_roles", _drop(CLAIM + "roles"), "missing_roles"),
    ("empty_roles", _set(CLAIM + "roles", []), "missing_roles"),
    (
        "unsupported_role",
        _set(CLAIM + "roles", ["http://purl.imsglobal.org/vocab/lis/v2/membership#Mentor"]),
        "unsupported_role",
    ),
    (
        "bad_message_type",
        _set(CLAIM + "message_type", "LtiSubmissionReviewRequest"),
        "bad_message_type",
    ),
    (
        "deep_linking",
        _set(CLAIM + "message_type", "LtiDeepLinkingRequest"),
        "deep_linking_unsupported",
    ),
    ("bad_version", _set(CLAIM + "version", "1.1.0"), "bad_version"),
    ("missing_nonce", _drop("nonce"), "missing_nonce"),
    ("other_nonce", _set("nonce", "not-the-login-nonce"), "nonce_mismatch"),
    ("unknown_issuer", _set("iss", "https://evil.example"), "unknown_issuer"),
    ("missing_sub", _drop("sub"), "missing_subject"),
    ("missing_resource_link", _drop(CLAIM + "resource_link"), "missing_resource_link"),
    ("exp_not_a_number", _set("exp", "tomorrow"), "malformed_token"),
]


@pytest.mark.parametrize(("case", "mutate", "code"), CLAIM_CASES, ids=[c[0] for c in CLAIM_CASES])
async def test_bad_claims_are_refused(
    env: LtiEnv,
    caplog: pytest.LogCaptureFixture,
    case: str,
    mutate: Callable[[Claims], None],
    code: str,
) -> None:
    login = await env.login()
    claims = env.claims(login)
    mutate(claims)
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(env.platform.sign_launch(claims), login.state)
    await refused(env, caplog, response, code)


async def test_exp_within_leeway_is_accepted(env: LtiEnv) -> None:
    login = await env.login()
    claims = env.claims(login)
    _times(-200, -30)(claims)
    response = await env.launch(env.platform.sign_launch(claims), login.state)
    assert response.status == 200
    assert len(env.launches) == 1


async def test_wrong_signature(env: LtiEnv, caplog: pytest.LogCaptureFixture) -> None:
    login = await env.login()
    impostor = env.platform.new_key()
    token = env.platform.sign_launch(env.claims(login), key=impostor, kid=env.platform.key.kid)
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(token, login.state)
    await refused(env, caplog, response, "bad_signature")


async def test_tampered_payload_fails_the_signature(
    env: LtiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    login = await env.login()
    good = env.platform.sign_launch(env.claims(login))
    claims = env.claims(login, "demo-a-1")
    forged_payload = env.platform.sign_launch(claims).split(".")[1]
    header, _, signature = good.split(".")
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(f"{header}.{forged_payload}.{signature}", login.state)
    await refused(env, caplog, response, "bad_signature")


@pytest.mark.parametrize("alg", ["none", "HS256"])
async def test_only_rs256(env: LtiEnv, caplog: pytest.LogCaptureFixture, alg: str) -> None:
    login = await env.login()
    token = env.platform.sign_launch(env.claims(login), alg=alg)
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(token, login.state)
    await refused(env, caplog, response, "bad_algorithm")
    assert env.platform.jwks_hits == 0  # refused before any key was looked up


async def test_unknown_kid_after_rotation_is_refetched_once_and_accepted(env: LtiEnv) -> None:
    await env.good_launch()
    assert env.platform.jwks_hits == 1
    env.platform.rotate()
    second = await env.login()
    response = await env.launch(env.platform.sign_launch(env.claims(second)), second.state)
    assert response.status == 200, await response.text()
    assert env.platform.jwks_hits == 2
    assert len(env.launches) == 2


async def test_unknown_kid_in_neither_key_set_is_refused(
    env: LtiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    await env.good_launch()
    env.launches.clear()
    login = await env.login()
    stranger = env.platform.new_key()
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(
            env.platform.sign_launch(env.claims(login), key=stranger), login.state
        )
    await refused(env, caplog, response, "unknown_kid")
    assert env.platform.jwks_hits == 2  # exactly one re-fetch


async def test_replayed_nonce(env: LtiEnv, caplog: pytest.LogCaptureFixture) -> None:
    login = await env.login()
    token = env.platform.sign_launch(env.claims(login))
    assert (await env.launch(token, login.state)).status == 200
    env.launches.clear()
    codec: StateCodec = env.tool.codec
    cookie = {codec.cookie_name(login.state): codec.cookie_value(login.state)}
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.client.post(
            "/lti/launch", data={"id_token": token, "state": login.state}, cookies=cookie
        )
    await refused(env, caplog, response, "nonce_replayed")


async def test_missing_state_cookie(env: LtiEnv, caplog: pytest.LogCaptureFixture) -> None:
    login = await env.login()
    env.client.session.cookie_jar.clear()
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(env.platform.sign_launch(env.claims(login)), login.state)
    body = await refused(env, caplog, response, "bad_state")
    assert 'target="_blank"' in body and "/lti/login?" in body  # the open-in-a-new-tab fallback


async def test_state_of_another_login(env: LtiEnv, caplog: pytest.LogCaptureFixture) -> None:
    mine = await env.login()
    other = await env.login()
    env.client.session.cookie_jar.clear()
    # Only the second login's cookie reaches us; the token carries the first login's state.
    codec = env.tool.codec
    cookie = {codec.cookie_name(other.state): codec.cookie_value(other.state)}
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.client.post(
            "/lti/launch",
            data={"id_token": env.platform.sign_launch(env.claims(mine)), "state": mine.state},
            cookies=cookie,
        )
    await refused(env, caplog, response, "bad_state")


@pytest.mark.parametrize("state", ["", "garbage", "e30.AAAA"])
async def test_forged_or_missing_state(
    env: LtiEnv, caplog: pytest.LogCaptureFixture, state: str
) -> None:
    login = await env.login()
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(env.platform.sign_launch(env.claims(login)), state)
    await refused(env, caplog, response, "bad_state")


async def test_state_signed_with_another_secret(
    env: LtiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    login = await env.login()
    forged = StateCodec("not-our-secret").encode(
        LoginState.new(
            issuer="https://demo.homework-help.invalid", client_id="homework-help-demo",
            target_link_uri=env.base + "/lti/launch", login_hint="demo-1002",
        )
    )
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(env.platform.sign_launch(env.claims(login)), forged)
    await refused(env, caplog, response, "bad_state")


@pytest.mark.parametrize(
    ("token", "code"),
    [
        ("not a token", "malformed_token"),
        ("abc.def.ghi", "malformed_token"),
        ("eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "malformed_token"),  # payload "not json"
        ("", "malformed_token"),
    ],
)
async def test_non_json_tokens(
    env: LtiEnv, caplog: pytest.LogCaptureFixture, token: str, code: str
) -> None:
    login = await env.login()
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(token, login.state)
    await refused(env, caplog, response, code)


async def test_oversized_token(env: LtiEnv, caplog: pytest.LogCaptureFixture) -> None:
    login = await env.login()
    claims = env.claims(login)
    claims["padding"] = "x" * 20_000
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.launch(env.platform.sign_launch(claims), login.state)
    assert response.status == 413
    await refused(env, caplog, response, "token_too_large")
    assert env.platform.jwks_hits == 0


async def test_platform_error_answer(env: LtiEnv, caplog: pytest.LogCaptureFixture) -> None:
    login = await env.login()
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.client.post(
            "/lti/launch", data={"error": "login_required", "state": login.state}
        )
    await refused(env, caplog, response, "bad_login_request")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"iss": "https://evil.example"}, "unknown_issuer"),
        ({"client_id": "other-client"}, "unknown_client"),
        ({"lti_deployment_id": "other-dep"}, "unknown_deployment"),
        ({"target_link_uri": "https://elsewhere.example/x"}, "target_link_mismatch"),
        ({"login_hint": ""}, "bad_login_request"),
    ],
)
async def test_login_initiation_refusals(
    env: LtiEnv, caplog: pytest.LogCaptureFixture, change: dict[str, str], code: str
) -> None:
    params = {
        "iss": "https://demo.homework-help.invalid",
        "login_hint": "demo-1002",
        "target_link_uri": env.base + "/lti/launch",
        "client_id": "homework-help-demo",
        "lti_deployment_id": "demo-deployment-1",
        **change,
    }
    with caplog.at_level(logging.INFO, logger="web.lti"):
        response = await env.client.post("/lti/login", data=params, allow_redirects=False)
    await refused(env, caplog, response, code)
    assert "Set-Cookie" not in response.headers
