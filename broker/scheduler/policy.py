"""Who may do what in the scheduler, read only from the caller's
:class:`~broker.identity.Identity` and its :class:`~broker.identity.Scope`:

* **district** staff set up programmes, schools' schedules and calendars, tutors, and may
  do everything a school or vendor may;
* **school** staff (the school's tutoring designee) enrol, group, book, change and read
  their own school's students and bookings only;
* **vendor** managers publish their own vendor's tutors and availability only, and never
  read students' records.

Every refusal is :class:`~broker.errors.NotAllowed` (403). Teachers, tutors and students
are refused here; a tutor's own actions (attendance) are checked where they happen.
"""

from __future__ import annotations

from broker.errors import NotAllowed
from broker.identity import Identity, Scope


def staff_scope(actor: Identity) -> Scope:
    if actor.role != "staff":
        raise NotAllowed("this is for district, school or vendor staff")
    return actor.require_scope()


def district(actor: Identity) -> None:
    if staff_scope(actor).kind != "district":
        raise NotAllowed("only district staff set up programmes")


def school(actor: Identity, school_id: str) -> None:
    scope = staff_scope(actor)
    if scope.kind == "district" or (scope.kind == "school" and scope.id == school_id):
        return
    raise NotAllowed("this account may only act for its own school", parameter="school")


def vendor(actor: Identity, vendor_id: str) -> None:
    scope = staff_scope(actor)
    if scope.kind == "district" or (scope.kind == "vendor" and scope.id == vendor_id):
        return
    raise NotAllowed("this account may only act for its own vendor", parameter="vendor")


def reader_school(actor: Identity) -> str | None:
    """The school a student-record reader is held to (``None``: the district)."""
    scope = staff_scope(actor)
    if not scope.reads_student_records:
        raise NotAllowed("vendor managers do not read students' records")
    return scope.school


def withdrawal(actor: Identity, programme: str, school_id: str) -> None:
    """Who withdraws an enrolment: in a school-based offer the student's school's staff or
    the district (the school enrolled them); in a home-based offer the district only (a
    parent enrolled the child, and withdraws through their link, not an account)."""
    if programme == "school_based":
        school(actor, school_id)
    elif staff_scope(actor).kind != "district":
        raise NotAllowed("a home-based enrolment is withdrawn by the district or the parent")
