"""Each socket.io client's rooms, indexed, so that a disconnect costs its own rooms.

python-socketio's ``BaseManager.basic_disconnect`` copies and searches every room of the
namespace (two per student: its sid and ``s:<pseudonym>``) for each client that
disconnects: O(clients) each. When thousands leave at once (a SIGTERM, a crash's clients
arriving and a network blip sending them away again, a school's Wi-Fi dropping) that is
O(n^2) on the event loop: a SIGTERM with 18,000 clients took more than two minutes, and a
crash's survivor held its loop for 8.7 s while its 18,000 clients left (bench/peak.py,
2026-12-04, seen by web/stall_watch.py).

:func:`index_rooms` replaces, on one manager instance, ``basic_enter_room``,
``basic_leave_room`` and ``basic_disconnect`` by versions that keep and use an index of
every client's rooms. Guarantees: the manager's own ``rooms`` stay exactly what upstream
would have made them (the index only says where to look); a client the index does not
know (connected before it was installed and never indexed) falls back to upstream's scan;
installing it twice on one manager is a no-op.
"""

from __future__ import annotations

import collections
from typing import Any

_INSTALLED = "_hh_rooms_indexed"


def index_rooms(manager: Any) -> None:
    """Index ``manager``'s rooms by client from now on (see the module's doc)."""
    if getattr(manager, _INSTALLED, False):
        return
    rooms_of: dict[tuple[str, str], list[Any]] = collections.defaultdict(list)
    for namespace, rooms in list(manager.rooms.items()):
        for room, members in list(rooms.items()):
            for sid in list(members):
                rooms_of[(namespace, sid)].append(room)
    original_disconnect = manager.basic_disconnect
    original_enter = manager.basic_enter_room
    original_leave = manager.basic_leave_room

    def basic_enter_room(sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        original_enter(sid, namespace, room, eio_sid=eio_sid)
        rooms = rooms_of[(namespace, sid)]
        if room not in rooms:
            rooms.append(room)

    def basic_leave_room(sid: str, namespace: str, room: Any) -> None:
        original_leave(sid, namespace, room)
        rooms = rooms_of.get((namespace, sid))
        if rooms is not None and room in rooms:
            rooms.remove(room)

    def basic_disconnect(sid: str, namespace: str, **kwargs: Any) -> None:
        rooms = rooms_of.pop((namespace, sid), None)
        if rooms is None:
            original_disconnect(sid, namespace, **kwargs)
            return
        for room in rooms:
            original_leave(sid, namespace, room)
        manager.callbacks.pop(sid, None)
        for pending in (manager.pending_connect, manager.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    manager.basic_enter_room = basic_enter_room
    manager.basic_leave_room = basic_leave_room
    manager.basic_disconnect = basic_disconnect
    setattr(manager, _INSTALLED, True)
