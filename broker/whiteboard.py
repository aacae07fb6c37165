"""The shared whiteboard of an on-demand session: strokes relayed between its two sides and
kept for the session's life in the fan-out layer (docs/protocol.md, "Whiteboard").

A board is session content, like a message body: not a fact that must survive. Its strokes
live in process memory (embedded stack) or in one Redis list per session with a TTL (scaled
stack, :meth:`broker.redis_keys.RedisKeys.board`), and are dropped when the session ends
(:meth:`Whiteboard.drop`, called by the broker's one place that ends sessions). A Redis loss
clears the boards; nothing else notices.

Guarantees:

* **Only the session's two participants** draw, undo, clear and read its board, and only
  while it is open (the broker's participant check: another student's or tutor's session
  answers ``not_found``, exactly as ``chat:send`` does). A booked room has no board.
* **Relayed to the other side only**: a stroke of the student goes to the tutor's
  connections and vice versa; never to another session, never back to the sender (who
  drew it). The sender's other tabs catch up with ``board:sync``.
* **Bounded**: at most :data:`MAX_POINTS` points per batch, coordinates normalised to
  0..1 (rounded to 1/10,000), a fixed set of tools, ``#rrggbb`` colours, widths 1..40,
  text of at most :data:`MAX_TEXT` characters screened and recorded as a chat message is
  (masked parts masked; what the chat would hold is refused and kept for staff review;
  distress raises the staff alert and shows the student the crisis resources). At most
  :data:`MAX_ENTRIES` entries per board (``conflict``, ``reason: "board_full"``: clear it)
  and :data:`RATE_EVENTS` events per sender per :data:`RATE_WINDOW_S` (``rate_limited``),
  counted across processes.
* **An error reply means nothing changed**: every check runs before the one write.

A board is an append-only log of entries: a stroke batch (a long pen stroke arrives in
several batches with one stroke ``id``, each appending points), an undo (of one of the
undoer's own strokes) and a clear (the log is emptied). :func:`fold` turns the log into the
strokes to draw, which ``board:sync`` returns.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from broker.constants import REDIS_WAIT_S
from broker.errors import Conflict, InvalidPayload, NotAllowed, NotFound, RateLimited
from broker.outages import OutageLog
from broker.redis_keys import RedisKeys
from broker.throttle import MemoryThrottle

if TYPE_CHECKING:
    from broker.identity import Identity
    from broker.service import Broker

log = logging.getLogger(__name__)
outages = OutageLog(log)

TOOLS = frozenset({"pen", "line", "rect", "ellipse", "text", "eraser"})
SHAPES = frozenset({"line", "rect", "ellipse"})  # two points: from, to
MAX_POINTS = 256  # per batch (a client sends a pen stroke every ~50 ms)
MAX_ENTRIES = 10_000  # per board: about 10 minutes of continuous drawing by both sides
MAX_TEXT = 200
MAX_WIDTH = 40
RATE_EVENTS = 120  # per sender per window: 30 batches a second, with room for bursts
RATE_WINDOW_S = 4.0
BOARD_TTL_S = 4 * 3600  # a board untouched this long is dropped even if its end was missed
MEMORY_BOARDS = 20_000  # the memory store forgets the least recently drawn-on beyond this
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,40}")
COLOUR_PATTERN = re.compile(r"#[0-9a-fA-F]{6}")
DEFAULT_COLOUR = "#1f2937"


# -- the log's storage ---------------------------------------------------------------------
class BoardStore(abc.ABC):
    """Each open session's board log (entries are JSON texts, oldest first) and the
    drawing rate of each sender, checked where the entry is added: one round trip."""

    @abc.abstractmethod
    async def append(self, session_id: str, entry: str, cap: int, sender: str) -> str | float:
        """Add ``entry`` for ``sender``: ``"ok"``; ``"full"`` when the board already holds
        ``cap`` entries; else the seconds until ``sender`` may draw again (past
        :data:`RATE_EVENTS` per :data:`RATE_WINDOW_S`). Only ``"ok"`` changed anything."""

    @abc.abstractmethod
    async def entries(self, session_id: str) -> list[str]:
        """The board's log, oldest first (empty for an unknown or dropped board)."""

    @abc.abstractmethod
    async def drop(self, session_id: str) -> None:
        """Forget the board (session ended, or cleared)."""

    @abc.abstractmethod
    def limit_rate(self, limit: int, window_s: float) -> None:
        """Change the drawing rate limit (tests, and a district that wants another)."""


