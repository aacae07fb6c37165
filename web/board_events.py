"""socket.io wiring of the shared whiteboard (``board:*`` in ``/student`` and ``/tutor``,
docs/protocol.md "Whiteboard"): parse the ids, hand the rest to
:class:`broker.whiteboard.Whiteboard`, which validates, authorises, keeps and relays."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from broker.identity import Identity
from broker.service import Broker
from broker.whiteboard import stroke_id
from web import payloads as p

Handler = Callable[[Identity, dict[str, Any], str], Awaitable[dict[str, Any] | None]]
Register = Callable[[str, str, Handler], None]


def register(register_event: Register, broker: Callable[[], Broker]) -> None:
    """Register the four board events on both chat namespaces with the gateway's
    ``_register`` (one typed ack per event, one event at a time per connection)."""

    async def board_stroke(who: Identity, data: dict[str, Any], sid: str) -> dict[str, Any]:
        return await broker().board.stroke(who, p.ident(data, "session_id"), data)

    async def board_undo(who: Identity, data: dict[str, Any], sid: str) -> dict[str, Any]:
        return await broker().board.undo(who, p.ident(data, "session_id"), stroke_id(data))

    async def board_clear(who: Identity, data: dict[str, Any], sid: str) -> dict[str, Any]:
        return await broker().board.clear(who, p.ident(data, "session_id"))

    async def board_sync(who: Identity, data: dict[str, Any], sid: str) -> dict[str, Any]:
        return await broker().board.sync(who, p.ident(data, "session_id"))

    for namespace in ("/student", "/tutor"):
        register_event(namespace, "board:stroke", board_stroke)
        register_event(namespace, "board:undo", board_undo)
        register_event(namespace, "board:clear", board_clear)
        register_event(namespace, "board:sync", board_sync)
