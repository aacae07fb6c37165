"""A fake Schoology: the LTI 1.3 platform used by the tests and by ``make run``'s demo.

It has its own RSA key (rotatable), serves its key set at ``/platform/jwks.json``, answers
the tool's OIDC redirect at ``/platform/authorize`` (checking ``client_id`` and
``redirect_uri``) by auto-posting a signed ``id_token`` and ``state`` to the tool's launch URL,
and serves a demo LMS page at ``/demo/lms`` that embeds the tool in an iframe for demo students
(several schools and grades), an instructor and an administrator. That page also implements
the platform side of LTI postMessage storage, so the cookie-less path can be tried.

Demo students come from ``broker/data/demo/oneroster/users.csv`` when it exists (their SIS id
is the roster's ``identifier``, else its ``sourcedId``), else from a few built-in identities.
A demo student's LTI ``sub`` is their SIS id, so the pseudonym of an LTI demo launch equals
the one ``/demo/token`` gives the same student.

Never mounted outside demo mode and tests: it signs whatever it is asked to.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

from broker.settings import Settings
from web.forms import read_form
from web.lti.launch import CLAIM, LIS
from web.lti.registry import PlatformRegistration
from web.lti.routes import LAUNCH_PATH, LOGIN_PATH, LTI_TOOL, render

log = logging.getLogger(__name__)

DEMO_ISSUER = "https://demo.homework-help.invalid"  # the same issuer web.demo_tokens uses
DEMO_CLIENT_ID = "homework-help-demo"
DEMO_DEPLOYMENT_ID = "demo-deployment-1"
AUTHORIZE_PATH = "/platform/authorize"
JWKS_PATH = "/platform/jwks.json"
LMS_PATH = "/demo/lms"
ROSTER = Path(__file__).resolve().parent.parent / "broker" / "data" / "demo" / "oneroster"
ROLES = {
    "student": [LIS + "membership#Learner", LIS + "institution/person#Student"],
    "teacher": [LIS + "membership#Instructor", LIS + "institution/person#Faculty"],
    "admin": [LIS + "institution/person#Administrator", LIS + "membership#Administrator"],
}
LOCALES = [("en-US", "English"), ("es-US", "Español"), ("zh-CN", "中文"), ("fr-FR", "Français")]


@dataclass(frozen=True)
class DemoUser:
    """A demo LMS user; ``id`` is both the login hint and the LTI ``sub``."""

    id: str
    given_name: str
    family_name: str
    kind: str  # student | teacher | admin
    sis_id: str = ""
    school_id: str = ""
    grade: str = ""

    @property
    def label(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def detail(self) -> str:
        if self.kind == "student":
            return f"grade {self.grade or '?'} · school {self.school_id or '?'} · SIS {self.sis_id}"
        return "instructor" if self.kind == "teacher" else "district administrator"


FALLBACK_USERS = (
    DemoUser("demo-1001", "Ana", "García", "student", "demo-1001", "demo-elem-1", "2"),
    DemoUser("demo-1002", "Kenji", "Watanabe", "student", "demo-1002", "demo-k8-1", "7"),
    DemoUser("demo-1003", "Maya", "Johnson", "student", "demo-1003", "demo-ms-1", "7"),
    DemoUser("demo-1004", "Luis", "Hernández", "student", "demo-1004", "demo-hs-1", "11"),
    DemoUser("demo-1005", "Mei", "Chen", "student", "demo-1005", "demo-k12-1", "4"),
)
FALLBACK_STAFF = (
    DemoUser("demo-t-1", "Pat", "Rivera", "teacher"),
    DemoUser("demo-a-1", "Jordan", "Lee", "admin"),
)


def _first(value: str | None) -> str:
    return (value or "").split(",")[0].strip()


def load_demo_users(roster_dir: Path = ROSTER, max_students: int = 12) -> list[DemoUser]:
    """Students spread over schools and grades from the demo OneRoster ``users.csv``, plus an
    instructor and an administrator; built-in identities when the roster is absent."""
    path = roster_dir / "users.csv"
    by_school: dict[str, dict[str, DemoUser]] = {}
    staff: dict[str, DemoUser] = {}
    if path.is_file():
        try:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, csv.Error, UnicodeDecodeError) as exc:
            log.warning("demo roster %s unreadable (%s); using built-in users", path, exc)
            rows = []
        for row in rows:
            role = (row.get("role") or "").strip().lower()
            sis = (row.get("identifier") or "").strip() or (row.get("sourcedId") or "").strip()
            if not sis or (row.get("status") or "active").strip().lower() == "tobedeleted":
                continue
            given = (row.get("givenName") or "").strip() or "Student"
            family = (row.get("familyName") or "").strip()
            school, grade = _first(row.get("orgSourcedIds")), _first(row.get("grades"))
            if role == "student":
                student = DemoUser(sis, given, family, "student", sis, school, grade)
                by_school.setdefault(school, {}).setdefault(grade, student)
            elif role == "teacher" and "teacher" not in staff:
                staff["teacher"] = DemoUser(
                    f"demo-t-{sis}", given, family, "teacher", school_id=school
                )
            elif role in {"administrator", "districtadministrator"} and "admin" not in staff:
                staff["admin"] = DemoUser(f"demo-a-{sis}", given, family, "admin")
    # Round-robin over schools, one new grade per school per round: many schools and grades.
    students: list[DemoUser] = []
    schools = list(by_school.values())
    if len(schools) > max_students:  # spread the picks over the whole list of schools
        step = len(schools) / max_students
        schools = [schools[int(i * step)] for i in range(max_students)]
    queues = []
    for index, grades in enumerate(schools):
        ordered = [grades[g] for g in sorted(grades, key=lambda g: g.zfill(2))]
        start = (index * 3) % len(ordered)
        queues.append(ordered[start:] + ordered[:start])
    while len(students) < max_students and any(queues):
        for queue in queues:
            if queue and len(students) < max_students:
                students.append(queue.pop(0))
    if not students:
        students = list(FALLBACK_USERS)
    students.sort(key=lambda u: (u.school_id, u.grade.zfill(2), u.sis_id))
    teacher, admin = staff.get("teacher", FALLBACK_STAFF[0]), staff.get("admin", FALLBACK_STAFF[1])
    return [*students, teacher, admin]


def registration_for_demo(base_url: str) -> PlatformRegistration:
    """The registration the tool trusts for the demo platform served at ``base_url``."""
    base = base_url.rstrip("/")
    return PlatformRegistration(
        issuer=DEMO_ISSUER,
        client_id=DEMO_CLIENT_ID,
        deployment_ids=frozenset({DEMO_DEPLOYMENT_ID}),
        auth_login_url=base + AUTHORIZE_PATH,
        jwks_url=base + JWKS_PATH,
        name="Demo Schoology",
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DemoPlatform:
    """The fake platform's state: keys, users and the knobs the tests turn.

    ``jwks_cache_control`` is sent with the key set; ``jwks_status`` other than 200 makes the
    key set endpoint fail; ``jwks_hits`` counts fetches.
    """

    def __init__(
        self, base_url: str, tool_base_url: str, users: Iterable[DemoUser] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tool_base_url = tool_base_url.rstrip("/")
        self.registration = registration_for_demo(self.base_url)
        self.users = {u.id: u for u in (load_demo_users() if users is None else users)}
        self.keys: list[RSAKey] = [self.new_key()]
        self.jwks_cache_control = "max-age=300"
        self.jwks_status = 200
        self.jwks_hits = 0

    @staticmethod
    def new_key() -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)

    @property
    def key(self) -> RSAKey:
        """The current signing key (the last published one)."""
        return self.keys[-1]

    def rotate(self, *, keep_old: bool = False) -> RSAKey:
        """Publish a new signing key (dropping the old one unless ``keep_old``)."""
        key = self.new_key()
        self.keys = [*self.keys, key] if keep_old else [key]
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.keys]}

    @property
    def launch_url(self) -> str:
        return self.tool_base_url + LAUNCH_PATH

    # -- tokens ----------------------------------------------------------------------------
    def sign_launch(
        self,
        claims: dict[str, Any],
        *,
        kid: str | None = None,
        alg: str = "RS256",
        key: RSAKey | None = None,
    ) -> str:
        """Sign ``claims`` as this platform. ``alg="none"`` gives an unsigned token and
        ``alg="HS256"`` an HMAC keyed with the platform's *public* key PEM (the classic
        algorithm-confusion attack), both for negative tests."""
        key = key or self.key
        header = {"typ": "JWT", "alg": alg, "kid": kid if kid is not None else key.kid}
        if alg == "RS256":
            return jwt.encode(header, claims, key, algorithms=["RS256"])
        signing_input = f"{_b64(orjson.dumps(header))}.{_b64(orjson.dumps(claims))}"
        if alg == "none":
            return signing_input + "."
        if alg == "HS256":
            secret = key.as_pem(private=False)
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64(mac)}"
        raise ValueError(f"unsupported alg {alg!r}")

    def launch_claims(
        self,
        user: DemoUser | str,
        *,
        nonce: str,
        locale: str = "en-US",
        resource_link_id: str = "demo-link-1",
        target_link_uri: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        """A resource-link launch for ``user`` as Schoology would send it."""
        if isinstance(user, str):
            user = self.users[user]
        issued = int(time.time() if now is None else now)
        roles = list(ROLES[user.kind])
        custom: dict[str, str] = {}
        if user.kind == "student":
            custom = {"student_id": user.sis_id, "grade": user.grade, "school_id": user.school_id}
        elif user.kind == "teacher" and user.school_id:  # a teacher's course is in a school
            custom = {"school_id": user.school_id}
        return {
            "iss": DEMO_ISSUER,
            "aud": DEMO_CLIENT_ID,
            "sub": user.id,
            "iat": issued,
            "exp": issued + 300,
            "nonce": nonce,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "name": user.label,
            CLAIM + "message_type": "LtiResourceLinkRequest",
            CLAIM + "version": "1.3.0",
            CLAIM + "deployment_id": DEMO_DEPLOYMENT_ID,
            CLAIM + "target_link_uri": target_link_uri or self.launch_url,
            CLAIM + "resource_link": {"id": resource_link_id, "title": "Homework Help"},
            CLAIM + "roles": roles,
            CLAIM + "context": {
                "id": "demo-course-1",
                "label": "DEMO",
                "title": "Demo course",
                "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseOffering"],
            },
            CLAIM + "launch_presentation": {"document_target": "iframe", "locale": locale},
            CLAIM + "tool_platform": {
                "guid": "demo-schoology",
                "name": "Demo Schoology",
                "product_family_code": "schoology",
            },
            CLAIM + "custom": custom,
        }

    def login_initiation_url(
        self, user: DemoUser | str, *, locale: str = "en-US", storage: bool = True
    ) -> str:
        """The URL a platform frames to start a launch (OIDC third-party login initiation)."""
        user_id = user if isinstance(user, str) else user.id
        query = {
            "iss": DEMO_ISSUER,
            "login_hint": user_id,
            "target_link_uri": self.launch_url,
            "lti_message_hint": f"demo-link-1|{locale}",
            "client_id": DEMO_CLIENT_ID,
            "lti_deployment_id": DEMO_DEPLOYMENT_ID,
        }
        if storage:
            query["lti_storage_target"] = "_parent"
        return self.tool_base_url + LOGIN_PATH + "?" + urlencode(query)

    # -- handlers --------------------------------------------------------------------------
    async def handle_jwks(self, request: web.Request) -> web.Response:
        self.jwks_hits += 1
        if self.jwks_status != 200:
            return web.Response(status=self.jwks_status, text="unavailable")
        return web.json_response(self.jwks(), headers={"Cache-Control": self.jwks_cache_control})

    async def handle_authorize(self, request: web.Request) -> web.Response:
        """The OIDC authorization endpoint: check the request, auto-post the id_token."""
        params: dict[str, str] = dict(request.query)
        if request.method == "POST":
            form = await read_form(request)
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        problems = []
        if params.get("client_id") != DEMO_CLIENT_ID:
            problems.append("unknown client_id")
        if params.get("redirect_uri") != self.launch_url:
            problems.append("redirect_uri is not registered")
        if params.get("response_type") != "id_token" or "openid" not in params.get(
            "scope", ""
        ).split():
            problems.append("response_type must be id_token and scope openid")
        if params.get("response_mode") != "form_post":
            problems.append("response_mode must be form_post")
        if not params.get("nonce") or not params.get("state"):
            problems.append("nonce and state are required")
        user = self.users.get(params.get("login_hint", ""))
        if user is None:
            problems.append("unknown login_hint")
        if problems or user is None:
            return web.Response(status=400, text="demo platform: " + "; ".join(problems))
        link, _, locale = params.get("lti_message_hint", "").partition("|")
        claims = self.launch_claims(
            user, nonce=params["nonce"], locale=locale or "en-US",
            resource_link_id=link or "demo-link-1",
        )
        return render(
            "autopost.html",
            locale or None,
            action=self.launch_url,
            fields={"id_token": self.sign_launch(claims), "state": params["state"]},
        )

    async def handle_lms(self, request: web.Request) -> web.Response:
        def rows(kind: str) -> list[dict[str, str]]:
            return [
                {"label": u.label, "detail": u.detail, "login_url": self.login_initiation_url(u)}
                for u in self.users.values() if u.kind == kind
            ]

        return render(
            "demo_lms.html",
            request.headers.get("Accept-Language", "en").split(",")[0],
            locales=LOCALES,
            groups=[
                ("Students", rows("student")),
                ("Instructors", rows("teacher")),
                ("Administrators", rows("admin")),
            ],
        )


DEMO_PLATFORM: web.AppKey[DemoPlatform] = web.AppKey("demo_platform", DemoPlatform)


def setup_demo_platform(
    app: web.Application,
    settings: Settings,
    tool_base_url: str,
    *,
    users: Iterable[DemoUser] | None = None,
) -> DemoPlatform:
    """Mount the fake Schoology on ``app`` (served at ``tool_base_url`` too) and make the LTI
    tool on the same app trust it (now if :func:`web.lti.setup_lti` already ran, else at
    start-up). ``users`` defaults to :func:`load_demo_users`."""
    base = (settings.public_url or tool_base_url).rstrip("/")
    platform = DemoPlatform(base, tool_base_url, users)
    app[DEMO_PLATFORM] = platform
    app.router.add_get(JWKS_PATH, platform.handle_jwks)
    app.router.add_get(AUTHORIZE_PATH, platform.handle_authorize)
    app.router.add_post(AUTHORIZE_PATH, platform.handle_authorize)
    app.router.add_get(LMS_PATH, platform.handle_lms)

    def trust(target: web.Application) -> bool:
        tool = target.get(LTI_TOOL)
        if tool is None:
            return False
        if not any(r == platform.registration for r in tool.registry):
            tool.registry.add(platform.registration)
        return True

    if not trust(app):

        async def on_startup(started: web.Application) -> None:
            if not trust(started):
                log.warning("demo platform mounted without the LTI tool (setup_lti not called)")

        app.on_startup.append(on_startup)
    log.info("demo platform at %s%s (issuer %s)", base, LMS_PATH, DEMO_ISSUER)
    return platform
