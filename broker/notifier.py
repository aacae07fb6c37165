"""How the broker reaches people, without knowing about socket.io (the edge implements it).

Every method addresses a *person* (all their connections, in whichever process) or the
tutors watching a queue, so a deployment of several processes delivers to the right
sockets through the socket.io message manager.

``skip`` names one connection (an opaque handle the edge gave the broker) that is left
out: the connection whose own event caused the push, which learns the outcome from its
acknowledgement. The person's other connections (another tab) still get it.

``local=True`` reaches only this process's connections (the sweep's reconciliation, which
every process makes for its own connections): nothing crosses the message manager.
"""

from __future__ import annotations

from typing import Any, Protocol


class Notifier(Protocol):
    async def to_student(
        self, student: str, event: str, data: dict[str, Any], skip: str | None = None,
        *, local: bool = False,
    ) -> None: ...

    async def to_tutor(self, tutor_id: str, event: str, data: dict[str, Any]) -> None: ...

    async def to_queue_watchers(
        self, queue: str, event: str, data: dict[str, Any], *, local: bool = False
    ) -> None: ...

    async def to_room(
        self, tutor: str, students: list[str], event: str, tutor_data: dict[str, Any],
        student_data: dict[str, Any], *, local: bool = False,
    ) -> None:
        """A booked room's people: its tutor (by scheduler id) gets ``tutor_data``, its
        students (by roster id) ``student_data`` (:mod:`broker.rooms`)."""
        ...