class MemoryBoards(BoardStore):
    """Boards in this process (the embedded stack: one process). Bounded: boards untouched
    for :data:`BOARD_TTL_S` and, past :data:`MEMORY_BOARDS` boards, the least recently
    drawn-on ones are forgotten. The rate is a :class:`~broker.throttle.MemoryThrottle`."""

    def __init__(self, clock: Any = time.monotonic, max_boards: int = MEMORY_BOARDS,
                 throttle_clock: Any = time.time) -> None:
        self.clock = clock
        self.throttle_clock = throttle_clock
        self.max_boards = max_boards
        self._boards: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self.limit_rate(RATE_EVENTS, RATE_WINDOW_S)

    def limit_rate(self, limit: int, window_s: float) -> None:
        self.limiter = MemoryThrottle("board", limit, window_s, self.throttle_clock)

    async def append(self, session_id: str, entry: str, cap: int,
                     sender: str = "") -> str | float:
        wait = await self.limiter.retry_after(sender)
        if wait > 0:
            return wait
        now = self.clock()
        _, log_ = self._boards.pop(session_id, (now, []))
        if len(log_) >= cap:
            self._boards[session_id] = (now, log_)
            return "full"
        await self.limiter.record(sender)
        log_.append(entry)
        self._boards[session_id] = (now, log_)  # most recently drawn-on last
        while self._boards:
            oldest, (touched, _) = next(iter(self._boards.items()))
            if len(self._boards) <= self.max_boards and now - touched < BOARD_TTL_S:
                break
            del self._boards[oldest]
        return "ok"

    async def entries(self, session_id: str) -> list[str]:
        found = self._boards.get(session_id)
        if found is None or self.clock() - found[0] >= BOARD_TTL_S:
            return []
        return list(found[1])

    async def drop(self, session_id: str) -> None:
        self._boards.pop(session_id, None)


# The sender's sliding window exactly as broker/throttle.py keeps it in Redis (a sorted set
# under the same ``<p>:rate:board:<digest>`` key), then the cap, then the entry: one script.
_APPEND = """
local now, window, limit = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return tostring(math.max(tonumber(oldest[2]) + window - now, 1.0))
end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 'full' end
redis.call('ZADD', KEYS[2], now, ARGV[7])
redis.call('EXPIRE', KEYS[2], math.ceil(window) + 1)
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 'ok'
"""


