"""Who is calling, and what they may see: the one reading of identity claims.

An :class:`Identity` is built once, from a verified token (:func:`broker.tokens.verify`), an
account (:meth:`broker.accounts.Account.identity`) or a launch, and every other part of the
product (socket.io, statistics, the staff API, pages) reads its typed parts instead of the
raw claims:

* :attr:`Identity.scope` — a staff member's or teacher's :class:`Scope`: ``district``
  (everything), ``school`` (one school; a teacher is always held to their own school) or
  ``vendor`` (a vendor manager: their vendor's figures, never a student's records). ``None``
  for students, tutors and for staff whose claims name no usable scope: such staff are
  refused everywhere a scope is needed.
* :attr:`Identity.tutor` — a tutor's vendor, languages and display name.
* :attr:`Identity.learner` — what the launch said of a student (school, grade, student
  groups, locale, first name, and the roster id when the launch's SIS number matched the
  imported roster), never an LMS id, name or email.

Claims issued and read (nothing else is read):

=========  =====================================================================
role       claims
=========  =====================================================================
student    ``school_id``, ``grade``, ``groups``, ``locale``, ``given_name``,
           ``test``, ``issuer``, ``roster_id``
tutor      ``vendor``, ``languages``, ``display_name``, ``source``, ``profile``
staff      ``scope``, ``scope_id``, ``display_name``, ``source``
teacher    ``scope_id`` (their school), ``display_name``, ``source``
=========  =====================================================================

Guarantee: the parsing here is total. Malformed claims never raise; they give the narrowest
reading (no scope, no vendor, no languages), so a forged-but-signed or outdated token can
only lose access, never widen it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from broker.errors import NotAllowed

_F = TypeVar("_F", bound="_Scopable")


class _Scopable(Protocol):
    """Filters that a scope can narrow (``broker.stats.Filters`` and the like)."""

    @property
    def school_id(self) -> str | None: ...

    @property
    def vendor(self) -> str | None: ...

    def with_(self: _F, **changes: Any) -> _F: ...

Role = Literal["student", "tutor", "staff", "teacher"]
ROLES: frozenset[str] = frozenset({"student", "tutor", "staff", "teacher"})
STAFF_ROLES: frozenset[str] = frozenset({"staff", "teacher"})
ScopeKind = Literal["district", "school", "vendor"]
SCOPE_KINDS: tuple[ScopeKind, ...] = ("district", "school", "vendor")

ACCOUNT_SOURCE = "account"  # claims["source"] of identities made from an account
LTI_SOURCE = "lti"
MAX_ID = 64


def _text(value: object, limit: int = MAX_ID) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        text = str(value).strip()
        if text and len(text) <= limit and text.isprintable():
            return text
    return None


@dataclass(frozen=True, slots=True)
class Scope:
    """What part of the district a staff member or teacher may see."""

    kind: ScopeKind
    id: str | None = None  # the school or vendor id; None only for ``district``

    @classmethod
    def district(cls) -> Scope:
        return cls("district", None)

    @classmethod
    def parse(cls, kind: object, ident: object) -> Scope | None:
        """The scope named by ``kind`` and ``ident``, or ``None`` if they name no usable one
        (an unknown kind, or a school or vendor scope without an id)."""
        if kind == "district":
            return cls.district()
        if kind in ("school", "vendor"):
            text = _text(ident)
            return cls(kind, text) if text else None
        return None

    @property
    def school(self) -> str | None:
        """The one school this scope is held to, or ``None``."""
        return self.id if self.kind == "school" else None

    @property
    def vendor(self) -> str | None:
        """The one vendor this scope is held to, or ``None``."""
        return self.id if self.kind == "vendor" else None

    @property
    def reads_student_records(self) -> bool:
        """District and school staff may read students' records (school: their own school's
        only); vendor managers never do."""
        return self.kind in ("district", "school")

    def as_claims(self) -> dict[str, Any]:
        return {"scope": self.kind, "scope_id": self.id}

    def label(self) -> str:
        return f"{self.kind}:{self.id or '*'}"

    def narrow(self, filters: _F) -> _F:
        """``filters`` held to this scope: ``district`` unchanged, ``school`` forced to its
        school, ``vendor`` to its vendor; asking for another one is refused (see
        :meth:`held_to`)."""
        return filters.with_(
            school_id=self.held_to("school", filters.school_id),
            vendor=self.held_to("vendor", filters.vendor),
        )

    def held_to(self, kind: ScopeKind, asked: str | None) -> str | None:
        """The value a ``kind`` filter (``school`` or ``vendor``) must take for this scope.

        ``district`` keeps whatever was asked. A scope of that kind forces its own id, and
        asking explicitly for another one is refused (:class:`NotAllowed`), never silently
        answered with one's own figures. Other kinds leave the filter as asked.
        """
        if self.kind != kind:
            return asked
        if asked is not None and asked != self.id:
            raise NotAllowed(f"this account may only see its own {kind}", parameter=kind)
        return self.id


@dataclass(frozen=True, slots=True)
class Tutor:
    """A tutor as the broker sees them: one vendor, the languages they tutor in, and
    ``profile``: the scheduler's id for them (``tutor_profiles.tutor_id``), whose booked
    sessions they run; the account id when the account names no profile."""

    id: str
    vendor: str
    languages: tuple[str, ...]
    display_name: str
    profile: str = ""

    @property
    def scheduler_id(self) -> str:
        return self.profile or self.id

    def queues(self) -> list[str]:
        return [f"{self.vendor}:{lang}" for lang in self.languages]


@dataclass(frozen=True, slots=True)
class Learner:
    """What a student's launch told the broker (never an LMS id, a name or an email,
    except the first name, which tutors see only when the district turns it on)."""

    school_id: str | None = None
    grade: int | None = None
    groups: tuple[str, ...] = ()
    locale: str | None = None
    given_name: str = ""
    test: bool = False
    issuer: str | None = None
    # The roster's id of this student (``students.sourced_id``), set by the launch when
    # its SIS number matched the roster: how a launch finds its booked sessions. Only the
    # student's own token carries it; nobody else is ever shown it.
    roster_id: str | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on the other end of a connection or request.

    ``subject`` is the student's pseudonym, a tutor's or staff member's account id.
    ``claims`` is what the token carries (see the module docstring); the typed views
    :attr:`scope`, :attr:`tutor`, :attr:`learner` and :attr:`source` are derived from it once,
    when the identity is made.
    """

    role: str
    subject: str
    claims: dict[str, Any] = field(default_factory=dict)
    scope: Scope | None = field(init=False, compare=False, repr=False)
    tutor: Tutor | None = field(init=False, compare=False, repr=False)
    learner: Learner | None = field(init=False, compare=False, repr=False)
    source: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        claims = self.claims
        set_ = object.__setattr__
        set_(self, "source", _text(claims.get("source"), 16) or "")
        set_(self, "scope", _scope(self.role, claims))
        set_(self, "tutor", _tutor(self.subject, claims) if self.role == "tutor" else None)
        set_(self, "learner", _learner(claims) if self.role == "student" else None)

    @property
    def display_name(self) -> str:
        return _text(self.claims.get("display_name"), 100) or ""

    @property
    def tutor_profile(self) -> str | None:
        """A tutor's id in the scheduler (:attr:`Tutor.scheduler_id`: their linked profile,
        else their account id); None for anyone else."""
        return self.tutor.scheduler_id if self.tutor is not None else None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    def require_scope(self) -> Scope:
        """The staff scope, or :class:`NotAllowed` for anyone without a usable one."""
        if self.scope is None:
            if self.role == "teacher":
                raise NotAllowed("your account names no school")
            raise NotAllowed("this page is for district, school or vendor staff")
        return self.scope

    def view(self) -> dict[str, Any]:
        """What ``/api/me`` shows the caller about themselves."""
        out: dict[str, Any] = {
            "role": self.role, "id": self.subject, "display_name": self.display_name or None,
        }
        if self.tutor is not None:
            out.update(vendor=self.tutor.vendor, languages=list(self.tutor.languages))
        elif self.is_staff:
            out.update(
                scope=self.scope.kind if self.scope else None,
                scope_id=self.scope.id if self.scope else None,
            )
        return out


