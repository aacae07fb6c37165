"""Pictures in an on-demand chat: upload, announce, fetch, delete (docs/protocol.md, "Images").

The broker's :class:`Media` (``broker.media``) is the policy; the edge (``web/media_api.py``)
only reads the HTTP request and writes the response.

Guarantees:

* **Only the session's two participants**: an upload or a fetch by anyone else (another
  student, another tutor, staff) is ``not_found`` (the same answer as for a session that
  does not exist) and stores nothing; uploads only into an *open* on-demand session (a
  booked room's ``not_allowed``: not supported there yet). A suspended tutor uploads
  nothing.
* **Checked whole before stored**: size, type by content, dimensions and decoding
  (:func:`broker.media.images.prepare`, in a worker thread, at most
  :attr:`MediaLimits.decoders` at once per process), then one guarded insert within the
  session's caps (:meth:`broker.media.store.MediaStore.insert`). An error means nothing was
  stored. Uploads are throttled per sender across every process (:mod:`broker.throttle`).
* **Announced through the chat**: ``chat:send {session_id, image}`` numbers a message like
  any other (same sequence, same delivery, same resend rule, the caption text moderated
  like any message); its ``client_id`` is ``img-<image id>``, so a picture is announced at
  most once however often the send is repeated, and only by the participant who uploaded
  it. The picture itself is not looked at by the moderation (there is no image moderation);
  reports (``chat:report``) cover it like any message.
* **Fetched by the other side only once announced**, while the session is open and for
  :data:`~broker.constants.BUFFER_AFTER_END_S` after it ends (as its messages).
* **Kept for the session only** unless the district keeps messages: every process's
  sweep deletes an ended session's pictures with its message buffer; the retention job
  purges what retention no longer keeps.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from broker.constants import BUFFER_AFTER_END_S
from broker.errors import NotAllowed, NotFound
from broker.identity import Identity
from broker.ids import new_id
from broker.lifecycle_store import at, epoch
from broker.media.errors import ImageLimit
from broker.media.images import ImageRules, prepare
from broker.media.store import CLIENT_ID_PREFIX, MediaStore

if TYPE_CHECKING:
    from broker.service import Broker

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MediaLimits:
    """How much a session and a sender may send (tests and benchmarks may change them)."""

    per_session: int = 20  # pictures a session may hold (announced or not)
    session_bytes: int = 20 * 1024 * 1024  # their re-encoded bytes
    uploads: int = 10  # uploads per sender ...
    window_s: float = 60.0  # ... per this many seconds, counted across every process
    decoders: int = 2  # pictures decoded at once per process (memory and CPU bound)
    rules: ImageRules = field(default_factory=ImageRules)


def image_view(row: dict[str, Any]) -> dict[str, Any]:
    """A picture as a message carries it (fetched at
    ``GET /api/sessions/{session_id}/images/{id}``)."""
    return {
        "id": row["id"], "type": row["media_type"], "width": int(row["width"]),
        "height": int(row["height"]), "bytes": int(row["size_bytes"]),
    }


def role_in(identity: Identity, row: dict[str, Any] | None) -> str | None:
    """``student`` or ``tutor``: the caller's side of an on-demand session, else None."""
    if row is None:
        return None
    if identity.role == "student" and row.get("student") == identity.subject:
        return "student"
    if identity.role == "tutor" and row.get("tutor_id") == identity.subject:
        return "tutor"
    return None