class RedisBoards(BoardStore):
    """One Redis list per board, shared by every process, expiring :data:`BOARD_TTL_S`
    after its last entry; the sender's rate (counted across processes), the cap and the
    entry are checked and added in one script, one round trip per stroke batch."""

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, clock: Any = time.time) -> None:
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self._append = redis.register_script(_APPEND)
        self.limit_rate(RATE_EVENTS, RATE_WINDOW_S)

    def limit_rate(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s

    async def append(self, session_id: str, entry: str, cap: int,
                     sender: str = "") -> str | float:
        now = self.clock()
        result = await self._append(
            keys=[self.keys.board(session_id), self.keys.throttle("board", sender)],
            args=[entry, cap, BOARD_TTL_S, repr(now), repr(self.window_s), self.limit,
                  f"{now}:{uuid.uuid4().hex[:8]}"],
        )
        text = result.decode() if isinstance(result, bytes) else str(result)
        return text if text in ("ok", "full") else float(text)

    async def entries(self, session_id: str) -> list[str]:
        raw = await self.redis.lrange(self.keys.board(session_id), 0, -1)
        return [item.decode() if isinstance(item, bytes) else str(item) for item in raw]

    async def drop(self, session_id: str) -> None:
        await self.redis.delete(self.keys.board(session_id))


# -- validation ------------------------------------------------------------------------------
def stroke_id(data: dict[str, Any], key: str = "id") -> str:
    value = data.get(key)
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidPayload(f"'{key}' must be 1-40 letters, digits, - or _", field=key)
    return value


def _coordinate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidPayload("'points' must be [x, y] pairs of numbers from 0 to 1",
                             field="points")
    if not 0.0 <= value <= 1.0:
        raise InvalidPayload("'points' must be [x, y] pairs of numbers from 0 to 1",
                             field="points")
    return round(float(value), 4)


def points(data: dict[str, Any]) -> list[list[float]]:
    """``[[x, y], ...]``: 1..:data:`MAX_POINTS` pairs, each coordinate 0..1 (the board's
    width and height), rounded to 1/10,000."""
    value = data.get("points")
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_POINTS:
        raise InvalidPayload(f"'points' must be a list of 1 to {MAX_POINTS} [x, y] pairs",
                             field="points")
    out = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise InvalidPayload("'points' must be [x, y] pairs of numbers from 0 to 1",
                                 field="points")
        out.append([_coordinate(pair[0]), _coordinate(pair[1])])
    return out


def stroke(data: dict[str, Any]) -> dict[str, Any]:
    """A validated stroke batch (without ``by``): ``id``, ``tool``, ``colour``, ``width``,
    ``points``, ``text`` (the text tool only). A continuation of a pen or eraser stroke
    (``part`` > 0) carries only its new points."""
    sid = stroke_id(data)
    part = data.get("part", 0)
    if isinstance(part, bool) or not isinstance(part, int) or not 0 <= part <= 100_000:
        raise InvalidPayload("'part' must be an integer from 0 to 100000", field="part")
    tool = data.get("tool")
    if not isinstance(tool, str) or tool not in TOOLS:  # a list or object is unhashable
        raise InvalidPayload(f"'tool' must be one of {sorted(TOOLS)}", field="tool")
    colour = data.get("colour", DEFAULT_COLOUR)
    if not isinstance(colour, str) or not COLOUR_PATTERN.fullmatch(colour):
        raise InvalidPayload("'colour' must be #rrggbb", field="colour")
    width = data.get("width", 3)
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise InvalidPayload(f"'width' must be an integer from 1 to {MAX_WIDTH}", field="width")
    pts = points(data)
    out: dict[str, Any] = {"id": sid, "part": part, "tool": tool, "colour": colour.lower(),
                           "width": width, "points": pts}
    if tool in SHAPES and (part or len(pts) != 2):
        raise InvalidPayload(f"a {tool} is two points, [from, to], in one batch", field="points")
    if tool == "text":
        if part or len(pts) != 1:
            raise InvalidPayload("a text is one point, where it starts", field="points")
        text = data.get("text")
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise InvalidPayload(f"'text' must be 1 to {MAX_TEXT} characters", field="text")
        if any(ch < " " for ch in text):
            raise InvalidPayload("'text' must be one line without control characters",
                                 field="text")
        out["text"] = text
    elif "text" in data:
        raise InvalidPayload("only the text tool has 'text'", field="text")
    return out


# -- folding the log ---------------------------------------------------------------------------
def fold(entries: list[str]) -> list[dict[str, Any]]:
    """The strokes to draw, oldest first: batches of one stroke (same ``by`` and ``id``)
    joined, undone strokes left out, everything before the last clear gone."""
    strokes: dict[tuple[str, str], dict[str, Any]] = {}
    undone: set[tuple[str, str]] = set()
    for raw in entries:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        kind = entry.get("k")
        key = (str(entry.get("by")), str(entry.get("id")))
        if kind == "c":
            strokes.clear()
            undone.clear()
        elif kind == "u":
            strokes.pop(key, None)
            undone.add(key)
        elif kind == "s" and key not in undone:
            known = strokes.get(key)
            if known is None:
                item = {k: v for k, v in entry.items() if k not in ("k", "part")}
                strokes[key] = item
            elif known["tool"] in ("pen", "eraser"):
                known["points"] = known["points"] + entry.get("points", [])
    return list(strokes.values())


# -- the board service -----------------------------------------------------------------------
class Whiteboard:
    """The whiteboard events of the broker's on-demand sessions (wired by ``web/sio.py``)."""

    def __init__(self, broker: Broker, store: BoardStore | None = None) -> None:
        self.broker = broker
        throttles = broker.throttles
        if store is None:
            store = (RedisBoards(throttles.redis, throttles.keys, throttles.clock)
                     if throttles.redis is not None
                     else MemoryBoards(throttle_clock=throttles.clock))
        self.store = store
        self.limiter = throttles.make("board", RATE_EVENTS, RATE_WINDOW_S)  # clears

    async def _side(self, identity: Identity, session_id: str) -> tuple[str, str, str]:
        """(student, tutor id, the caller's role) of an open on-demand session of the
        caller's; ``not_found`` for anything else (a booked room has no board)."""
        if await self.broker._room(session_id) is not None:
            raise NotFound("booked sessions have no whiteboard")
        student, tutor_id, _, role = await self.broker._participant(identity, session_id)
        return student, tutor_id, role

    async def _relay(self, student: str, tutor_id: str, role: str, event: str,
                     data: dict[str, Any]) -> None:
        """To the other side of the session only."""
        if role == "student":
            await self.broker.notifier.to_tutor(tutor_id, event, data)
        else:
            await self.broker.notifier.to_student(student, event, data)

    async def _write(self, session_id: str, role: str, identity: Identity,
                     entry: dict[str, Any]) -> None:
        text = json.dumps(entry, separators=(",", ":"))
        done = await self.store.append(session_id, text, MAX_ENTRIES,
                                       f"{role}:{identity.subject}")
        if done == "full":
            raise Conflict("the whiteboard is full: clear it to draw more", reason="board_full")
        if done != "ok":
            raise RateLimited("drawing too fast", retry_after=int(float(done)) + 1)

    async def stroke(self, identity: Identity, session_id: str,
                     data: dict[str, Any]) -> dict[str, Any]:
        """Keep and relay one stroke batch; the ack carries it as relayed (with ``by``)."""
        batch = stroke(data)
        student, tutor_id, role = await self._side(identity, session_id)
        if "text" in batch:
            # the chat's screening, recorded as the chat's is (a flag for staff to review;
            # for distress an alert and the student's crisis resources)
            screened = await self.broker._screen(identity, session_id, role, batch["text"], None)
            if screened.crisis is not None:
                await self.broker.notifier.to_student(student, "safety:crisis", screened.crisis)
            if screened.held:
                raise NotAllowed("this text cannot go on the whiteboard",
                                 field="text", categories=list(screened.categories))
            batch["text"] = screened.text
        batch["by"] = role
        await self._write(session_id, role, identity, {"k": "s", **batch})
        relayed = {"session_id": session_id, **batch}
        await self._relay(student, tutor_id, role, "board:stroke", relayed)
        return {"stroke": relayed}

    async def undo(self, identity: Identity, session_id: str, sid: str) -> dict[str, Any]:
        """Take back one of the caller's own strokes (another side's id changes nothing)."""
        student, tutor_id, role = await self._side(identity, session_id)
        await self._write(session_id, role, identity, {"k": "u", "by": role, "id": sid})
        data = {"session_id": session_id, "id": sid, "by": role}
        await self._relay(student, tutor_id, role, "board:undo", data)
        return data

    async def clear(self, identity: Identity, session_id: str) -> dict[str, Any]:
        """Empty the board for both sides."""
        student, tutor_id, role = await self._side(identity, session_id)
        await self.broker._throttle(self.limiter, f"{role}:{identity.subject}",
                                    "drawing too fast")
        await self.store.drop(session_id)
        data = {"session_id": session_id, "by": role}
        await self._relay(student, tutor_id, role, "board:clear", data)
        return data

    async def sync(self, identity: Identity, session_id: str) -> dict[str, Any]:
        """Every stroke of the board so far (on opening it, after a reload or a resync)."""
        await self._side(identity, session_id)
        return {"session_id": session_id, "strokes": fold(await self.store.entries(session_id))}

    async def drop(self, session_id: str) -> None:
        """The session ended: forget its board (a failure only leaves it to its TTL)."""
        try:
            async with asyncio.timeout(REDIS_WAIT_S):  # the session's end does not wait on it
                await self.store.drop(session_id)
        except Exception as exc:  # Redis down: one line per outage, not one per end
            outages.failure("dropping an ended session's board", exc,
                            f" ({session_id}); it expires by itself", logging.WARNING)
