"""Reminders and notices as outbox rows, in the recipient's language.

Each row is built with :func:`broker.outbox.outbox_values` and written by the caller in the
transaction of the change it announces, so a notice exists exactly when its change does.
Texts are gettext messages (marked ``N_`` for the Babel catalogs) translated with
:func:`i18n.translator`; times are shown in the school's zone, in the recipient's locale.

``dedupe_key`` names the change and the recipient (``<kind>:<change or occurrence id>:
<recipient>``), so writing a notice twice leaves one row, and a reminder for an occurrence
can be withdrawn by prefix (``reminder:<occurrence id>:``) when the occurrence is cancelled
or moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from babel.dates import format_datetime

from broker.outbox import outbox_values
from broker.scheduler.rules import zone_of
from i18n import negotiate, translator

CHANNEL = "email"


def N_(text: str) -> str:
    """Mark a message for the catalogs; it is translated when the notice is written."""
    return text


SUBJECTS = {
    "booked": N_("Tutoring sessions booked"),
    "cancelled": N_("Tutoring session cancelled"),
    "cancelled_rest": N_("Tutoring sessions cancelled"),
    "moved": N_("Tutoring session moved"),
    "reminder": N_("Tutoring session reminder"),
    "tutor_no_show": N_("A tutor missed a booked session"),
}
BODIES = {
    "booked": N_("%(count)s sessions are booked, the first on %(when)s."),
    "cancelled": N_("The session on %(when)s is cancelled (%(reason)s)."),
    "cancelled_rest": N_("The %(count)s sessions from %(when)s on are cancelled "
                         "(%(reason)s)."),
    "moved": N_("The session on %(old)s is moved to %(when)s."),
    "reminder": N_("Your tutoring session starts on %(when)s."),
    "tutor_no_show": N_("The tutor did not join the session of %(when)s."),
}
REASONS = {
    "holiday": N_("holiday"),
    "break": N_("school break"),
    "no_school": N_("no school"),
    "rescheduled": N_("rescheduled"),
    "removed": N_("no longer in the group"),
    "withdrawn": N_("enrolment withdrawn"),
    "group_empty": N_("no students left in the group"),
}


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a notice is for: ``student`` (read by the parent or student), ``tutor`` or
    ``staff``, their id, and their language."""

    kind: str
    id: str
    locale: str = "en"


def local_text(when: datetime, zone: str, locale: str) -> str:
    """``when`` as wall-clock time in ``zone``, written for ``locale``, with the zone."""
    local = when.astimezone(zone_of(zone))
    shown = format_datetime(local, "EEEE d MMMM y, HH:mm", locale=negotiate(locale))
    return f"{shown} ({zone})"


def notice(kind: str, to: Recipient, *, key: str, now: datetime, due_at: datetime,
           when: datetime, zone: str, **fields: Any) -> dict[str, Any]:
    """One outbox row of ``kind`` (a key of :data:`SUBJECTS`) for ``to``."""
    tr = translator(to.locale)
    values = {k: v for k, v in fields.items() if k != "reason"}
    values["when"] = local_text(when, zone, to.locale)
    if "old" in fields:
        values["old"] = local_text(fields["old"], zone, to.locale)
    reason = str(fields.get("reason", ""))
    values["reason"] = tr.gettext(REASONS[reason]) if reason in REASONS else reason
    return outbox_values(
        dedupe_key=f"{kind}:{key}:{to.kind}:{to.id}"[:200],
        kind=kind,
        recipient_kind=to.kind,
        recipient_id=to.id,
        channel=CHANNEL,
        locale=negotiate(to.locale),
        subject=tr.gettext(SUBJECTS[kind]),
        body=tr.gettext(BODIES[kind]) % values,
        due_at=due_at,
        now=now,
    )
