"""The role mapping table (see web.lti.launch)."""

from __future__ import annotations

import pytest

from web.lti.errors import UnsupportedRole
from web.lti.launch import map_roles, role_of

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"

TABLE = [
    (LIS + "membership#Learner", "student"),
    (LIS + "membership/Learner#NonCreditLearner", "student"),
    (LIS + "institution/person#Student", "student"),
    (LIS + "institution/person#Learner", "student"),
    ("Learner", "student"),
    (LIS + "membership#Instructor", "teacher"),
    (LIS + "membership/Instructor#TeachingAssistant", "teacher"),
    (LIS + "institution/person#Faculty", "teacher"),
    (LIS + "institution/person#Instructor", "teacher"),
    ("Instructor", "teacher"),
    (LIS + "membership#Administrator", "staff"),
    (LIS + "membership/Administrator#ExternalDeveloper", "staff"),
    (LIS + "institution/person#Administrator", "staff"),
    (LIS + "system/person#Administrator", "staff"),
    (LIS + "system/person#SysAdmin", "staff"),
    ("Administrator", "staff"),
    (LIS + "membership#Mentor", None),
    (LIS + "membership#ContentDeveloper", None),
    (LIS + "institution/person#Guest", None),
    (LIS + "system/person#User", None),
    ("http://purl.imsglobal.org/vocab/lti/system/person#TestUser", None),
    ("urn:example:role#Learner", None),
    ("", None),
]


@pytest.mark.parametrize(("uri", "role"), TABLE)
def test_role_of(uri: str, role: str | None) -> None:
    assert role_of(uri) == role


def test_highest_privilege_wins() -> None:
    learner, instructor, admin = (
        LIS + "membership#Learner", LIS + "membership#Instructor",
        LIS + "institution/person#Administrator",
    )
    assert map_roles([learner, admin]) == "staff"
    assert map_roles([learner, instructor]) == "teacher"
    assert map_roles([instructor, admin, learner]) == "staff"
    assert map_roles([LIS + "membership#Mentor", learner]) == "student"


def test_no_mappable_role_is_refused() -> None:
    with pytest.raises(UnsupportedRole):
        map_roles([LIS + "membership#Mentor"])
