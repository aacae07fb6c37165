"""The socket.io server's guard against malformed packets: every packet a client may send is
answered or dropped with one log line; none raises into engine.io (a traceback each) and
none wedges the connection.

What python-socketio itself does with each, and what :class:`GuardedServer` does instead:

* **JSON that does not decode** (a lone UTF-16 surrogate, which a browser's
  ``JSON.stringify`` writes for a text cut in the middle of an emoji; ``NaN``): upstream
  raises and the event is dropped unanswered. Here an EVENT that asked for an ack is
  answered ``invalid_payload`` (its namespace and ack id come before the JSON).
* **A CONNECT whose auth does not decode** (a token with a lone surrogate): upstream
  raises and never answers, so the page waits for its connect timeout. Here it gets the
  documented ``connect_error``, ``{code: "unauthenticated", message}``.
* **An event that is not ``[name, ...args]``** with a string ``name`` (``[]``, an object,
  a list as the name): upstream raises ``IndexError``/``KeyError`` or, for an unhashable
  name, ``TypeError`` in a task nobody awaits. Here: ``invalid_payload``.
* **An event named like a reserved one** (``connect``, ``disconnect``, ``connect_error``,
  ``message``): upstream runs the ``connect`` or ``disconnect`` handler for it. Here:
  ``invalid_payload``.
* **An event on a namespace the connection has not joined**: upstream drops it, so the
  client waits for its ack timeout. Here: ``unauthenticated``.
* **Binary packets** (no client of this product sends one; payloads are JSON): upstream
  keeps the packet until its attachments arrive, and one that declares none wedges the
  connection, every later frame then raising ``Unexpected binary attachment``. Here a
  binary event is answered ``invalid_payload`` and nothing is kept.
* **Anything else that does not decode** (an unknown packet type, a ``CONNECT_ERROR``
  from a client, a stray binary frame): one log line, at most one per
  :data:`LOG_EVERY_S` with how many it stands for, and the packet is dropped.

An unknown event name on a joined namespace is the gateway's to answer (``unknown_event``,
:mod:`web.sio`). Refusals change nothing. Ordering is upstream's: packets of one
connection are dispatched in the order they arrived.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from socketio import packet

from broker.log_pace import LogPace
from web.eio_websocket import LeanEngineServer

log = logging.getLogger(__name__)

RESERVED_EVENTS = frozenset({"connect", "disconnect", "connect_error", "message"})
LOG_EVERY_S = 10.0
MAX_ACK_ID_DIGITS = 15  # ack ids beyond this are not read back (upstream caps at 100)


def error_ack(code: str, message: str) -> dict[str, Any]:
    """The documented refusal: ``{"ok": false, "error": {"code", "message"}}``."""
    return {"ok": False, "error": {"code": code, "message": message}}


def event_header(data: str | bytes) -> tuple[str, int | None] | None:
    """The namespace and ack id of a socket.io EVENT or BINARY_EVENT packet
    (``2/ns,12[...]``, ``51-/ns,12[...]``), read without its JSON; None for any other."""
    if not isinstance(data, str) or data[:1] not in ("2", "5"):
        return None
    rest, namespace = data[1:], "/"
    if data[0] == "5":
        count, dash, after = rest.partition("-")
        if dash and count.isdigit():
            rest = after
    if rest.startswith("/"):
        namespace, comma, rest = rest.partition(",")
        if not comma:
            return None
    digits = len(rest) - len(rest.lstrip("0123456789"))
    if digits > MAX_ACK_ID_DIGITS:
        return None
    return namespace, int(rest[:digits]) if digits else None


def connect_namespace(data: str | bytes) -> str | None:
    """The namespace of a socket.io CONNECT packet (``0/ns,{...}``, ``0{...}``), read
    without its JSON; None for any other packet."""
    if not isinstance(data, str) or not data.startswith("0"):
        return None
    if not data.startswith("0/"):
        return "/"
    namespace, comma, _ = data[1:].partition(",")
    return namespace if comma else None


class GuardedServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server with every malformed packet answered or dropped (module
    docstring). Its engine.io server is :class:`~web.eio_websocket.LeanEngineServer` (one
    idle timer per websocket, not two per frame)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._malformed = LogPace(LOG_EVERY_S)

    def _engineio_server_class(self) -> type[LeanEngineServer]:
        return LeanEngineServer

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        """Upstream's dispatch, with the decoding kept apart from the handlers: a packet
        that does not decode is refused here, and nothing a handler raises is taken for a
        malformed packet."""
        if not isinstance(data, str):  # an attachment, and no binary packet is kept
            self._report("a binary frame without a binary packet")
            return
        try:
            pkt = self.packet_class(encoded_packet=data)
        except (ValueError, TypeError) as exc:
            if (namespace := connect_namespace(data)) is not None:
                log.info("refused a connect to %s whose auth does not decode", namespace)
                refusal = {"message": "malformed token", "data": error_ack(
                    "unauthenticated", "malformed token")["error"]}
                await self._send_packet(eio_sid, self.packet_class(
                    packet.CONNECT_ERROR, data=refusal, namespace=namespace))
                return
            header = event_header(data)
            if header is None:
                self._report(f"a packet that does not decode: {exc}")
                return
            namespace, id = header
            log.info("undecodable event on %s: %s", namespace, exc)
            await self.refuse(eio_sid, namespace, id, "the event's data is not valid JSON")
            return
        kind = pkt.packet_type
        if kind == packet.CONNECT:
            await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
        elif kind == packet.DISCONNECT:
            await self._handle_disconnect(
                eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT
            )
        elif kind == packet.EVENT:
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind == packet.ACK:
            await self._handle_ack(eio_sid, pkt.namespace, pkt.id, pkt.data)
        elif kind == packet.BINARY_EVENT:
            log.info("refused a binary event on %s", pkt.namespace or "/")
            await self.refuse(
                eio_sid, pkt.namespace or "/", pkt.id, "binary data is not accepted; send JSON"
            )
        else:  # BINARY_ACK (the server asks clients for no ack), CONNECT_ERROR, unknown
            self._report(f"an unexpected packet of type {kind!r}")

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: int | None, data: Any
    ) -> None:
        namespace = namespace or "/"
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            log.info("refused a malformed event on %s", namespace)
            await self.refuse(eio_sid, namespace, id, "an event is [name, ...arguments]")
            return
        if data[0] in RESERVED_EVENTS:
            log.info("refused a client event named %r on %s", data[0], namespace)
            await self.refuse(eio_sid, namespace, id, f"{data[0]!r} is a reserved event name")
            return
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if not self.manager.is_connected(sid, namespace):
            log.info("refused an event on %s, which the connection has not joined", namespace)
            await self.refuse(
                eio_sid, namespace, id, f"not connected to {namespace}", code="unauthenticated"
            )
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def refuse(
        self, eio_sid: str, namespace: str, id: int | None, message: str,
        code: str = "invalid_payload",
    ) -> None:
        """Answer an event refused before any handler ran, if it asked for an ack."""
        if id is not None:
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    packet.ACK, namespace=namespace, id=id, data=[error_ack(code, message)]
                ),
            )

    def _report(self, what: str) -> None:
        if self._malformed.due():
            log.warning(
                "malformed socket.io packet: %s (%d more since the last report)",
                what[:200], self._malformed.skipped,
            )
