"""From a Schoology launch to a routed request: the test platform signs a real LTI 1.3
launch, the tool validates it, the widget receives a token, and the student's socket.io
request is routed by the roster's school and grade (never by anything the client claims).
"""

from __future__ import annotations

from urllib.parse import unquote

import aiohttp
import pytest

from broker import stats, tokens
from broker.pseudonym import pseudonym
from tests.broker.conftest import StartServer
from tests.broker.harness import SECRET, Server
from tests.lti.conftest import form_fields
from web.demo_platform import DEMO_ISSUER, DEMO_PLATFORM, DemoUser
from web.demo_tokens import DEMO_ISSUER as DEMO_TOKEN_ISSUER
from web.launch import launch_school_id


async def launch(server: Server, user_id: str, locale: str = "es-US") -> aiohttp.ClientResponse:
    platform = server.test_server.app[DEMO_PLATFORM]  # type: ignore[union-attr]
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[server.url])
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        login_url = platform.login_initiation_url(user_id, locale=locale, storage=False)
        async with http.get(login_url) as page:  # login -> platform authorize (auto-post)
            assert page.status == 200, await page.text()
            action, fields = form_fields(await page.text())
        async with http.post(action, data=fields, allow_redirects=False) as done:
            await done.read()
            return done


async def test_student_launch_reaches_a_routed_request(
    stack_settings, start_server: StartServer, clients: list
) -> None:
    from web.commands.demo_seed import seed

    await seed(stack_settings)  # the demo roster the demo platform's students come from
    server = await start_server(demo=True)
    platform = server.test_server.app[DEMO_PLATFORM]  # type: ignore[union-attr]
    kid = next(u for u in platform.users.values() if u.kind == "student" and u.grade in ("7", "07"))

    done = await launch(server, kid.id)
    assert done.status == 303
    location = done.headers["Location"]
    assert location.startswith("/widget") and "#token=" in location
    token = unquote(location.split("#token=", 1)[1])
    identity = tokens.verify(SECRET, token)
    assert identity.role == "student"
    assert identity.subject == pseudonym(SECRET, DEMO_ISSUER, kid.id)
    assert DEMO_ISSUER == DEMO_TOKEN_ISSUER  # demo tokens and launches agree on pseudonyms
    assert identity.claims["school_id"] == kid.school_id and identity.claims["grade"] == 7
    assert kid.id not in token  # the LMS id never travels in the widget's token

    student = await server.connect("/student", None, token=token)
    clients.append(student)
    ack = await student.call("help:request", {"subject": "math", "language": "es"})
    assert ack["ok"], ack
    school = server.broker.directory.get(kid.school_id)
    expected = "paper" if school.high_grade <= 8 else "tutorcom"
    assert ack["request"]["vendor"] == expected


async def test_instructor_launch_signs_in_to_the_dashboard(
    stack_settings, start_server: StartServer
) -> None:
    from web.commands.demo_seed import seed

    await seed(stack_settings)
    server = await start_server(demo=True)
    platform = server.test_server.app[DEMO_PLATFORM]  # type: ignore[union-attr]
    teacher = next(u for u in platform.users.values() if u.kind == "teacher")
    done = await launch(server, teacher.id)
    assert done.status == 303 and done.headers["Location"].startswith("/staff#token=")
    cookie = done.cookies["hh_session"]
    identity = tokens.verify(SECRET, cookie.value)
    # The same identity in the fragment (for an LMS iframe that refuses the cookie).
    in_fragment = tokens.verify(SECRET, unquote(done.headers["Location"].split("#token=", 1)[1]))
    assert in_fragment.subject == identity.subject and in_fragment.scope == identity.scope
    assert identity.role == "teacher" and identity.scope is not None
    assert identity.scope.kind == "school" and identity.scope.id == teacher.school_id != ""
    assert identity.subject.startswith("lti-") and teacher.id not in identity.subject


async def launch_token(server: Server, user: DemoUser) -> str:
    """Launch ``user`` (added to the demo platform) and return the widget's token."""
    platform = server.test_server.app[DEMO_PLATFORM]  # type: ignore[union-attr]
    platform.users[user.id] = user
    done = await launch(server, user.id)
    assert done.status == 303, await done.text()
    return unquote(done.headers["Location"].split("#token=", 1)[1])


async def test_the_roster_is_joined_on_the_sis_number_the_lms_sends(
    stack_settings, start_server: StartServer
) -> None:
    """Schoology sends the SIS number (the demo roster's ``identifier``, SIS00002), which
    is not the roster's sourcedId (demo-stu-00002): the roster still gives school, grade and
    groups, with no school or grade in the launch."""
    from web.commands.demo_seed import seed

    await seed(stack_settings)
    server = await start_server(demo=True)
    token = await launch_token(server, DemoUser("lms-user-2", "Priya", "W", "student", "SIS00002"))
    claims = tokens.verify(SECRET, token).claims
    assert (claims["school_id"], claims["grade"]) == ("demo-sch-1001", 0)
    assert claims["groups"] == ["EL", "SWD"]


async def test_a_school_the_directory_does_not_know_is_kept_on_the_request(
    stack_settings, start_server: StartServer, clients: list
) -> None:
    """A school opened after the last roster import: the launch keeps its id, routing lets
    the grade decide, and staff find the school in unmet demand."""
    server = await start_server(demo=True)
    kid = DemoUser("lms-new-7", "New", "Kid", "student", "SIS-NOT-ROSTERED", "sch-new-2025", "7")
    token = await launch_token(server, kid)
    claims = tokens.verify(SECRET, token).claims
    assert (claims["school_id"], claims["grade"]) == ("sch-new-2025", 7)
    student = await server.connect("/student", None, token=token)
    clients.append(student)
    ack = await student.call("help:request", {"subject": "math", "language": "en"})
    assert ack["ok"] is False  # grade 7 at an unknown school: the grade cannot choose
    senior = DemoUser("lms-new-12", "Old", "Kid", "student", "", "sch-new-2025", "12")
    other = await server.connect("/student", None, token=await launch_token(server, senior))
    clients.append(other)
    routed = await other.call("help:request", {"subject": "math", "language": "en"})
    assert routed["ok"] and routed["request"]["vendor"] == "tutorcom"  # grade 12 decides
    unmet = await stats.unmet(server.broker.store.engine, stats.Filters())
    assert unmet["by_school"] == [{"key": "sch-new-2025", "name": None, "count": 1}]
    assert unmet["by_reason"] == [{"key": "school_unknown_grade_ambiguous", "count": 1}]
    mine = stats.Filters(school_id="sch-new-2025")
    summary = await stats.summary(server.broker.store.engine, mine)
    assert (summary["requests"], summary["unmet"], summary["queued"]) == (2, 1, 1)


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("sch-new-2025", "sch-new-2025"),
        ("  École 12  ", "École 12"),  # any printable text, blanks around it dropped
        ("x" * 64, "x" * 64),  # as long as a school id can be (help_requests.school_id)
        ("x" * 65, None),
        ("sch\n1", None),
        ("sch\x001", None),
        ("\u200bsch", None),  # invisible format characters are not printable
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_launch_school_id_is_bounded_printable_text(value: object, kept: str | None) -> None:
    assert launch_school_id(value) == kept
