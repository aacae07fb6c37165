"""aiohttp handlers for the LTI 1.3 tool: login initiation, launch, JWKS, tool configuration,
and the ``frame-ancestors`` middleware.

A refused login or launch renders ``lti/error.html`` (translated: the launch's locale when
the token carried one, else the browser's ``Accept-Language``) with the error's 4xx status,
logs ``lti <step> refused: <code>`` on the ``web.lti`` logger and never calls ``on_launch``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from broker.settings import Settings
from web.forms import read_form
from web.lti import errors as E
from web.lti.launch import CLAIM, LaunchData, launch_from_claims
from web.lti.nonces import NonceStore
from web.lti.platform_keys import PlatformKeyCache
from web.lti.registry import Registry
from web.lti.state import LoginState, StateCodec
from web.lti.tool_keys import ToolKeys
from web.lti.validate import Policy, peek, validate_id_token
from web.negotiation import page_locale
from web.problems import answered_as_outage, retry_later
from web.render import render_page

log = logging.getLogger("web.lti")

OnLaunch = Callable[[web.Request, LaunchData], Awaitable[web.StreamResponse]]
LOGIN_PATH = "/lti/login"
LAUNCH_PATH = "/lti/launch"
JWKS_PATH = "/lti/jwks.json"
CONFIG_PATH = "/lti/config.json"
TOOL_TITLE = "Homework Help"
TOOL_DESCRIPTION = (
    "Live, 24/7 homework help from a tutor, in the student's language, for every K-12 subject."
)
_LOGIN_PARAMS = (
    "iss", "login_hint", "target_link_uri", "lti_message_hint", "client_id", "lti_deployment_id",
)

def render(
    template: str, locale: str | None, *, status: int = 200, **context: Any
) -> web.Response:
    """Render an LTI page (``templates/lti/``) through the pages' one renderer."""
    return render_page(f"lti/{template}", locale, status=status, **context)


@dataclass
class LtiTool:
    """Everything the handlers share; stored in the app under :data:`LTI_TOOL`."""

    settings: Settings
    registry: Registry
    keys: PlatformKeyCache
    nonces: NonceStore
    codec: StateCodec
    tool_keys: ToolKeys
    on_launch: OnLaunch
    policy: Policy

    def base_url(self, request: web.Request) -> str:
        """``settings.public_url``, else the scheme and host the request came in on."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"


LTI_TOOL: web.AppKey[LtiTool] = web.AppKey("lti_tool", LtiTool)


def refuse(
    request: web.Request, step: str, exc: E.LtiError, locale: str | None, **context: Any
) -> web.Response:
    log.warning(
        "lti %s refused: %s (%s)", step, exc.code, exc.message,
        extra={"lti_code": exc.code, "lti_detail": exc.detail},
    )
    return render(
        "error.html",
        page_locale(request, locale),
        status=exc.http_status,
        code=exc.code,
        message=exc.public_message,
        new_tab_url=context.get("new_tab_url"),
    )


async def _params(request: web.Request) -> dict[str, str]:
    params = {k: v for k, v in request.query.items()}
    if request.method == "POST":
        form = await read_form(request)
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


async def login(request: web.Request) -> web.StreamResponse:
    """OIDC third-party login initiation: remember the login in ``state``, bind it to the
    browser, and send the browser to the platform's authorization endpoint."""
    tool = request.app[LTI_TOOL]
    params = await _params(request)
    try:
        for name in ("iss", "login_hint", "target_link_uri"):
            if not params.get(name):
                raise E.BadLoginRequest(f"{name} missing")
        if any(len(params.get(name, "")) > 2048 for name in _LOGIN_PARAMS):
            raise E.BadLoginRequest("a login parameter is too long")
        registration = tool.registry.find(params["iss"], params.get("client_id") or None)
        deployment = params.get("lti_deployment_id", "")
        if deployment and deployment not in registration.deployment_ids:
            raise E.UnknownDeployment("lti_deployment_id not registered")
        base = tool.base_url(request)
        target = params["target_link_uri"]
        if urlsplit(target).netloc != urlsplit(base).netloc:
            raise E.TargetLinkMismatch("target_link_uri is not on this tool's host")
        storage_target = params.get("lti_storage_target", "")[:64]
        login_state = LoginState.new(
            issuer=registration.issuer,
            client_id=registration.client_id,
            target_link_uri=target,
            login_hint=params["login_hint"],
            lti_message_hint=params.get("lti_message_hint", ""),
            deployment_id=deployment,
            storage_target=storage_target,
        )
    except E.LtiError as exc:
        return refuse(request, "login", exc, None)
    state = tool.codec.encode(login_state)
    query = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": registration.client_id,
        "redirect_uri": base + LAUNCH_PATH,
        "login_hint": login_state.login_hint,
        "state": state,
        "nonce": login_state.nonce,
    }
    if login_state.lti_message_hint:
        query["lti_message_hint"] = login_state.lti_message_hint
    separator = "&" if "?" in registration.auth_login_url else "?"
    auth_url = registration.auth_login_url + separator + urlencode(query)
    response: web.StreamResponse
    if storage_target:
        response = render(
            "storage.html",
            page_locale(request),
            mode="put",
            next_url=auth_url,
            action="",
            fields={},
            config={
                "mode": "put",
                "target": storage_target,
                "origin": registration.auth_origin,
                "key": tool.codec.storage_key(state),
                "value": tool.codec.storage_value(state),
                "next": auth_url,
            },
        )
    else:
        response = web.Response(status=302, headers={"Location": auth_url})
    tool.codec.set_cookie(response, state)
    return response


