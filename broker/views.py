"""What each audience may see of a request or session (the privacy boundary in one place).

Tutors see a pseudonym, grade band, school kind, language, subject and how long the
student has waited (and the first name only where the district turned HH_SHOW_FIRST_NAME
on): never an LMS id, full name or email, exact school or exact grade.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.errors import Conflict
from broker.lifecycle_store import Resent, epoch
from routing.grades import grade_band

if TYPE_CHECKING:
    from broker.safety import Screened


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds")


def _band(grade: int | None) -> str:
    return grade_band(grade) if grade is not None else ""


def tutor_request_view(row: dict[str, Any], now: float) -> dict[str, Any]:
    """A queued request (a ``help_requests`` row) as its queue's tutors see it."""
    queued_at = epoch(row["queued_at"]) or now
    view: dict[str, Any] = {
        "id": row["id"],
        "student": row["student"],
        "grade_band": _band(row["grade"]),
        "school_kind": row["school_kind"] or "",
        "language": row["language"],
        "subject": row["subject"],
        "topic": row.get("topic") or "",
        "waited_s": max(0, int(now - queued_at)),
        "priority": int(row.get("priority") or 0),
        # the student left their question and may be away: accepted when they are back
        "left": row.get("left_until") is not None,
    }
    if row.get("first_name"):  # only when the district turned HH_SHOW_FIRST_NAME on
        view["first_name"] = row["first_name"]
    return view


@dataclass(frozen=True, slots=True)
class OpenSession:
    """An open session as the broker handles it (from a ``tutoring_sessions`` row joined
    with its request's queue, topic and first name)."""

    id: str
    request_id: str
    student: str
    tutor_id: str
    tutor_name: str
    vendor: str
    queue: str
    language: str
    subject: str
    accepted_at: float
    grade: int | None = None
    school_kind: str = ""
    topic: str = ""
    first_name: str = ""
    seq: int = 0
    last_activity_at: float | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> OpenSession:
        accepted = epoch(row["accepted_at"]) or 0.0
        return cls(
            id=row["id"],
            request_id=row["request_id"],
            student=row["student"],
            tutor_id=row["tutor_id"],
            tutor_name=row.get("tutor_name") or "Tutor",
            vendor=row["vendor"],
            queue=row.get("queue") or f"{row['vendor']}:{row['language']}",
            language=row["language"],
            subject=row["subject"],
            accepted_at=accepted,
            grade=row.get("grade"),
            school_kind=row.get("school_kind") or "",
            topic=row.get("topic") or "",
            first_name=row.get("first_name") or "",
            seq=int(row.get("seq") or 0),
            last_activity_at=epoch(row.get("last_activity_at")),
        )


def session_view(session: OpenSession, vendor_name: str, for_role: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "session_id": session.id,
        "request_id": session.request_id,
        "vendor": session.vendor,
        "vendor_name": vendor_name,
        "language": session.language,
        "subject": session.subject,
        "started_at": iso(session.accepted_at),
        "tutor": {"display_name": session.tutor_name},
        "seq": session.seq,
    }
    if for_role == "tutor":
        view["student"] = {
            "pseudonym": session.student,
            "first_name": session.first_name,
            "grade_band": _band(session.grade),
            "school_kind": session.school_kind,
        }
        view["topic"] = session.topic
    return view


def message_view(session_id: str, seq: int, sender: str, text: str, at: float) -> dict[str, Any]:
    """A chat message as both sides receive it; its id is ``<session id>.<seq>``."""
    return {
        "session_id": session_id,
        "id": f"{session_id}.{seq}",
        "seq": seq,
        "from": sender,
        "text": text,
        "at": iso(at),
    }


def held_view(session_id: str, screened: Screened) -> dict[str, Any]:
    """The sender's answer for a message held for staff review: nothing was relayed."""
    view: dict[str, Any] = {
        "session_id": session_id, "held": True, "categories": list(screened.categories),
    }
    return with_crisis(view, screened)


def with_crisis(view: dict[str, Any], screened: Screened) -> dict[str, Any]:
    """``view`` plus the crisis resources a student's distress brought, if any."""
    if screened.crisis is not None:
        return {**view, "crisis": screened.crisis}
    return view


def resent_view(session_id: str, resent: Resent, sender: str) -> dict[str, Any]:
    """The message a resent ``client_id`` already made, as its sender first got it; a
    ``client_id`` that another participant's message carries is refused (``conflict``),
    so nobody is answered with someone else's words."""
    if resent.sender != sender:
        raise Conflict("that client_id is another message's")
    role = "tutor" if sender == "tutor" else "student"
    return message_view(session_id, resent.seq, role, resent.text, resent.at)
