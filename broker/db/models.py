"""The broker's tables: SQLAlchemy 2 declarative models on one :data:`metadata`.

The schema is owned by Alembic (``broker/migrations``); these models are its mirror and a
test asserts the initial migration and the models do not differ. Constraint names follow
:data:`NAMING_CONVENTION` so later migrations can refer to them on both databases.

Defaults are given twice on purpose: ``default=`` for the ORM and ``server_default=`` so
bulk inserts that skip a column (COPY, raw SQL) get the same value.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    false,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql import ColumnElement, FromClause

from broker.constants import OPEN_STATUSES
from broker.db.computed import DecidedSeconds
from broker.db.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

EMPTY = text("''")
ZERO = text("0")
OPEN_REQUEST = text("status IN ('queued', 'accepted')")  # keep in step with OPEN_STATUSES
QUEUED = text("status = 'queued'")
OPEN_SESSION = text("ended_at IS NULL")
OPEN_BOOKED = text("ended_at IS NULL AND booking IS NOT NULL")
OVERFLOWED = text("first_choice_unmet IS NOT NULL")  # staff stats' overflow (migration 0017)
RESUMED = text("session_count > 1")  # requests accepted more than once (migration 0019)


def is_queued(table: FromClause) -> ColumnElement[bool]:
    """``status = 'queued'`` on ``table`` (or an alias of it), the value written into the SQL
    rather than bound, as in :data:`QUEUED`: the statement then states the partial queue
    index's predicate itself. SQLite drops the term and counts a queue from the index
    alone; a bound value it checks against each row (26 against 12 us to count a place
    behind 100 queued requests, measured). PostgreSQL can use the index in a prepared
    statement's generic plan, which it cannot prove for ``status = $1``."""
    return table.c.status == literal_column("'queued'")


def is_open_request(table: FromClause) -> ColumnElement[bool]:
    """:data:`OPEN_REQUEST` on ``table``, written into the SQL for the same reason as
    :func:`is_queued` (the one-open-request index then finds a student's open request)."""
    return table.c.status.in_([literal_column(f"'{status}'") for status in OPEN_STATUSES])


class Base(DeclarativeBase):
    metadata = metadata


class SchoolRow(Base):
    """A school of the directory (from ``schools.csv`` or a OneRoster bundle)."""

    __tablename__ = "schools"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(16))
    low_grade: Mapped[int] = mapped_column(SmallInteger)
    high_grade: Mapped[int] = mapped_column(SmallInteger)
    kind: Mapped[str] = mapped_column(String(32))


class StudentRow(Base):
    """A rostered student; ``groups`` is a comma-separated subset of SWD,EL,RFEP.

    ``sourced_id`` is the roster's key (OneRoster ``sourcedId``); ``sis_id`` is the SIS
    number a launch names the student by (OneRoster ``identifier``), unique.
    """

    __tablename__ = "students"

    sourced_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sis_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    school_id: Mapped[str] = mapped_column(String(64), ForeignKey("schools.id"), index=True)
    grade: Mapped[int] = mapped_column(SmallInteger)
    groups: Mapped[str] = mapped_column(String(32), default="", server_default=EMPTY)
    given_name: Mapped[str] = mapped_column(String(100), default="", server_default=EMPTY)
    family_name: Mapped[str] = mapped_column(String(100), default="", server_default=EMPTY)


class RosterCountRow(Base):
    """How many rostered students a school has per grade and groups: derived from
    ``students`` and rewritten with it by each roster import (migration 0020,
    :mod:`broker.roster_counts`), so the staff usage report's enrolment reads a few
    hundred rows instead of counting the roster."""

    __tablename__ = "roster_counts"

    school_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    grade: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    groups: Mapped[str] = mapped_column(String(32), primary_key=True)
    students: Mapped[int] = mapped_column(Integer)