def new_tab_url(tool: LtiTool, request: web.Request, login_state: LoginState) -> str:
    """A top-level login for the same launch, where the state cookie is first-party."""
    query = {
        "iss": login_state.issuer,
        "client_id": login_state.client_id,
        "login_hint": login_state.login_hint,
        "target_link_uri": login_state.target_link_uri,
    }
    if login_state.lti_message_hint:
        query["lti_message_hint"] = login_state.lti_message_hint
    if login_state.deployment_id:
        query["lti_deployment_id"] = login_state.deployment_id
    return tool.base_url(request) + LOGIN_PATH + "?" + urlencode(query)


def launch_locale(token: object) -> str | None:
    """The launch's ``launch_presentation.locale``, read unverified, for the error page only."""
    try:
        _, claims = peek(token)
    except E.LtiError:
        return None
    presentation = claims.get(CLAIM + "launch_presentation")
    if isinstance(presentation, dict) and isinstance(presentation.get("locale"), str):
        return str(presentation["locale"])[:35]
    return None


async def launch(request: web.Request) -> web.StreamResponse:
    """The OIDC redirect target: validate the id_token, then hand :class:`LaunchData` to
    ``on_launch``. Nothing is created unless every check passed. While PostgreSQL or Redis
    cannot be reached (the nonce, the student's record) the launch creates nothing and the
    student sees the translated error page, 503 ``unavailable`` with ``Retry-After``."""
    form: Mapping[str, Any] = await read_form(request)
    locale = launch_locale(form.get("id_token"))
    try:
        return await _launch(request, form, locale)
    except Exception as exc:
        if not answered_as_outage(request, exc):
            raise
        return retry_later(render(
            "error.html",
            page_locale(request, locale),
            status=E.Unavailable.http_status,
            code=E.Unavailable.code,
            message=E.Unavailable.public_message,
            new_tab_url=None,
        ))


