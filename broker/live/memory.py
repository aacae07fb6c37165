"""In-process live state: dictionaries, atomic because no method awaits mid-update."""

from __future__ import annotations

import dataclasses

from broker.live.base import LiveSession, LiveState, MessageStamp, TutorPresence


class MemoryLiveState(LiveState):
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._tutors: dict[str, TutorPresence] = {}
        self._sessions: dict[str, LiveSession] = {}
        self._holds: dict[str, str] = {}
        self._built = False

    async def touch(self, subjects: list[str], now: float) -> None:
        for subject in subjects:
            self._seen[subject] = now

    async def last_seen(self, subjects: list[str]) -> dict[str, float]:
        return {s: self._seen[s] for s in subjects if s in self._seen}

    async def set_tutor(self, presence: TutorPresence | None, tutor_id: str) -> None:
        if presence is None:
            self._tutors.pop(tutor_id, None)
        else:
            self._tutors[tutor_id] = presence

    async def tutors(self) -> list[TutorPresence]:
        return list(self._tutors.values())

    async def open_session(self, session: LiveSession) -> None:
        self._sessions[session.id] = dataclasses.replace(session)

    async def get_session(self, session_id: str) -> LiveSession | None:
        found = self._sessions.get(session_id)
        return dataclasses.replace(found) if found else None

    async def sessions(self) -> list[LiveSession]:
        return [dataclasses.replace(s) for s in self._sessions.values()]

    async def record_message(
        self, session_id: str, sender: str, chars: int, now: float
    ) -> MessageStamp | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        session.seq += 1
        session.last_activity_at = now
        first = False
        if sender == "tutor":
            session.messages_tutor += 1
            session.chars_tutor += chars
            if session.first_response_at is None:
                session.first_response_at = now
                first = True
        else:
            session.messages_student += 1
            session.chars_student += chars
        return MessageStamp(seq=session.seq, first_response=first)

    async def close_session(self, session_id: str) -> LiveSession | None:
        return self._sessions.pop(session_id, None)

    async def hold_student(self, student: str, request_id: str) -> str | None:
        held = self._holds.setdefault(student, request_id)
        return None if held == request_id else held

    async def release_student(self, student: str, request_id: str) -> None:
        if self._holds.get(student) == request_id:
            del self._holds[student]

    async def has_state(self) -> bool:
        return self._built

    async def rebuild(self, sessions: list[LiveSession], holds: dict[str, str]) -> None:
        self._sessions = {s.id: dataclasses.replace(s) for s in sessions}
        self._holds = dict(holds)
        self._built = True
