"""Accounts: validation against the catalog, unique usernames, disable/enable/reset."""

from __future__ import annotations

from typing import Any

import pytest

from broker.accounts import AccountNotFound, Accounts, InvalidAccount, UsernameTaken
from broker.catalog_source import load_catalog
from broker.db.models import metadata
from broker.passwords import WeakPassword
from tests.accounts.conftest import PASSWORD


async def test_tutor_account_carries_vendor_and_languages(accounts: Accounts) -> None:
    a = await accounts.add("Ms.X", PASSWORD, role="tutor", display_name="Ms. X",
                           vendor="paper", languages=["en", "ZH", "en"])
    assert a.username == "ms.x" and a.languages == ("en", "zh")
    identity = a.identity()
    assert identity.role == "tutor" and identity.subject == a.id
    assert identity.claims["vendor"] == "paper" and identity.claims["languages"] == ["en", "zh"]
    assert identity.claims["display_name"] == "Ms. X"
    assert "password" not in str(a.as_dict()) and "scrypt" not in str(a)


@pytest.mark.parametrize("kwargs,field", [
    ({"vendor": "nope", "languages": ["en"]}, "vendor"),
    ({"vendor": None, "languages": ["en"]}, "vendor"),
    ({"vendor": "tutorcom", "languages": ["zh"]}, "languages"),  # Tutor.com: en, es only
    ({"vendor": "paper", "languages": []}, "languages"),
    ({"vendor": "paper", "languages": ["english"]}, "languages"),
])
async def test_tutor_needs_a_catalog_vendor_and_its_languages(
    accounts: Accounts, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidAccount) as err:
        await accounts.add("tutor1", PASSWORD, role="tutor", **kwargs)
    assert err.value.detail["field"] == field
    assert await accounts.list_accounts() == []


async def test_scheduled_vendor_tutor_links_to_their_scheduler_profile(
    accounts: Accounts,
) -> None:
    """A tutor of a scheduled (home-based) vendor gets an account; naming a profile makes
    it the identity's scheduler id, which must exist and be of the same vendor."""
    async with accounts.engine.begin() as conn:
        await conn.execute(metadata.tables["tutor_profiles"].insert(), [
            {"tutor_id": "bn-7", "vendor": "booknook", "display_name": "Ms. B",
             "languages": "en", "accommodations": "", "timezone": "America/Los_Angeles"},
        ])
    for vendor, profile in (("booknook", "nope"), ("paper", "bn-7")):
        with pytest.raises(InvalidAccount) as err:
            await accounts.add("bn.tutor", PASSWORD, role="tutor", vendor=vendor,
                               languages=["en"], tutor_profile=profile)
        assert err.value.detail["field"] == "tutor_profile"
    a = await accounts.add("bn.tutor", PASSWORD, role="tutor", vendor="booknook",
                           languages=["en"], tutor_profile="bn-7")
    tutor = a.identity().tutor
    assert tutor is not None and tutor.scheduler_id == "bn-7" and tutor.id == a.id
    plain = await accounts.add("paper.tutor", PASSWORD, role="tutor", vendor="paper",
                               languages=["en"])
    assert plain.identity().tutor is not None
    assert plain.identity().tutor.scheduler_id == plain.id  # type: ignore[union-attr]


@pytest.mark.parametrize("scope,scope_id,ok", [
    ("district", None, True), ("school", "elem", True), ("vendor", "tutorcom", True),
    ("district", "elem", False), ("school", None, False), ("vendor", "acme", False),
    ("region", "East", False), (None, None, False),
])
async def test_staff_scopes(accounts: Accounts, scope: str | None, scope_id: str | None,
                            ok: bool) -> None:
    if ok:
        a = await accounts.add("staff1", PASSWORD, role="staff", scope=scope, scope_id=scope_id)
        assert a.identity().claims["scope"] == scope
        assert a.identity().claims["scope_id"] == scope_id
    else:
        with pytest.raises(InvalidAccount):
            await accounts.add("staff1", PASSWORD, role="staff", scope=scope, scope_id=scope_id)


async def test_other_roles_and_bad_usernames_are_refused(accounts: Accounts) -> None:
    with pytest.raises(InvalidAccount):
        await accounts.add("kid1", PASSWORD, role="student")
    for name in ("ab", "-dash", "has space", "x" * 65):
        with pytest.raises(InvalidAccount):
            await accounts.add(name, PASSWORD, role="staff", scope="district")
    with pytest.raises(WeakPassword):
        await accounts.add("staff1", "short", role="staff", scope="district")


async def test_usernames_are_unique_case_insensitively(migrated: str, engine_of: Any) -> None:
    accounts = Accounts(engine_of(migrated), load_catalog())
    await accounts.add("Same.Name", PASSWORD, role="staff", scope="district")
    with pytest.raises(UsernameTaken) as err:
        await accounts.add("same.name", PASSWORD, role="tutor", vendor="paper", languages=["en"])
    assert err.value.http_status == 409
    assert len(await accounts.list_accounts()) == 1


async def test_authenticate_disable_enable_reset(accounts: Accounts) -> None:
    a = await accounts.add("tutor1", PASSWORD, role="tutor", vendor="paper", languages=["en"])
    assert a.last_login_at is None
    signed = await accounts.authenticate("TUTOR1", PASSWORD)
    assert signed is not None and signed.last_login_at is not None
    assert (await accounts.get("tutor1")).last_login_at == signed.last_login_at
    assert await accounts.authenticate("tutor1", "wrong password!") is None
    assert await accounts.authenticate("nobody", PASSWORD) is None

    await accounts.disable("tutor1")
    assert not await accounts.is_active(a.id)
    assert await accounts.authenticate("tutor1", PASSWORD) is None
    await accounts.enable("tutor1")
    assert await accounts.is_active(a.id)

    await accounts.reset_password("tutor1", "a brand new passphrase")
    assert await accounts.authenticate("tutor1", PASSWORD) is None
    assert await accounts.authenticate("tutor1", "a brand new passphrase") is not None
    with pytest.raises(AccountNotFound):
        await accounts.disable("nobody")


async def test_list_filters_by_role(accounts: Accounts) -> None:
    await accounts.add("tutor1", PASSWORD, role="tutor", vendor="paper", languages=["en"])
    await accounts.add("staff1", PASSWORD, role="staff", scope="district")
    assert [a.username for a in await accounts.list_accounts()] == ["staff1", "tutor1"]
    assert [a.username for a in await accounts.list_accounts("tutor")] == ["tutor1"]