async def _launch(
    request: web.Request, form: Mapping[str, Any], locale: str | None
) -> web.StreamResponse:
    tool = request.app[LTI_TOOL]
    token, state = form.get("id_token"), form.get("state")
    new_tab: str | None = None
    try:
        if form.get("error"):
            raise E.BadLoginRequest(
                "the platform answered the login with an error",
                error=str(form.get("error"))[:64],
            )
        login_state = tool.codec.decode(state)
        assert isinstance(state, str)
        new_tab = new_tab_url(tool, request, login_state)
        if not tool.codec.cookie_matches(request, state):
            checked = form.get("lti_storage_checked") == "1"
            if not login_state.storage_target:
                raise E.BadState("no state cookie from this browser")
            if not checked:
                return render(
                    "storage.html",
                    page_locale(request, locale),
                    mode="get",
                    action=tool.base_url(request) + LAUNCH_PATH,
                    fields={"id_token": token, "state": state},
                    next_url="",
                    config={
                        "mode": "get",
                        "target": login_state.storage_target,
                        "origin": tool.registry.find(
                            login_state.issuer, login_state.client_id
                        ).auth_origin,
                        "key": tool.codec.storage_key(state),
                    },
                )
            if not tool.codec.storage_matches(state, form.get("lti_storage_value")):
                raise E.BadState("neither cookie nor platform storage holds this state")
        registration, claims = await validate_id_token(
            token,
            login=login_state,
            registry=tool.registry,
            keys=tool.keys,
            nonces=tool.nonces,
            policy=tool.policy,
        )
        data = launch_from_claims(claims, registration.client_id)
    except E.LtiError as exc:
        bad_state = isinstance(exc, E.BadState)
        return refuse(request, "launch", exc, locale, new_tab_url=new_tab if bad_state else None)
    log.info(
        "lti launch accepted: iss=%s deployment=%s role=%s test=%s",
        data.issuer, data.deployment_id, data.role, data.is_test_user,
    )
    response = await tool.on_launch(request, data)
    if not response.prepared:
        tool.codec.set_cookie(response, state, clear=True)
    return response


async def jwks(request: web.Request) -> web.Response:
    tool = request.app[LTI_TOOL]
    return web.json_response(
        tool.tool_keys.public_jwks(), headers={"Cache-Control": "public, max-age=3600"}
    )


def tool_configuration(base: str) -> dict[str, Any]:
    """The JSON a district admin copies into Schoology's LTI 1.3 app registration."""
    return {
        "title": TOOL_TITLE,
        "description": TOOL_DESCRIPTION,
        "lti_version": "1.3.0",
        "oidc_initiation_url": base + LOGIN_PATH,
        "login_url": base + LOGIN_PATH,
        "redirect_uris": [base + LAUNCH_PATH],
        "launch_url": base + LAUNCH_PATH,
        "target_link_uri": base + LAUNCH_PATH,
        "jwks_url": base + JWKS_PATH,
        "public_jwk_url": base + JWKS_PATH,
        "domain": urlsplit(base).netloc,
        "privacy_level": "name_only",
        "custom_parameters": {"student_id": "$com.schoology.User.uniqueId"},
        "optional_custom_parameters": {
            "school_id": "the school's district id, when the tool is installed per school",
            "grade": "the course's grade level (K, 1-12), when the tool is added to a course",
        },
        "custom_fields_text": "student_id=$com.schoology.User.uniqueId",
        "message_types": ["LtiResourceLinkRequest"],
        "placements": ["course_navigation", "global_navigation", "link_selection"],
    }


async def config(request: web.Request) -> web.Response:
    tool = request.app[LTI_TOOL]
    return web.json_response(tool_configuration(tool.base_url(request)))


def frame_ancestors_middleware(settings: Settings) -> Middleware:
    """Middleware: ``Content-Security-Policy: frame-ancestors <settings.frame_ancestors>`` on
    every HTML response (merged into an existing CSP), and never ``X-Frame-Options``."""
    directive = f"frame-ancestors {settings.frame_ancestors.strip()}"

    def apply(response: web.StreamResponse) -> None:
        if response.prepared:
            return
        response.headers.popall("X-Frame-Options", None)
        if not (response.content_type or "").startswith(("text/html", "application/xhtml")):
            return
        existing = response.headers.get("Content-Security-Policy", "")
        kept = [
            part.strip() for part in existing.split(";")
            if part.strip() and not part.strip().lower().startswith("frame-ancestors")
        ]
        response.headers["Content-Security-Policy"] = "; ".join([*kept, directive])

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            apply(exc)
            raise
        apply(response)
        return response

    return middleware
