"""What each audience may see of a request or session (the privacy boundary in one place).

Tutors see a pseudonym, grade band, school kind, language, subject and how long the
student has waited (and the first name only where the district turned HH_SHOW_FIRST_NAME
on): never an LMS id, full name or email, exact school or exact grade.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from broker.live.base import LiveSession
from broker.queue.base import QueuedRequest


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


def tutor_request_view(request: QueuedRequest, now: float) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": request.id,
        "student": request.student,
        "grade_band": request.grade_band,
        "school_kind": request.school_kind,
        "language": request.language,
        "subject": request.subject,
        "topic": request.topic,
        "waited_s": max(0, int(now - request.enqueued_at)),
        "priority": request.priority,
    }
    if request.first_name:  # only when the district turned HH_SHOW_FIRST_NAME on
        view["first_name"] = request.first_name
    return view


def session_view(session: LiveSession, vendor_name: str, for_role: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "session_id": session.id,
        "request_id": session.request_id,
        "vendor": session.vendor,
        "vendor_name": vendor_name,
        "language": session.language,
        "subject": session.subject,
        "started_at": iso(session.accepted_at),
        "tutor": {"display_name": session.tutor_name},
    }
    if for_role == "tutor":
        view["student"] = {
            "pseudonym": session.student,
            "first_name": session.request.get("first_name", ""),
            "grade_band": session.request.get("grade_band", ""),
            "school_kind": session.request.get("school_kind", ""),
        }
        view["topic"] = session.request.get("topic", "")
    return view
