"""Tutor and staff accounts: create, list, disable, enable, reset password, sign in.

Guarantees:

* A **tutor** belongs to exactly one vendor of the catalog (on-demand or scheduled) and
  lists at least one language that vendor serves; a tutor account may name its scheduler
  profile (``tutor_profile``, a ``tutor_profiles`` row of the same vendor), whose booked
  sessions it runs; a **staff** account has a scope: ``district`` (everything,
  no scope id), ``school`` (a school id) or ``vendor`` (a catalog vendor id: a vendor
  manager). Anything else is refused with :class:`InvalidAccount` before anything is written.
* Usernames are unique, case-insensitively (stored lower-case): a second ``add`` raises
  :class:`UsernameTaken`, also when two processes race (the unique index decides).
* Passwords are stored only as scrypt hashes (:mod:`broker.passwords`); no function here
  returns a hash. :class:`Account` has no password field.
* :meth:`Accounts.authenticate` answers the same ``None`` for an unknown username, a wrong
  password and a disabled account, and spends one scrypt derivation in each case.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import passwords
from broker.db.models import metadata
from broker.errors import Conflict, InvalidPayload, NotFound
from broker.identity import (
    ACCOUNT_SOURCE,
    SCOPE_KINDS,
    Identity,
    Scope,
    staff_identity,
    tutor_identity,
)
from routing.catalog import Catalog

ROLES = ("tutor", "staff")
SCOPES = SCOPE_KINDS
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{2,63}$")
_IDENT = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
users = metadata.tables["users"]
tutor_profiles = metadata.tables["tutor_profiles"]


class InvalidAccount(InvalidPayload):
    code = "invalid_account"


class UsernameTaken(Conflict):
    code = "username_taken"


class AccountNotFound(NotFound):
    code = "account_not_found"


@dataclass(frozen=True, slots=True)
class Account:
    """An account as the rest of the broker sees it (never the password hash)."""

    id: str
    username: str
    display_name: str
    role: str
    vendor_id: str | None
    languages: tuple[str, ...]
    scope: str | None
    scope_id: str | None
    disabled: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None
    tutor_profile: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> Account:
        return cls(
            id=row["id"],
            username=row["username"],
            display_name=row["display_name"],
            role=row["role"],
            vendor_id=row["vendor_id"],
            languages=tuple(x for x in (row["languages"] or "").split(",") if x),
            scope=row["scope"],
            scope_id=row["scope_id"],
            disabled=bool(row["disabled"]),
            created_at=row["created_at"],
            last_login_at=row["last_login_at"],
            tutor_profile=row.get("tutor_profile"),
        )

    def identity(self) -> Identity:
        """The identity a signed-in session and its socket.io connections carry."""
        if self.role == "tutor":
            return tutor_identity(
                self.id, self.vendor_id or "", self.languages, source=ACCOUNT_SOURCE,
                display_name=self.display_name, profile=self.tutor_profile,
            )
        return staff_identity(
            self.id, Scope.parse(self.scope, self.scope_id), source=ACCOUNT_SOURCE,
            display_name=self.display_name,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "display_name": self.display_name,
            "role": self.role,
            "vendor": self.vendor_id,
            "languages": list(self.languages),
            "scope": self.scope,
            "scope_id": self.scope_id,
            "tutor_profile": self.tutor_profile,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat(),
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


def normalise_username(username: str) -> str:
    return username.strip().lower()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Accounts:
    """The account store over one engine, validating against one vendor catalog."""

    def __init__(self, engine: AsyncEngine, catalog: Catalog | None = None) -> None:
        self.engine = engine
        self.catalog = catalog

    # -- validation ---------------------------------------------------------------------
    def _validate(
        self,
        role: str,
        vendor: str | None,
        languages: Sequence[str],
        scope: str | None,
        scope_id: str | None,
    ) -> dict[str, Any]:
        if role == "tutor":
            if scope or scope_id:
                raise InvalidAccount("a tutor has a vendor and languages, not a scope")
            v = self.catalog.vendor(vendor) if self.catalog and vendor else None
            if v is None:
                raise InvalidAccount(
                    f"unknown vendor {vendor!r}", field="vendor", allowed=self._vendor_ids(),
                )
            langs = [lang.strip().lower() for lang in languages if lang.strip()]
            if not langs:
                raise InvalidAccount("a tutor needs at least one language", field="languages")
            wrong = [x for x in langs if not _LANGUAGE.match(x) or not v.serves_language(x)]
            if wrong:
                raise InvalidAccount(
                    f"{v.name} does not serve {', '.join(wrong)}", field="languages",
                    allowed=list(v.languages),
                )
            return {"vendor_id": v.id, "languages": ",".join(dict.fromkeys(langs)),
                    "scope": None, "scope_id": None}
        if role == "staff":
            if vendor or languages:
                raise InvalidAccount("a staff account has a scope, not a vendor or languages")
            if scope not in SCOPES:
                raise InvalidAccount("scope must be district, school or vendor", field="scope")
            if scope == "district":
                if scope_id:
                    raise InvalidAccount("district scope takes no scope id", field="scope_id")
                return {"vendor_id": None, "languages": "", "scope": scope, "scope_id": None}
            if not scope_id or not _IDENT.match(scope_id):
                raise InvalidAccount(f"{scope} scope needs a scope id", field="scope_id")
            known = self.catalog is not None and self.catalog.vendor(scope_id) is not None
            if scope == "vendor" and not known:
                raise InvalidAccount(
                    f"unknown vendor {scope_id!r}", field="scope_id",
                    allowed=self._vendor_ids(),
                )
            return {"vendor_id": None, "languages": "", "scope": scope, "scope_id": scope_id}
        raise InvalidAccount("role must be tutor or staff", field="role")

    def _vendor_ids(self) -> list[str]:
        return [v.id for v in self.catalog.vendors] if self.catalog else []

    async def _check_profile(self, profile: str | None, role: str, vendor: str | None) -> None:
        """A named scheduler profile must exist and be of the tutor's own vendor."""
        if profile is None:
            return
        if role != "tutor":
            raise InvalidAccount("only a tutor account names a tutor profile",
                                 field="tutor_profile")
        async with self.engine.connect() as conn:
            owner = (await conn.execute(
                sa.select(tutor_profiles.c.vendor).where(tutor_profiles.c.tutor_id == profile)
            )).scalar_one_or_none()
        if owner is None or owner != vendor:
            raise InvalidAccount(f"no tutor profile {profile!r} of vendor {vendor!r}",
                                 field="tutor_profile")

    # -- commands -----------------------------------------------------------------------
    async def add(
        self,
        username: str,
        password: str,
        *,
        role: str,
        display_name: str | None = None,
        vendor: str | None = None,
        languages: Sequence[str] = (),
        scope: str | None = None,
        scope_id: str | None = None,
        tutor_profile: str | None = None,
    ) -> Account:
        """Create an account; raise :class:`InvalidAccount`, :class:`UsernameTaken` or
        :class:`~broker.passwords.WeakPassword`. Nothing is written on failure."""
        name = normalise_username(username)
        if not _USERNAME.match(name):
            raise InvalidAccount(
                "a username is 3-64 of a-z 0-9 . _ @ + - and starts with a letter or digit",
                field="username",
            )
        fields = self._validate(role, vendor, languages, scope, scope_id)
        await self._check_profile(tutor_profile, role, fields["vendor_id"])
        fields["tutor_profile"] = tutor_profile
        shown = (display_name or "").strip() or name
        if len(shown) > 100:
            raise InvalidAccount("a display name has at most 100 characters", field="display_name")
        password_hash = await asyncio.to_thread(passwords.hash_password, password)
        row = {
            "id": uuid.uuid4().hex,
            "username": name,
            "display_name": shown,
            "role": role,
            "password_hash": password_hash,
            "disabled": False,
            "created_at": _now(),
            "last_login_at": None,
            **fields,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(users.insert().values(**row))
        except IntegrityError as exc:
            raise UsernameTaken(f"the username {name!r} is taken", username=name) from exc
        return Account.from_row(row)

    async def get(self, username: str) -> Account:
        row = await self._row(users.c.username == normalise_username(username))
        if row is None:
            raise AccountNotFound(f"no account {normalise_username(username)!r}")
        return Account.from_row(row)

    async def by_id(self, account_id: str) -> Account | None:
        row = await self._row(users.c.id == account_id)
        return Account.from_row(row) if row is not None else None

    async def is_active(self, account_id: str) -> bool:
        """True when the account exists and is not disabled (checked on each guarded call)."""
        async with self.engine.connect() as conn:
            disabled = (
                await conn.execute(sa.select(users.c.disabled).where(users.c.id == account_id))
            ).scalar_one_or_none()
        return disabled is not None and not disabled

    async def list_accounts(self, role: str | None = None) -> list[Account]:
        query = sa.select(users).order_by(users.c.role, users.c.username)
        if role is not None:
            query = query.where(users.c.role == role)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [Account.from_row(r) for r in rows]

    async def disable(self, username: str) -> Account:
        """Disable: sign-in is refused and every guarded HTTP call of open sessions fails."""
        return await self._update(username, disabled=True)

    async def enable(self, username: str) -> Account:
        return await self._update(username, disabled=False)

    async def reset_password(self, username: str, password: str) -> Account:
        password_hash = await asyncio.to_thread(passwords.hash_password, password)
        return await self._update(username, password_hash=password_hash)

    async def authenticate(self, username: str, password: str) -> Account | None:
        """The enabled account whose password this is (and stamp ``last_login_at``), else None.

        The same answer and about the same time for unknown, wrong and disabled.
        """
        row = await self._row(users.c.username == normalise_username(username))
        if row is None:
            await asyncio.to_thread(passwords.verify_dummy, password)
            return None
        ok = await asyncio.to_thread(passwords.verify_password, password, row["password_hash"])
        if not ok or row["disabled"]:
            return None
        now = _now()
        async with self.engine.begin() as conn:
            await conn.execute(
                users.update().where(users.c.id == row["id"]).values(last_login_at=now)
            )
        return Account.from_row({**row, "last_login_at": now})

    # -- plumbing -----------------------------------------------------------------------
    async def _row(self, where: sa.ColumnElement[bool]) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(users).where(where))).mappings().first()

    async def _update(self, username: str, **values: Any) -> Account:
        name = normalise_username(username)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                users.update().where(users.c.username == name).values(**values)
            )
        if not result.rowcount:
            raise AccountNotFound(f"no account {name!r}")
        return await self.get(name)