def _scope(role: str, claims: dict[str, Any]) -> Scope | None:
    if role == "teacher":
        school = _text(claims.get("scope_id"))
        return Scope("school", school) if school else None
    if role != "staff":
        return None
    return Scope.parse(claims.get("scope"), claims.get("scope_id"))


def _tutor(subject: str, claims: dict[str, Any]) -> Tutor:
    raw = claims.get("languages")
    languages = tuple(
        x for x in (raw if isinstance(raw, list | tuple) else ()) if isinstance(x, str) and x
    )
    return Tutor(
        id=subject,
        vendor=_text(claims.get("vendor")) or "",
        languages=languages,
        display_name=_text(claims.get("display_name"), 100) or "Tutor",
        profile=_text(claims.get("profile")) or "",
    )


def _learner(claims: dict[str, Any]) -> Learner:
    grade = claims.get("grade")
    groups = claims.get("groups")
    return Learner(
        school_id=_text(claims.get("school_id")),
        grade=grade if isinstance(grade, int) and not isinstance(grade, bool) else None,
        groups=tuple(sorted(str(g) for g in groups)) if isinstance(groups, list | tuple) else (),
        locale=_text(claims.get("locale"), 35),
        given_name=_text(claims.get("given_name"), 100) or "",
        test=claims.get("test") is True,
        issuer=_text(claims.get("issuer"), 500),
        roster_id=_text(claims.get("roster_id")),
    )


def staff_identity(
    subject: str, scope: Scope | None, *, role: str = "staff", source: str,
    display_name: str = "",
) -> Identity:
    """A staff (or teacher, with a school scope) identity; the one place that issues scope
    claims. ``None``: no usable scope (refused wherever one is needed)."""
    claims: dict[str, Any] = {
        "source": source, "display_name": display_name,
        **(scope.as_claims() if scope else {"scope": None, "scope_id": None}),
    }
    return Identity(role, subject, claims)


def tutor_identity(
    subject: str, vendor: str, languages: list[str] | tuple[str, ...], *, source: str,
    display_name: str = "", profile: str | None = None,
) -> Identity:
    """A tutor identity; the one place that issues tutor claims."""
    claims: dict[str, Any] = {
        "source": source, "display_name": display_name, "vendor": vendor,
        "languages": list(languages),
    }
    if profile:
        claims["profile"] = profile
    return Identity("tutor", subject, claims)


def student_identity(subject: str, learner: Learner) -> Identity:
    """A student identity; the one place that issues student claims."""
    claims: dict[str, Any] = {
        "school_id": learner.school_id,
        "grade": learner.grade,
        "groups": list(learner.groups),
        "locale": learner.locale,
        "given_name": learner.given_name,
        "test": learner.test,
        "issuer": learner.issuer,
        "roster_id": learner.roster_id,
    }
    return Identity("student", subject, claims)