class HelpRequestRow(Base):
    """One help request through its lifecycle (requested, unmet | queued, accepted, ...).

    ``student`` is a pseudonym; ``school_id`` has no foreign key because a request may name
    a school the directory does not know (that is itself unmet-demand information).
    """

    __tablename__ = "help_requests"
    __table_args__ = (
        Index("ix_help_requests_status_queued_at", "status", "queued_at"),
        # One open request per student: the database refuses a second one, whichever
        # process tries (docs/architecture.md, "one source of truth").
        Index(
            "uq_help_requests_open_student", "student", unique=True,
            sqlite_where=OPEN_REQUEST, postgresql_where=OPEN_REQUEST,
        ),
        # The queues: every queued request in service order, per queue.
        Index(
            "ix_help_requests_queued_rank", "queue", "rank", "id",
            sqlite_where=QUEUED, postgresql_where=QUEUED,
        ),
        # Staff stats (migration 0017, docs/stats.md "Performance"): the few overflowed ones.
        Index(
            "ix_help_requests_overflowed", "first_choice_unmet",
            sqlite_where=OVERFLOWED, postgresql_where=OVERFLOWED,
        ),
        # Staff stats' distinct students (migration 0021): walked in order of the student,
        # with what the summary and usage report count, from the index alone.
        Index(
            "ix_help_requests_student", "student",
            postgresql_include=["groups", "session_count", "is_test"],
        ),
        # Staff stats' heatmap (migration 0019): the few requests with more than one session.
        Index(
            "ix_help_requests_resumed", "id",
            sqlite_where=RESUMED, postgresql_where=RESUMED,
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    student: Mapped[str] = mapped_column(String(64))  # indexed: ix_help_requests_student
    school_id: Mapped[str | None] = mapped_column(String(64), index=True)
    school_kind: Mapped[str | None] = mapped_column(String(32))
    grade: Mapped[int | None] = mapped_column(SmallInteger)
    groups: Mapped[str] = mapped_column(String(32), default="", server_default=EMPTY)
    language: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))
    vendor: Mapped[str | None] = mapped_column(String(32))
    queue: Mapped[str | None] = mapped_column(String(64))
    overflow: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    first_choice_unmet: Mapped[str | None] = mapped_column(String(40))
    unmet_reason: Mapped[str | None] = mapped_column(String(40))
    unmet_detail: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(SmallInteger, default=0, server_default=ZERO)
    # Service order within the queue: epoch(queued_at) - priority * PRIORITY_HEAD_START_S;
    # kept when a request goes back to its queue, so it regains its place.
    rank: Mapped[float | None] = mapped_column(Float)
    # What the student typed as their topic, and the first name tutors may see (only with
    # HH_SHOW_FIRST_NAME): kept while the request is open, cleared when it closes unless
    # the district turned message retention on.
    topic: Mapped[str | None] = mapped_column(String(200))
    first_name: Mapped[str | None] = mapped_column(String(40))
    # The student left their question for the next tutor (nobody was on shift): until
    # then the request keeps its place while the student is away (migration 0013).
    left_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_reason: Mapped[str | None] = mapped_column(String(32))
    is_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The staff reports' read model (migration 0019, broker/request_rollup.py): the first
    # session's ``accepted_at`` (kept when the request is requeued, unlike ``accepted_at``)
    # and how many sessions the request has had, both written by the transaction that
    # opens a session, so they always equal what the sessions say.
    first_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_count: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    # Seconds from the queue to the first acceptance or the give-up, rounded to the ms,
    # computed by the database from the timestamps (migration 0022, broker/db/computed.py).
    decided_s: Mapped[float | None] = mapped_column(
        Float, Computed(DecidedSeconds(), persisted=True)
    )


class TutoringSessionRow(Base):
    """A matched session: who, when, how much was said, how it ended (never the text).

    An on-demand session has its ``request_id`` and its one ``student`` (a pseudonym). A
    booked session (migration ``0009``) has neither: ``programme`` (``school_based`` or
    ``home_based``) and ``booking`` (the occurrence it runs, unique: one room per
    occurrence, whichever worker opens it) instead, and its students in
    :class:`SessionParticipantRow`.
    """

    __tablename__ = "tutoring_sessions"
    __table_args__ = (
        Index(
            "ix_tutoring_sessions_open_tutor", "tutor_id",
            sqlite_where=OPEN_SESSION, postgresql_where=OPEN_SESSION,
        ),
        Index(
            "ix_tutoring_sessions_open_student", "student",
            sqlite_where=OPEN_SESSION, postgresql_where=OPEN_SESSION,
        ),
        Index(
            "ix_tutoring_sessions_open_booked", "booking",
            sqlite_where=OPEN_BOOKED, postgresql_where=OPEN_BOOKED,
        ),
        # Staff stats (migration 0017): each request's first acceptance from the index alone.
        Index("ix_tutoring_sessions_request_accepted", "request_id", "accepted_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    request_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("help_requests.id"), index=True
    )
    student: Mapped[str | None] = mapped_column(String(64), index=True)
    programme: Mapped[str | None] = mapped_column(String(16))
    booking: Mapped[str | None] = mapped_column(String(32), unique=True)
    vendor: Mapped[str] = mapped_column(String(32))
    tutor_id: Mapped[str] = mapped_column(String(64), index=True)
    tutor_name: Mapped[str] = mapped_column(String(100), default="", server_default=EMPTY)
    language: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64))
    school_id: Mapped[str | None] = mapped_column(String(64))
    school_kind: Mapped[str | None] = mapped_column(String(32))
    grade: Mapped[int | None] = mapped_column(SmallInteger)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(32))
    tutored_subject: Mapped[str | None] = mapped_column(String(64))
    resolved: Mapped[bool | None] = mapped_column(Boolean)
    # the tutor's private notes, with the outcome (migration 0015; never shown to the student)
    tutor_notes: Mapped[str | None] = mapped_column(Text)
    messages_student: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    messages_tutor: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    chars_student: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    chars_tutor: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    first_response_s: Mapped[float | None] = mapped_column(Float)
    # The open session's live facts, in the database so that any process can serve it and
    # nothing is lost with a process or with Redis: the last message's sequence number
    # (assigned here, once), when someone last wrote, when the tutor first answered.
    seq: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rating_helped: Mapped[bool | None] = mapped_column(Boolean)
    rating_stars: Mapped[int | None] = mapped_column(SmallInteger)


