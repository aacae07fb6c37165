"""Chat safety: every message screened before relay, reports, distress alerts, the
"nobody on shift" alert, and what staff do about them (issue 12; docs/moderation.md).

Guarantees:

* **Every chat message is screened** (:meth:`Safety.screen`) before it is numbered or
  relayed, on-demand or booked, by the rules of :mod:`broker.moderation` (a file the
  district edits; re-read when it changes, no restart; nothing leaves the machine).
  ``deliver`` relays the words; ``mask`` relays them with the offending parts replaced
  and both sides are told which kinds were removed; ``hold`` relays nothing and the sender
  is told the message waits for staff.
* **Nothing flagged is lost**: a held or masked message's original words, a report, or a
  message suggesting distress is a flag in the database (:mod:`broker.safety_store`),
  written *before* the message is numbered, so a crash between the two leaves the flag
  (a resend with the same ``client_id`` makes no second one). A flagged session's
  messages are kept for review for ``HH_SAFETY_REVIEW_DAYS`` even with retention off.
* **Distress is never a silent flag**: the student's message is still delivered (they
  must be heard), the district's crisis resources are returned to them in their
  language, and a staff alert is raised once per session (on the dashboard, and mailed
  to ``HH_SAFETY_ALERT_EMAIL`` through the outbox in the alert's transaction).
* Staff actions (dismiss, end the session, suspend the tutor) are scoped (district, or a
  school's designee for their school), decided at most once, and audit-logged in their
  own transaction, as is every staff read of a flagged session's words.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broker import metrics, safety_store
from broker.constants import REPORT_NOTE_MAX_CHARS
from broker.errors import ConfigError, InvalidPayload, NotAllowed, NotFound
from broker.identity import Identity, Scope
from broker.ids import new_id
from broker.lifecycle_store import at
from broker.moderation.engine import Decision, ReloadingModerator, load_rules
from broker.outbox import outbox_values
from broker.settings import Settings
from i18n import negotiate, translator

log = logging.getLogger(__name__)

CRISIS_FILE = Path(__file__).parent / "data" / "crisis.toml"
# The action of a flag a staff member may take, and the status it leaves the flag in.
ACTIONS = {
    "dismiss": "dismissed", "end_session": "session_ended", "suspend_tutor": "tutor_suspended",
}
FLAG_KINDS = ("held", "masked", "distress", "report")


def N_(text: str) -> str:
    """Mark a message for the catalogs; translated when the notice is written."""
    return text


ALERT_SUBJECTS = {
    "distress": N_("Safety alert: a student may be in distress"),
    "no_tutor": N_("Students are waiting and no tutor is on shift"),
}
ALERT_BODIES = {
    "distress": N_("A message in session %(session)s suggests a student may be in danger or "
                   "thinking of self-harm. Open the staff dashboard's safety section now."),
    "no_tutor": N_("Queue %(queue)s has had students waiting with no tutor available for "
                   "%(minutes)s minutes."),
}
SUSPENDED_SUBJECT = N_("A tutor account was suspended")
SUSPENDED_BODY = N_("The district suspended tutor account %(tutor)s after a safety review. "
                    "Their open sessions were ended and they cannot sign in.")


def load_crisis(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The crisis resources by locale (``{"en": {"title", "lines"}}``), from the district's
    file or the shipped one; :class:`ConfigError` on a file without English."""
    source = path or CRISIS_FILE
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"crisis resources {source}: {exc}") from exc
    out: dict[str, dict[str, Any]] = {}
    for locale, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("title"), str) or not all(
            isinstance(line, str) for line in entry.get("lines", [])
        ):
            raise ConfigError(f"crisis resources {source}: [{locale}] needs title and lines")
        out[locale] = {"title": entry["title"], "lines": list(entry.get("lines", []))}
    if "en" not in out:
        raise ConfigError(f"crisis resources {source}: an [en] section is required")
    return out


@dataclass(frozen=True, slots=True)
class Where:
    """The session a message or report belongs to, as flags and alerts record it."""

    session_id: str
    school_id: str | None
    vendor: str
    tutor_id: str


@dataclass(frozen=True, slots=True)
class Screened:
    """What to do with one message: relay ``text`` unless ``held``; ``moderation`` goes on
    the relayed message (``None`` for a clean one); ``crisis`` back to a student sender."""

    text: str
    held: bool = False
    categories: tuple[str, ...] = ()
    moderation: dict[str, Any] | None = None
    crisis: dict[str, Any] | None = field(default=None)


