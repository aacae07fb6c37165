"""The live-state contract, shared by every broker process of one district.

Guarantees (checked by one test suite over both backends):

* :meth:`LiveState.close_session` is **at-most-once**: of any number of concurrent closers,
  exactly one receives the session (with its final counters); the others get ``None``. The
  broker records an ending only when it won the close, so no session ends twice.
* :meth:`LiveState.record_message` stamps messages with a per-session sequence number that
  strictly increases in the order the calls reach the backend, across processes.
* Presence is a heartbeat: a subject is present while some process keeps touching it.
  Nothing here survives a restart of the in-process backend; the broker rebuilds open
  sessions from the database (message counters restart at the persisted values, zero).
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class LiveSession:
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
    request: dict[str, Any] = field(default_factory=dict)  # the QueuedRequest, for requeue
    seq: int = 0
    messages_student: int = 0
    messages_tutor: int = 0
    chars_student: int = 0
    chars_tutor: int = 0
    first_response_at: float | None = None
    last_activity_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiveSession:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class MessageStamp:
    seq: int
    first_response: bool  # this was the tutor's first message in the session


@dataclass(frozen=True, slots=True)
class TutorPresence:
    tutor_id: str
    vendor: str
    languages: tuple[str, ...]
    status: str  # available | away


class LiveState(abc.ABC):
    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect. Called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    # -- presence -------------------------------------------------------------------------
    @abc.abstractmethod
    async def touch(self, subjects: list[str], now: float) -> None:
        """Record that these subjects (``role:id``) are connected at ``now``."""

    @abc.abstractmethod
    async def last_seen(self, subjects: list[str]) -> dict[str, float]:
        """When each subject was last touched; subjects never touched are absent."""

    # -- tutors ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def set_tutor(self, presence: TutorPresence | None, tutor_id: str) -> None:
        """Set a tutor's status, or forget the tutor (``None``: signed off or lost)."""

    @abc.abstractmethod
    async def tutors(self) -> list[TutorPresence]:
        """Every tutor with a status."""

    # -- sessions -------------------------------------------------------------------------
    @abc.abstractmethod
    async def open_session(self, session: LiveSession) -> None:
        """Store a new live session."""

    @abc.abstractmethod
    async def get_session(self, session_id: str) -> LiveSession | None:
        """The live session, or ``None`` if it is not open."""

    @abc.abstractmethod
    async def sessions(self) -> list[LiveSession]:
        """Every open session."""

    @abc.abstractmethod
    async def record_message(
        self, session_id: str, sender: str, chars: int, now: float
    ) -> MessageStamp | None:
        """Count a message from ``sender`` (student|tutor); ``None`` if the session is closed."""

    @abc.abstractmethod
    async def close_session(self, session_id: str) -> LiveSession | None:
        """Remove and return the session (at-most-once, see the module docstring)."""

    # -- one open request per student ---------------------------------------------------
    @abc.abstractmethod
    async def hold_student(self, student: str, request_id: str) -> str | None:
        """Atomically record ``request_id`` as the student's open request.

        Returns ``None`` when it was recorded, else the request id the student already holds
        (whichever process recorded it), so a student never holds two places in line.
        """

    @abc.abstractmethod
    async def release_student(self, student: str, request_id: str) -> None:
        """Forget the student's open request, only if it is still ``request_id``."""

    @abc.abstractmethod
    async def has_state(self) -> bool:
        """Whether the sessions were loaded (and not lost since)."""

    @abc.abstractmethod
    async def rebuild(self, sessions: list[LiveSession], holds: dict[str, str]) -> None:
        """Replace all open sessions and student holds (from the database); mark as built."""