class SessionParticipantRow(Base):
    """A student booked into a booked session's room (one row per student of the
    occurrence's series, written with the session). ``student_id`` is the roster id; the
    pseudonym and the first name other students see are filled when the student first
    joins, and the first name is cleared when the session ends (:mod:`broker.rooms`)."""

    __tablename__ = "session_participants"

    session_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tutoring_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    student_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    grade: Mapped[int | None] = mapped_column(SmallInteger)  # from the roster, at opening
    pseudonym: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(40))
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChatMessageRow(Base):
    """A chat message body. While its session is open this is the session's buffer (what a
    reconnecting participant is sent again); when the session ends the bodies are deleted
    in the same transaction, unless the district turned on retention."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        # A client's own id for a message, unique in its session: a resend after a lost
        # acknowledgement finds the message it already made instead of making a second.
        Index("uq_chat_messages_client", "session_id", "client_id", unique=True),
    )

    # The relayed message id: "<session id>.<sequence number>".
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tutoring_sessions.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    # "student" or "tutor"; in a booked room a student's is "s<i>", their slot among the
    # room's students by roster id (broker.rooms), so a rejoin names who wrote it.
    sender: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # The sender's ``client_id`` on ``chat:send``, or one the store made when it gave none
    # (``~`` and an id; ``None`` on rows written before): never sent to anyone, only
    # compared (broker.lifecycle_store.LifecycleStore.add_message).
    client_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class TutorStateRow(Base):
    """A tutor's chosen status and the sessions they hold now (their capacity in use).

    ``open_sessions`` always equals the number of the tutor's open sessions: accept and end
    change both in one transaction, and an accept that would take it past the vendor's
    capacity is refused in that transaction.
    """

    __tablename__ = "tutor_states"

    tutor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor: Mapped[str] = mapped_column(String(32))
    languages: Mapped[str] = mapped_column(String(64), default="", server_default=EMPTY)
    status: Mapped[str] = mapped_column(String(16), default="away", server_default=text("'away'"))
    open_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UserRow(Base):
    """A tutor or staff account (students never have one: the LMS launch is their login)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    vendor_id: Mapped[str | None] = mapped_column(String(32))
    languages: Mapped[str] = mapped_column(String(64), default="", server_default=EMPTY)
    # A tutor of a scheduled vendor: their scheduler profile (``tutor_profiles.tutor_id``),
    # whose booked sessions they run (migration 0009).
    tutor_profile: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[str | None] = mapped_column(String(16))
    scope_id: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditLogRow(Base):
    """One audited action (who did what to which subject, through which endpoint)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        Integer().with_variant(BigInteger(), "postgresql"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64), index=True)
    endpoint: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(String(500), default="", server_default=EMPTY)



class OutboxRow(Base):
    """One reminder or notice to one person, waiting for a sender (mail, SMS, the demo's
    page). Written in the transaction of the change it announces; ``dedupe_key`` makes a
    job that runs twice write it once; sent at most once per successful attempt (a sender
    that dies after sending and before marking it may send it again: at-least-once)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("sent_at IS NULL AND cancelled_at IS NULL"),
            sqlite_where=text("sent_at IS NULL AND cancelled_at IS NULL"),
        ),
        Index("ix_outbox_recipient", "recipient_kind", "recipient_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    recipient_kind: Mapped[str] = mapped_column(String(16))
    recipient_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(320))
    locale: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    last_error: Mapped[str] = mapped_column(String(500), default="", server_default=EMPTY)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobRunRow(Base):
    """A background job's last run (the lease that makes it run once is in Redis)."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    runs: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default=ZERO)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_error: Mapped[str] = mapped_column(String(500), default="", server_default=EMPTY)
    worker: Mapped[str] = mapped_column(String(64), default="", server_default=EMPTY)

schools = SchoolRow.__table__
students = StudentRow.__table__
roster_counts = RosterCountRow.__table__
help_requests = HelpRequestRow.__table__
tutoring_sessions = TutoringSessionRow.__table__
chat_messages = ChatMessageRow.__table__
session_participants = SessionParticipantRow.__table__
tutor_states = TutorStateRow.__table__
users = UserRow.__table__
audit_log = AuditLogRow.__table__
outbox = OutboxRow.__table__
job_runs = JobRunRow.__table__
