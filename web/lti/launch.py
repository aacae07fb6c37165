"""What a validated launch tells the broker: :class:`LaunchData`, and the role mapping.

Role mapping (LTI 1.3 / LIS v2 role URIs; the short context names such as ``Learner`` are
accepted too):

=====================================================  ========
role URI (any of)                                       role
=====================================================  ========
``.../membership#Administrator`` (context),             staff
``.../institution/person#Administrator``,
``.../system/person#Administrator``, ``#SysAdmin``,
any ``...#Administrator`` sub-role
``.../membership#Instructor``, ``membership/Instructor  teacher
#TeachingAssistant``, ``.../institution/person#Faculty``
or ``#Instructor``
``.../membership#Learner`` (and its sub-roles),         student
``.../institution/person#Student`` or ``#Learner``
=====================================================  ========

**Several roles: the highest privilege wins** (staff > teacher > student). Roles are asserted
by the platform's signature, so this is not an escalation path, and the alternative would put
an adult (an administrator enrolled as a learner in a training course) into a queue of minors
as a "student". A launch whose roles map to none of these is refused (``unsupported_role``).
``http://purl.imsglobal.org/vocab/lti/system/person#TestUser`` sets ``is_test_user``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from web.lti.errors import MissingRoles, UnsupportedRole

Role = Literal["student", "teacher", "staff"]

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
ROLES_CLAIM = CLAIM + "roles"
TEST_USER = "http://purl.imsglobal.org/vocab/lti/system/person#TestUser"
LIS = "http://purl.imsglobal.org/vocab/lis/v2/"

_RANK: dict[Role, int] = {"student": 1, "teacher": 2, "staff": 3}
_TEACHER_NAMES = {"Instructor", "TeachingAssistant", "Faculty"}
_STUDENT_NAMES = {"Learner", "Student"}


def role_of(uri: str) -> Role | None:
    """The broker role for one LTI role URI or short name; ``None`` if it grants none."""
    uri = uri.strip()
    if not uri:
        return None
    if uri.startswith(LIS):
        path, _, name = uri[len(LIS) :].partition("#")
        kind = path.split("/", 1)[0]
        parent = path.split("/", 1)[1] if "/" in path else ""
        if kind not in {"membership", "institution", "system"}:
            return None
    elif ":" in uri or "/" in uri:
        return None  # a foreign vocabulary
    else:
        kind, parent, name = "membership", "", uri  # deprecated short context role
    if name in {"Administrator", "SysAdmin"} or parent in {"Administrator", "person/Administrator"}:
        return "staff"
    if kind == "system":
        return None
    if name in _TEACHER_NAMES or parent == "Instructor":
        return "teacher"
    if name in _STUDENT_NAMES or parent == "Learner":
        return "student"
    return None


def map_roles(roles: Iterable[str]) -> Role:
    """The highest-privilege broker role among ``roles`` (see the module docstring)."""
    mapped = [r for r in (role_of(uri) for uri in roles) if r is not None]
    if not mapped:
        raise UnsupportedRole("no role maps to student, teacher or staff")
    return max(mapped, key=_RANK.__getitem__)


@dataclass(frozen=True)
class LaunchData:
    """A validated LTI resource-link launch.

    ``subject`` is the platform's opaque user id (``sub``): pseudonymise it with ``issuer``
    before storing. ``given_name`` is for the widget's greeting only. ``custom`` keys are
    lowercased (Schoology lowercases them); expect ``grade``, ``school_id`` and ``student_id``
    (the SIS id, from ``$com.schoology.User.uniqueId``).
    """

    issuer: str
    subject: str
    client_id: str
    deployment_id: str
    role: Role
    roles: tuple[str, ...]
    is_test_user: bool
    locale: str | None
    custom: dict[str, str]
    context_id: str | None
    context_title: str | None
    given_name: str | None
    resource_link_id: str
    target_link_uri: str

    @property
    def context(self) -> dict[str, str | None]:
        return {"id": self.context_id, "title": self.context_title}


def _str(value: object, max_len: int = 256) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:max_len] if value else None


def roles_claim(claims: Mapping[str, Any]) -> list[str]:
    """The roles claim as a list of strings; :class:`MissingRoles` if absent or empty."""
    roles = claims.get(ROLES_CLAIM)
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise MissingRoles("roles claim missing, empty or not a list of strings")
    return roles


def custom_params(claims: Mapping[str, Any]) -> dict[str, str]:
    """Custom parameters with lowercased keys; unsubstituted ``$Variables`` are dropped."""
    raw = claims.get(CLAIM + "custom")
    if not isinstance(raw, dict):
        return {}
    out: dict[str, str] = {}
    for key, value in raw.items():
        text = _str(value, 512)
        if not isinstance(key, str) or text is None or text.startswith("$"):
            continue
        out[key.strip().lower()[:64]] = text
    return out


def launch_from_claims(claims: Mapping[str, Any], client_id: str) -> LaunchData:
    """Map validated claims to :class:`LaunchData` (signature and claims already checked)."""
    roles = roles_claim(claims)
    context = claims.get(CLAIM + "context")
    context = context if isinstance(context, dict) else {}
    link = claims.get(CLAIM + "resource_link")
    link = link if isinstance(link, dict) else {}
    presentation = claims.get(CLAIM + "launch_presentation")
    presentation = presentation if isinstance(presentation, dict) else {}
    return LaunchData(
        issuer=str(claims["iss"]),
        subject=str(claims["sub"]),
        client_id=client_id,
        deployment_id=str(claims[CLAIM + "deployment_id"]),
        role=map_roles(roles),
        roles=tuple(roles),
        is_test_user=TEST_USER in roles,
        locale=_str(presentation.get("locale"), 35),
        custom=custom_params(claims),
        context_id=_str(context.get("id")),
        context_title=_str(context.get("title")),
        given_name=_str(claims.get("given_name"), 80),
        resource_link_id=str(link.get("id", "")),
        target_link_uri=str(claims.get(CLAIM + "target_link_uri", "")),
    )
