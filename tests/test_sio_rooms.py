"""web/sio_rooms.py: an indexed manager's rooms are exactly upstream's, whatever happens."""

from __future__ import annotations

from typing import Any

import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from web.sio_rooms import index_rooms

SIDS = [f"sid{i}" for i in range(6)]
NAMESPACES = ["/student", "/tutor"]
ROOMS = [None, "q:a", "q:b", "s:x"]

step = st.tuples(
    st.sampled_from(["enter", "leave", "disconnect", "close"]),
    st.sampled_from(SIDS),
    st.sampled_from(NAMESPACES),
    st.sampled_from(ROOMS),
)


def apply(manager: Any, op: str, sid: str, namespace: str, room: Any) -> str | None:
    """Do one step; the error upstream raised, if any (the indexed one must raise it too)."""
    try:
        step_on(manager, op, sid, namespace, room)
    except (KeyError, ValueError) as exc:  # not connected to that namespace
        return repr(exc)
    return None


def step_on(manager: Any, op: str, sid: str, namespace: str, room: Any) -> None:
    if op == "enter":  # the sid room (None) is entered as a connect does, with its eio sid
        manager.basic_enter_room(sid, namespace, room, eio_sid=sid if room is None else None)
    elif op == "leave":
        manager.basic_leave_room(sid, namespace, room)
    elif op == "disconnect":
        manager.basic_disconnect(sid, namespace)
    elif room is not None and room.startswith("q:"):  # never a sid room: upstream refuses
        manager.basic_close_room(room, namespace)


def rooms(manager: Any) -> dict[Any, Any]:
    return {
        ns: {room: dict(members) for room, members in by_room.items()}
        for ns, by_room in manager.rooms.items()
    }


@settings(max_examples=300, deadline=None)
@given(before=st.lists(step, max_size=10), after=st.lists(step, max_size=60))
def test_indexed_rooms_match_upstream(before: list[Any], after: list[Any]) -> None:
    """Installed on a manager that already has rooms (as at a SIGTERM) or on an empty one
    (at start): every enter, leave, close and disconnect leaves the same rooms."""
    upstream, indexed = socketio.AsyncManager(), socketio.AsyncManager()
    for op in before:
        apply(upstream, *op)
        apply(indexed, *op)
    index_rooms(indexed)
    index_rooms(indexed)  # twice is once
    for op in after:
        assert apply(indexed, *op) == apply(upstream, *op)
        assert rooms(indexed) == rooms(upstream)


def test_a_disconnect_does_not_scan_every_room() -> None:
    manager = socketio.AsyncManager()
    index_rooms(manager)
    for i in range(2000):
        manager.basic_enter_room(f"c{i}", "/student", None, eio_sid=f"e{i}")
        manager.basic_enter_room(f"c{i}", "/student", f"c{i}")
    looked: list[int] = []
    original = manager.rooms["/student"].copy

    class Watched(dict[Any, Any]):
        def copy(self) -> dict[Any, Any]:  # upstream's scan starts with this copy
            looked.append(1)
            return original()

    manager.rooms["/student"] = Watched(manager.rooms["/student"])
    for i in range(2000):
        manager.basic_disconnect(f"c{i}", "/student")
    assert not looked
    assert not manager.rooms.get("/student")