class Media:
    def __init__(self, broker: Broker, limits: MediaLimits | None = None) -> None:
        self.broker = broker
        self.store = MediaStore(
            broker.store.engine, broker.store.writer, keep=broker.store.keep_text
        )
        self.limits = MediaLimits()
        self.configure(limits or self.limits)

    def configure(self, limits: MediaLimits | None = None, **changes: Any) -> None:
        """Use ``limits`` (or the current ones with ``changes``) from now on."""
        self.limits = replace(limits or self.limits, **changes)
        self.limiter = self.broker.throttles.make(
            "image", self.limits.uploads, self.limits.window_s
        )
        self._decoding = asyncio.Semaphore(self.limits.decoders)

    # -- upload ---------------------------------------------------------------------------
    async def may_upload(self, identity: Identity, session_id: str) -> str:
        """The caller's side of the open session they may upload into (checked before the
        body is read); ``not_found`` if it is not theirs or not open."""
        row = await self.broker.store.session(session_id)
        role = role_in(identity, row)
        if row is not None and row.get("booking") is not None and identity.role in (
            "student", "tutor"
        ):
            raise NotAllowed("pictures cannot be sent in booked sessions yet")
        if row is None or role is None or row["ended_at"] is not None:
            raise NotFound("no such open session of yours")
        tutor = identity.tutor
        if tutor is not None and tutor.id in self.broker.desk.suspended:
            raise NotAllowed("this account is suspended")
        return role

    async def upload(self, identity: Identity, session_id: str, data: bytes) -> dict[str, Any]:
        """Check, re-encode and store one picture in the caller's open session; its view."""
        role = await self.may_upload(identity, session_id)
        await self.broker._throttle(
            self.limiter, f"{role}:{identity.subject}", "too many pictures; wait a moment"
        )
        async with self._decoding:
            prepared = await asyncio.to_thread(prepare, data, self.limits.rules)
        row = {
            "id": new_id(), "session_id": session_id, "sender": role,
            "media_type": prepared.media_type, "width": prepared.width,
            "height": prepared.height, "size_bytes": len(prepared.data), "data": prepared.data,
            "created_at": at(self.broker.clock()),
        }
        limits = self.limits
        failed = await self.store.insert(row, limits.per_session, limits.session_bytes)
        if failed == 0:
            raise NotFound("no such open session of yours")
        if failed is not None:
            count, _ = await self.store.usage(session_id)
            if count >= limits.per_session:
                raise ImageLimit(
                    f"this chat already has {limits.per_session} pictures",
                    limit="count", max=limits.per_session,
                )
            raise ImageLimit(
                "this chat has no room for more pictures", limit="bytes",
                max=limits.session_bytes,
            )
        log.info("image %s stored in session %s (%d bytes from %d)",
                 row["id"], session_id, row["size_bytes"], len(data))
        return image_view(row)

    # -- the message that announces it ----------------------------------------------------
    async def announcing(
        self, session_id: str, role: str, image_id: str
    ) -> tuple[str, dict[str, Any]]:
        """(the announcing message's ``client_id``, the picture's view) for ``chat:send
        {image}`` by ``role``; ``not_found`` unless that side uploaded it to this session."""
        row = await self.store.find(session_id, image_id)
        if row is None or row["sender"] != role:
            raise NotFound("no such picture of yours in this chat")
        return CLIENT_ID_PREFIX + image_id, image_view(row)

    async def attach(self, session_id: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` (a session's, in ``seq`` order) with their pictures (``image``)."""
        if not messages:
            return messages
        found = await self.store.announced_after(session_id, int(messages[0]["seq"]) - 1)
        for message in messages:
            picture = found.get(int(message["seq"]))
            if picture is not None:
                message["image"] = image_view(picture)
        return messages

    # -- fetch ----------------------------------------------------------------------------
    async def fetch(self, identity: Identity, session_id: str, image_id: str) -> tuple[bytes, str]:
        """(bytes, media type) of a picture the caller may see: their own, or the other
        side's once announced; while the session is open and shortly after its end."""
        row = await self.broker.store.session(session_id)
        role = role_in(identity, row)
        if row is None or role is None:
            raise NotFound("no such picture")
        ended = epoch(row["ended_at"])
        if ended is not None and ended < self.broker.clock() - BUFFER_AFTER_END_S:
            raise NotFound("no such picture")
        found = await self.store.find(session_id, image_id)
        if found is None or (found["sender"] != role and found["seq"] is None):
            raise NotFound("no such picture")
        data = await self.store.data(image_id)
        if data is None:
            raise NotFound("no such picture")
        return data, str(found["media_type"])

    # -- deletion -------------------------------------------------------------------------
    async def drop_ended(self, ended_before: float) -> int:
        """Delete the pictures of sessions that ended before ``ended_before`` (retention
        off); every process's sweep calls it with the message buffers'."""
        dropped = await self.store.drop_ended(at(ended_before))
        if dropped:
            log.info("deleted %d pictures of ended sessions", dropped)
        return dropped
