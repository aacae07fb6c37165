"""The queue backend contract (after python-socketio's managers: one base, backends fill hooks).

Guarantees every backend gives, and the shared test suite checks:

* **Order**: within a queue, requests are served by ``score = enqueued_at -
  priority * PRIORITY_HEAD_START_S`` ascending, ties by request id. A priority step is a
  bounded head start, so a later high-priority request never starves an earlier one forever.
* **Claim is at-most-once**: of any number of concurrent :meth:`QueueBackend.claim` calls for
  one request, in any number of processes, exactly one returns the request; the rest get
  :class:`~broker.errors.AlreadyTaken`. A claim also takes one of the tutor's capacity slots
  atomically with removing the request, so no tutor ever holds more than ``capacity``.
* **Requeue keeps the place**: :meth:`requeue` puts a request back with its original
  ``enqueued_at`` (so a request whose tutor was lost goes back to the head of its queue).
* **Durability**: the queue is a cache of the database. The in-process backend loses
  everything on exit and the Redis backend may lose its data; both are rebuilt from the
  database's queued requests with :meth:`rebuild`.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from typing import Any

from broker.constants import PRIORITY_HEAD_START_S


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """What a queue holds of a request: only what tutors may see, plus routing keys."""

    id: str
    queue: str  # "<vendor>:<language>"
    vendor: str
    language: str
    subject: str
    grade_band: str
    school_kind: str
    student: str  # pseudonym, never an LMS id
    enqueued_at: float  # epoch seconds
    priority: int = 0
    topic: str = ""
    # For the session record only; never part of what tutors see (broker.views filters).
    school_id: str = ""
    grade: int | None = None
    # Set only when the district shows tutors first names (HH_SHOW_FIRST_NAME; off by default).
    first_name: str = ""

    @property
    def score(self) -> float:
        return self.enqueued_at - self.priority * PRIORITY_HEAD_START_S

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueuedRequest:
        return cls(**data)


def queue_key(vendor: str, language: str) -> str:
    return f"{vendor}:{language}"


class QueueBackend(abc.ABC):
    """Abstract queue state shared by every broker process of one district."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect / prepare. Called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abc.abstractmethod
    async def enqueue(self, request: QueuedRequest) -> int:
        """Add a request; return its 1-based position in its queue.

        Idempotent per id: an id already queued keeps its place and its stored fields, and
        the call returns its current position.
        """

    @abc.abstractmethod
    async def remove(self, request_id: str, student: str | None = None) -> QueuedRequest | None:
        """Take a request out (cancel, abandon, expire), atomically. ``None`` if it was not
        queued, or (with ``student``) is not that student's: then nothing changes."""

    @abc.abstractmethod
    async def claim(self, request_id: str, tutor_id: str, capacity: int) -> QueuedRequest:
        """Atomically remove the request and take one of the tutor's slots.

        Raises :class:`~broker.errors.AlreadyTaken` if the request is no longer queued and
        :class:`~broker.errors.OverCapacity` if the tutor already holds ``capacity`` slots
        (in which case the request stays queued).
        """

    @abc.abstractmethod
    async def release(self, tutor_id: str) -> None:
        """Give back one of the tutor's slots (a session ended). Never goes below zero."""

    @abc.abstractmethod
    async def load(self, tutor_id: str) -> int:
        """How many slots the tutor holds now."""

    @abc.abstractmethod
    async def requeue(self, request: QueuedRequest) -> int:
        """Put a request back with its original ``enqueued_at``; return its position.

        Its score is computed from ``enqueued_at`` and ``priority`` as on enqueue, so it goes
        back to the place it had (ahead of everything enqueued after it). Idempotent per id.
        """

    @abc.abstractmethod
    async def get(self, request_id: str) -> QueuedRequest | None:
        """The queued request with this id, or ``None``."""

    @abc.abstractmethod
    async def position(self, request_id: str) -> int | None:
        """1-based position in its queue, or ``None`` if not queued."""

    @abc.abstractmethod
    async def snapshot(self, queue: str) -> list[QueuedRequest]:
        """Every request in one queue, in service order."""

    @abc.abstractmethod
    async def lengths(self) -> dict[str, int]:
        """Queue name -> number queued, for every non-empty queue."""

    @abc.abstractmethod
    async def has_state(self) -> bool:
        """Whether the shared state has been built (by :meth:`rebuild`) and not lost since.

        False for a fresh in-process backend and for a Redis that lost its data; the broker
        then rebuilds from the database.
        """

    @abc.abstractmethod
    async def rebuild(self, requests: list[QueuedRequest], loads: dict[str, int]) -> None:
        """Replace all queue state with ``requests`` and tutor ``loads`` (from the database)."""
