"""Issue #11's changes over HTTP: removing a student from a group, withdrawing an
enrolment (staff and the parent's link), an owner's feeds listed and revoked one by one,
and a vendor manager publishing availability as JSON and CSV; typed problem bodies."""

from __future__ import annotations

import pytest

from tests.scheduler.conftest import HOME_OFFER
from tests.scheduler.test_api import DESIGNEE, DISTRICT, SERIES, Client, call, prepare
from tests.scheduler.test_api import client as api_client  # noqa: F401 - a fixture

P = "/api/scheduler"
VENDOR = {"X-Who": "staff:vendor:tutorco"}


@pytest.fixture
def http(api_client: Client) -> Client:  # noqa: F811 - the fixture imported above
    """test_api's app and fake sign-in (``X-Who``)."""
    return api_client


async def test_leaving_withdrawing_and_feeds_over_http(http: Client) -> None:
    ids = await prepare(http)
    status, _ = await call(http, "POST", f"{P}/series", DESIGNEE,
                           {"group": ids["group"], **SERIES, "start": "15:30"})
    assert status == 201
    remove = f"{P}/groups/{ids['group']}/members/st1/remove"
    status, problem = await call(http, "POST", remove, {"X-Who": "staff:school:ms"}, {})
    assert (status, problem["code"]) == (403, "not_allowed")
    status, problem = await call(http, "POST", remove, DESIGNEE, {"from": "2026-08-01"})
    assert (status, problem["code"], problem["field"]) == (400, "invalid_payload", "from")
    status, done = await call(http, "POST", remove, DESIGNEE, {"from": "2026-10-29"})
    assert status == 200 and done["group"]["students"] == ["st2"]
    assert len(done["continued_as"]) == 1

    withdraw = f"{P}/offers/{ids['offer']}/enrolments/st2/withdraw"
    status, done = await call(http, "POST", withdraw, DESIGNEE, {"reason": "left school"})
    assert status == 200 and len(done["cancelled"]) == 34  # the group is empty from 29 Oct
    status, problem = await call(http, "POST", withdraw, DESIGNEE, {})
    assert (status, problem["code"]) == (404, "not_found")
    status, history = await call(http, "GET", f"{P}/students/st2/enrolments", DESIGNEE)
    assert status == 200
    assert [(e["withdrawn_by"], e["withdraw_reason"]) for e in history["enrolments"]] == [
        ("u-school-hs", "left school")]
    status, _ = await call(http, "GET", f"{P}/students/st2/enrolments", VENDOR)
    assert status == 403

    status, offer = await call(http, "POST", f"{P}/offers", DISTRICT, HOME_OFFER)
    status, link = await call(http, "POST", f"{P}/parent-links", DESIGNEE,
                              {"student": "st1", "offer": offer["id"], "language": "en"})
    status, problem = await call(http, "POST", f"/api/parent/{link['token']}x/withdraw", {},
                                 {})
    assert (status, problem["code"]) == (403, "link_invalid")
    status, problem = await call(http, "POST", f"/api/parent/{link['token']}/withdraw", {},
                                 {})
    assert (status, problem["code"], problem["field"]) == (400, "invalid_payload", "offer")

    status, made = await call(http, "POST", f"{P}/feeds", DESIGNEE,
                              {"owner_kind": "student", "owner": "st1"})
    assert (await http.get(made["url"])).status == 200
    status, listed = await call(http, "GET", f"{P}/feeds/student/st1", DESIGNEE)
    assert status == 200 and len(listed["feeds"]) == 1 and listed["feeds"][0]["last_used_at"]
    assert made["token"] not in str(listed)
    feed_id = listed["feeds"][0]["id"]
    status, _ = await call(http, "DELETE", f"{P}/feeds/student/st1/{feed_id}", DESIGNEE)
    assert status == 200
    assert (await http.get(made["url"])).status == 404
    status, problem = await call(http, "POST", f"{P}/feeds/revoke", DESIGNEE,
                                 {"token": made["token"]})
    assert (status, problem["code"]) == (404, "not_found")


async def test_a_vendor_manager_publishes_availability_as_json_and_csv(http: Client) -> None:
    await prepare(http)
    status, _ = await call(http, "PUT", f"{P}/tutors/t1/availability", VENDOR, {
        "weekly": [{"weekday": "mon", "start": "15:00", "end": "18:00"}],
        "exceptions": [{"date": "2026-11-02", "available": False}]})
    assert status == 200
    status, _ = await call(http, "PUT", f"{P}/tutors/h9", DISTRICT, {
        "vendor": "booknook", "languages": ["en"], "timezone": "America/Los_Angeles"})
    status, problem = await call(http, "PUT", f"{P}/tutors/h9/availability", VENDOR,
                                 {"weekly": []})
    assert (status, problem["code"]) == (403, "not_allowed")
    csv = b"tutor,weekday,start,end\nt1,tue,15:00,17:00\nt1,wed,17:00,15:00\n"
    status, problem = await call(http, "POST", f"{P}/availability/import?format=csv",
                                 VENDOR, data=csv)
    assert (status, problem["code"], problem["line"]) == (400, "invalid_payload", 3)
    status, done = await call(http, "POST", f"{P}/availability/import?format=csv", VENDOR,
                              data=csv.replace(b"17:00,15:00", b"15:00,17:00"))
    assert (status, done["windows"]) == (200, 2)
    status, problem = await call(http, "POST", f"{P}/availability/import?format=csv",
                                 VENDOR, data=b"tutor,weekday,start,end\nh9,mon,15:00,16:00\n")
    assert (status, problem["code"]) == (403, "not_allowed")