class Safety:
    def __init__(self, engine: Any, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.moderator = ReloadingModerator(settings.moderation_rules_path)
        self.crisis = load_crisis(settings.crisis_resources_path)

    @classmethod
    def check_config(cls, settings: Settings) -> None:
        """Fail at start-up on a broken rules or crisis file, not on the first message."""
        load_rules(settings.moderation_rules_path)
        load_crisis(settings.crisis_resources_path)

    def reload(self) -> bool:
        """Re-read the rules file if it changed (the sweep calls this)."""
        return self.moderator.maybe_reload()

    def crisis_for(self, locale: str | None) -> dict[str, Any]:
        chosen = negotiate(locale or "en")
        return self.crisis.get(chosen) or self.crisis.get(chosen.split("-")[0]) or self.crisis["en"]

    # -- messages ----------------------------------------------------------------------
    def decide(self, text: str, sender: str) -> Decision:
        return self.moderator.check(text, "tutor" if sender == "tutor" else "student")

    async def screen(
        self, decision: Decision, text: str, where: Where | None, by: str, *, now: float,
        client_id: str | None = None, locale: str | None = None,
    ) -> Screened:
        """Record what ``decision`` (:meth:`decide`) needs recorded, then say what to relay.

        Only a message that is not plain ``deliver`` or suggests distress writes anything
        (one flag, and for distress an alert), so a clean message costs no round trip."""
        metrics.count_moderation(decision.action, decision.categories)
        student = not by == "tutor"
        crisis = self.crisis_for(locale) if decision.distress and student else None
        if decision.action == "deliver" and not decision.distress:
            return Screened(text)
        if where is None:
            raise ValueError("a message to record needs its session")
        kind = {"hold": "held", "mask": "masked"}.get(decision.action, "distress")
        when = at(now)
        await safety_store.add_flag(self.engine, {
            "id": new_id(), "kind": kind, "session_id": where.session_id,
            "school_id": where.school_id, "vendor": where.vendor, "tutor_id": where.tutor_id,
            "by": by, "categories": ",".join(decision.categories), "seq": None, "text": text,
            "note": "", "client_id": client_id, "created_at": when,
            "keep_until": when + timedelta(days=self.settings.safety_review_days),
            "status": "open",
        })
        if decision.distress:
            await self.alert("distress", f"distress:{where.session_id}", now,
                             session_id=where.session_id, school_id=where.school_id,
                             vendor=where.vendor, session=where.session_id)
        if decision.action == "hold":
            return Screened("", held=True, categories=decision.categories, crisis=crisis)
        moderation = (
            {"action": "mask", "categories": list(decision.categories)}
            if decision.action == "mask" else None
        )
        return Screened(decision.text, categories=decision.categories, moderation=moderation,
                        crisis=crisis)

    # -- reports -----------------------------------------------------------------------
    async def report(
        self, where: Where, by: str, *, now: float, seq: int | None, note: str
    ) -> str:
        """Record a participant's report of the session (or of message ``seq``); its id."""
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1):
            raise InvalidPayload("seq must be a positive message number")
        when = at(now)
        flag_id = new_id()
        await safety_store.add_flag(self.engine, {
            "id": flag_id, "kind": "report", "session_id": where.session_id,
            "school_id": where.school_id, "vendor": where.vendor, "tutor_id": where.tutor_id,
            "by": by, "categories": "", "seq": seq, "text": None,
            "note": note.strip()[:REPORT_NOTE_MAX_CHARS], "client_id": None,
            "created_at": when,
            "keep_until": when + timedelta(days=self.settings.safety_review_days),
            "status": "open",
        })
        log.info("session %s reported by its %s (flag %s)", where.session_id, by, flag_id)
        return flag_id

    # -- alerts ------------------------------------------------------------------------
    async def alert(
        self, kind: str, key: str, now: float, *, session_id: str | None = None,
        school_id: str | None = None, vendor: str | None = None, queue: str | None = None,
        **fields: Any,
    ) -> bool:
        """Raise ``kind`` under ``key`` once while it is open; mail the district's safety
        contact in the same transaction. ``True`` if this call raised it."""
        when = at(now)
        tr = translator("en")
        body = tr.gettext(ALERT_BODIES[kind]) % {"queue": queue, **fields}
        notices = []
        if self.settings.safety_alert_email:
            notices.append(outbox_values(
                dedupe_key=f"alert:{key}:{when.isoformat()}"[:200], kind=f"alert_{kind}",
                recipient_kind="staff", recipient_id="safety", channel="email",
                locale="en", subject=tr.gettext(ALERT_SUBJECTS[kind]), body=body,
                due_at=when, now=when, address=self.settings.safety_alert_email,
            ))
        raised = await safety_store.raise_alert(self.engine, {
            "id": new_id(), "kind": kind, "dedupe_key": key[:120], "queue": queue,
            "session_id": session_id, "school_id": school_id, "vendor": vendor,
            "detail": body[:300], "raised_at": when, "acknowledged_by": None,
            "acknowledged_at": None, "cleared_at": None,
        }, notices)
        if raised:
            metrics.count_alert(kind)
            log.warning("alert raised: %s (%s)", kind, key)
        return raised

    async def clear(self, kind: str, keys: list[str], now: float) -> int:
        return await safety_store.clear_alerts(self.engine, kind, keys, at(now))

    async def open_alert_keys(self, kind: str) -> set[str]:
        return await safety_store.open_alert_keys(self.engine, kind)

    # -- staff -------------------------------------------------------------------------
    @staticmethod
    def staff_school(staff: Identity) -> str | None:
        """The school a staff member's safety views are held to (None: the district);
        :class:`NotAllowed` for vendor managers and anyone else."""
        scope: Scope = staff.require_scope()
        if not scope.reads_student_records:
            raise NotAllowed("the safety review is for district and school staff")
        return scope.school

    async def flags(self, staff: Identity, status: str | None = "open") -> list[dict[str, Any]]:
        if status is not None and status not in ("open", *ACTIONS.values()):
            raise InvalidPayload("unknown status")
        rows = await safety_store.list_flags(self.engine, self.staff_school(staff), status=status)
        return [flag_view(row) for row in rows]

    async def scoped_flag(self, staff: Identity, flag_id: str) -> dict[str, Any]:
        """The flag's raw row if the caller may review it; :class:`NotAllowed` for vendor
        managers and anyone else, :class:`NotFound` outside their school."""
        row = await safety_store.get_flag(self.engine, flag_id)
        school = self.staff_school(staff)
        if row is None or (school is not None and row["school_id"] != school):
            raise NotFound("no such flag")
        return row

    async def flag(
        self, staff: Identity, flag_id: str, endpoint: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the flag's raw row, its view with the session's kept messages), audited."""
        row = await self.scoped_flag(staff, flag_id)
        context = await safety_store.flag_context(self.engine, row, staff, endpoint)
        view = flag_view(row)
        view["text"] = row["text"]
        view["messages"] = [
            {"seq": m["seq"], "from": m["sender"], "text": m["text"],
             "at": m["at"].isoformat() if isinstance(m["at"], datetime) else m["at"]}
            for m in context
        ]
        return row, view

    async def decide_flag(
        self, staff: Identity, row: Mapping[str, Any], status: str, endpoint: str, now: float
    ) -> bool:
        return await safety_store.review(self.engine, row["id"], status, staff, endpoint, at(now))

    async def suspend(
        self, staff: Identity, row: Mapping[str, Any], endpoint: str, now: float
    ) -> bool:
        """Disable the flagged session's tutor (their vendor's safety contact is told)."""
        when = at(now)
        tr = translator("en")
        notices = []
        contact = self.settings.vendor_contact(row["vendor"])
        notices.append(outbox_values(
            dedupe_key=f"suspended:{row['tutor_id']}:{when.isoformat()}"[:200],
            kind="tutor_suspended", recipient_kind="vendor", recipient_id=row["vendor"],
            channel="email", locale="en", subject=tr.gettext(SUSPENDED_SUBJECT),
            body=tr.gettext(SUSPENDED_BODY) % {"tutor": row["tutor_id"]},
            due_at=when, now=when, address=contact,
        ))
        return await safety_store.suspend_account(
            self.engine, row["tutor_id"], staff, endpoint, when, notices, flag_id=row["id"]
        )

    async def alerts(self, staff: Identity, open_only: bool = True) -> list[dict[str, Any]]:
        rows = await safety_store.list_alerts(
            self.engine, self.staff_school(staff), open_only=open_only
        )
        return [alert_view(row) for row in rows]

    async def acknowledge(self, staff: Identity, alert_id: str, endpoint: str, now: float) -> None:
        if not await safety_store.acknowledge_alert(
            self.engine, alert_id, staff, endpoint, at(now), self.staff_school(staff)
        ):
            raise NotFound("no such unacknowledged alert")


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def flag_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A flag for the staff review queue, without the words (read those one flag at a
    time, audited)."""
    return {
        "id": row["id"], "kind": row["kind"], "session_id": row["session_id"],
        "school_id": row["school_id"], "vendor": row["vendor"], "tutor_id": row["tutor_id"],
        "by": row["by"], "categories": [c for c in row["categories"].split(",") if c],
        "seq": row["seq"], "note": row["note"], "created_at": _iso(row["created_at"]),
        "status": row["status"], "reviewed_by": row["reviewed_by"],
        "reviewed_at": _iso(row["reviewed_at"]),
    }


def alert_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "kind": row["kind"], "queue": row["queue"],
        "session_id": row["session_id"], "school_id": row["school_id"],
        "vendor": row["vendor"], "detail": row["detail"], "raised_at": _iso(row["raised_at"]),
        "acknowledged_at": _iso(row["acknowledged_at"]), "cleared_at": _iso(row["cleared_at"]),
    }
