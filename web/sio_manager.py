"""socket.io fan-out over Redis pub/sub that batches, buffers through outages and reports gaps.

:class:`FanoutManager` is a python-socketio client manager (``AsyncServer(client_manager=)``)
built on the same base as upstream's ``AsyncRedisManager``: ``AsyncPubSubManager`` keeps the
rooms and turns every emit, room change and disconnect into a message; this class provides
its two hooks, ``_publish`` and ``_listen``. What it changes:

* **Batching.** An emit never waits for Redis: its message is encoded, numbered and queued
  in memory, and one sender task publishes whatever has queued since its last round trip as
  *one* ``PUBLISH`` of a batch (``{"method": "batch", "host_id", "seq", "gap", "messages":
  [...]}``), which listeners unpack. With nothing in flight a lone emit goes out at once;
  under load the batch grows with the round trip (up to ``max_batch`` messages and
  ``max_batch_bytes``).
* **Buffering.** A batch leaves the buffer only once Redis has accepted it; a failed or
  timed-out ``PUBLISH`` is retried with backoff, in order, until Redis answers.
* **Flow control.** While Redis answers, an emit made when the backlog is past
  ``high_water`` (four batches) returns only once the sender has caught up, after its local
  delivery: a burst goes at Redis's pace instead of filling the buffer. While publishing
  fails, nothing waits.
* **Reporting.** Lost messages are never silent: see "what is lost" below.

Guarantees
----------
* **Local delivery first, never dependent on Redis.** An emit reaches this process's own
  clients whatever state Redis is in; queueing the publication is a bounded in-memory step
  that cannot fail because of Redis, cannot raise into the caller and is done before local
  delivery starts (so the order other processes see is the order of the ``emit`` calls).
* **Order per publisher.** Every receiving process hands the messages of one publishing
  process to its clients in the order that process queued them (one sender task; a batch is
  retried whole, ahead of everything queued after it; a listener handles messages one at a
  time).
* **At-least-once local delivery of what was published, deduplicated.** Every message
  carries its publisher's sequence number; a listener skips numbers it has already handed
  on, so a batch re-published after an ambiguous failure (timeout) is delivered once.

What is lost, and how it is reported
------------------------------------
* **Redis unreachable for this process, briefly** (publish fails, connection reset, Redis
  restarting): nothing the other processes' listeners are subscribed for. Messages wait in
  the buffer and are re-published in order when Redis answers (``publish_failures`` counts
  the failed round trips, ``buffered`` shows the backlog, ``healthy`` is false meanwhile).
* **The outage outlasts the buffer** (more than ``max_buffer`` messages, or a message older
  than ``max_age_s``): the oldest messages are dropped and counted in ``dropped``; the next
  batch that reaches Redis carries the number dropped, and every process's listener (this
  one's included) calls :attr:`FanoutManager.on_gap`.
* **A listener's subscription breaks** (connection killed, Redis restarted, no answer to a
  ``PING``) or cannot be made at start: whatever other processes published before it is
  subscribed is lost for this process's clients. The listener resubscribes with backoff
  and, once Redis confirms the subscription, calls ``on_gap`` (``gaps`` counts it). In a
  Redis restart, a backlog re-published before a listener is back is lost for that
  listener alone, and covered by the same call. A ``FLUSHALL`` does not affect pub/sub.
* **A publisher's sequence jumps** (a batch numbered past the last one received from that
  process, as after a resubscription that came later than the batch): ``on_gap`` as well.
* **A process dies**: its buffer dies with it (its own clients are gone too).

``on_received(event, data)``, if set, is called (synchronously, never raising into the
listener) after each emit from another process has been handed to local clients, so that
the server can note what its clients were shown (:meth:`broker.service.Broker.shown_elsewhere`).

``on_gap`` is an async callable without arguments that the server sets; it is meant to tell
the local clients to re-fetch their state from the database (``server:resync``), so that
nothing acknowledged is lost end to end. Calls are coalesced: gaps detected while it runs
cause one more call after it returns. It runs in a task of its own, never in the listener.

Messages in upstream's format (one message per ``PUBLISH``, from ``socketio.AsyncRedisManager``
or a write-only emitter) are still received, without sequence checks. Upstream listeners do
not understand batches: do not mix the two managers' publishers on one channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from socketio.async_pubsub_manager import AsyncPubSubManager

from broker.redis_keys import RedisKeys
from broker.redis_pool import open_redis

log = logging.getLogger(__name__)

GapHook = Callable[[], Awaitable[None]]
ReceivedHook = Callable[[str, Any], None]

# Publisher: first retry after RETRY_MIN_S, doubling to RETRY_MAX_S (with jitter).
RETRY_MIN_S = 0.05
RETRY_MAX_S = 1.0
# Listener: first resubscription after RETRY_MIN_S, doubling to RESUBSCRIBE_MAX_S.
RESUBSCRIBE_MAX_S = 2.0
TASKS_STOP_S = 2.0  # how long close() waits for its cancelled tasks to end
# Sequence numbers are remembered for this many publishing processes (oldest forgotten).
KNOWN_HOSTS = 1024


@dataclass(slots=True)
class FanoutCounters:
    """Totals since the manager started; ``buffered`` and ``healthy`` are read live."""

    published: int = 0  # messages Redis accepted
    batches: int = 0  # PUBLISH round trips that succeeded
    publish_failures: int = 0  # PUBLISH round trips that failed (their messages kept)
    dropped: int = 0  # messages dropped from the buffer (over max_buffer or max_age_s)
    gaps: int = 0  # gaps this process's listener detected (each one leads to on_gap)
    received: int = 0  # messages from other processes handed to local delivery
    duplicates: int = 0  # re-published messages already received, skipped
    resubscribed: int = 0  # subscriptions re-established after a break
    kept_local: int = 0  # emits to a connection of this process, never published


@dataclass(slots=True)
class _Entry:
    seq: int
    queued_at: float
    text: str


class FanoutManager(AsyncPubSubManager):  # type: ignore[misc]
    """The broker's socket.io client manager over Redis (see the module's docstring).

    ``prefix`` names the channel (:attr:`RedisKeys.socketio_channel`). The publishing client
    comes from :func:`broker.redis_pool.open_redis`; the subscription has a connection of its
    own, named ``<channel>:sub:<host id>`` in ``CLIENT LIST``. Call :meth:`close` on shutdown
    to publish what is still buffered (bounded by a timeout) and stop the tasks.

    ``on_gap``: the async hook called after a gap (settable later as :attr:`on_gap`).
    ``max_buffer`` / ``max_age_s``: the buffer's bounds, past which the oldest unpublished
    messages are dropped. ``max_batch`` / ``max_batch_bytes``: the most one ``PUBLISH``
    carries. ``publish_timeout_s``: how long a ``PUBLISH``, a connection or a ``SUBSCRIBE``
    may take before it counts as failed. ``ping_interval_s``: a quiet subscription is
    ``PING``-ed this often and declared broken after two intervals without any reply.
    """

    name = "hh-redis"

    def __init__(
        self,
        url: str,
        prefix: str = "hh",
        *,
        on_gap: GapHook | None = None,
        write_only: bool = False,
        max_buffer: int = 10_000,
        max_age_s: float = 30.0,
        max_batch: int = 500,
        max_batch_bytes: int = 256 * 1024,
        publish_timeout_s: float = 5.0,
        ping_interval_s: float = 5.0,
        logger: Any = None,
        json: Any = None,
    ) -> None:
        super().__init__(
            channel=RedisKeys(prefix).socketio_channel,
            write_only=write_only,
            logger=logger,
            json=json,
        )
        self.redis_url = url
        self.on_gap: GapHook | None = on_gap
        self.on_received: ReceivedHook | None = None
        self.max_buffer = max_buffer
        self.max_age_s = max_age_s
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        # While Redis answers, an emit returns only once the backlog is below this.
        self.high_water = min(max_buffer, 4 * max_batch)
        self.publish_timeout_s = publish_timeout_s
        self.ping_interval_s = ping_interval_s
        self.counters = FanoutCounters()
        self._buffer: deque[_Entry] = deque()
        self._seq = 0  # the last number given to a queued message
        self._gap_notice = 0  # messages dropped since the last batch Redis accepted
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()  # replaced (and the old one set) after each attempt
        self._drained = asyncio.Event()
        self._drained.set()
        self._sender: asyncio.Task[None] | None = None
        self._publisher: aioredis.Redis | None = None
        self._publish_ok = True
        self._failing_since = 0.0
        self._listening = False
        self._subscribed = False
        self._subscriber: aioredis.Redis | None = None
        self._last_seq: dict[str, int] = {}
        self._gap_task: asyncio.Task[None] | None = None
        self._gap_again = False
        self._closed = False

    # -- health ---------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """Publishing works and, once listening, the subscription is confirmed."""
        return self._publish_ok and (self._subscribed or not self._listening)

    @property
    def subscribed(self) -> bool:
        """The listener holds a subscription that Redis has confirmed."""
        return self._subscribed

    @property
    def buffered(self) -> int:
        """Messages queued and not yet accepted by Redis (including one batch in flight)."""
        return len(self._buffer)

    def stats(self) -> dict[str, int]:
        """Every counter, the buffer's length and ``healthy`` (0/1), for /metrics."""
        return {**asdict(self.counters), "buffered": self.buffered, "healthy": int(self.healthy)}

    # -- lifecycle ------------------------------------------------------------------------
    def initialize(self) -> None:
        """Called by the server before its first connection: starts the listener."""
        self._listening = not self.write_only
        super().initialize()

    async def drained(self) -> None:
        """Return once everything queued so far has been published (or dropped)."""
        await self._drained.wait()

    async def close(self, flush_timeout_s: float = 2.0) -> None:
        """Publish what is buffered (for at most ``flush_timeout_s``), then stop everything."""
        if self._closed:
            return
        if self._sender is not None and not self._sender.done():
            try:
                async with asyncio.timeout(flush_timeout_s):
                    await self.drained()
            except TimeoutError:
                log.warning(
                    "socket.io fan-out: closing with %d messages not published", self.buffered
                )
        self._closed = True
        self._signal_progress()
        tasks = [t for t in (self._sender, self._gap_task, getattr(self, "thread", None))
                 if isinstance(t, asyncio.Future) and not t.done()]
        for task in tasks:
            task.cancel()
        # Closing the connections too ends a read from Redis whose cancellation was lost:
        # redis-py's read with a timeout has been seen to swallow it (under load, 2 stops
        # in 8), and the listener then went on reading, PINGing and being answered, and the
        # wait for it held the stop for a minute. The waits here are bounded, and they do
        # not swallow the caller's own cancellation.
        for client in (self._publisher, self._subscriber):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=TASKS_STOP_S)
            if pending:
                log.warning("socket.io fan-out: %d tasks still running %.1f s after close",
                            len(pending), TASKS_STOP_S)
        self._publisher = self._subscriber = None
        self._listening = self._subscribed = False

    # -- publishing -----------------------------------------------------------------------
    async def _handle_emit(self, message: dict[str, Any]) -> None:
        # Upstream's emit() hands this process's own message here (local delivery) and then
        # to _publish(). Queue it for the other processes first: queueing cannot block, and
        # the local delivery below awaits, so concurrent emits would otherwise be published
        # in a different order from the one in which they were made. The listener never
        # passes this process's own messages here (upstream filters them by host id).
        # An emit addressed to one of this process's own connections (its sid is a room no
        # other process has) is not published at all.
        if message.get("host_id") == self.host_id:
            if self._local_sid(message.get("room"), message.get("namespace")):
                self.counters.kept_local += 1
            else:
                self._queue(message)
            await super()._handle_emit(message)
            return
        await super()._handle_emit(message)
        hook = self.on_received
        if hook is not None:
            data = message.get("data")
            if isinstance(data, list) and len(data) == 1:
                data = data[0]
            try:
                hook(str(message.get("event")), data)
            except Exception:
                log.exception("socket.io fan-out: on_received failed")

    def _local_sid(self, room: Any, namespace: Any) -> bool:
        return isinstance(room, str) and self.eio_sid_from_sid(room, namespace) is not None

    async def _publish(self, data: dict[str, Any]) -> None:
        # Called after local delivery. Own emits were queued by _handle_emit already.
        if not (data.get("method") == "emit" and data.get("host_id") == self.host_id):
            self._queue(data)
        # Flow control: while Redis answers but the backlog is past the high-water mark
        # (emits made faster than Redis takes them), the caller waits for the sender to
        # catch up, as upstream's emit waited for its own PUBLISH. Never while publishing
        # fails: then the buffer takes the emits, and its bounds decide what is dropped.
        while len(self._buffer) >= self.high_water and self._publish_ok and not self._closed:
            await self._progress.wait()

    def _queue(self, message: dict[str, Any]) -> None:
        """Number, encode and buffer one message; never raises, never waits."""
        if self._closed:
            log.debug("socket.io fan-out: closed; %s not published", message.get("method"))
            return
        try:
            text = self.json.dumps(message)
        except Exception:
            log.exception("socket.io fan-out: cannot encode a %s message", message.get("method"))
            return
        self._seq += 1
        self._buffer.append(_Entry(self._seq, time.monotonic(), text))
        if len(self._buffer) > self.max_buffer:
            self._drop(len(self._buffer) - self.max_buffer, f"more than {self.max_buffer}")
        self._drained.clear()
        self._wake.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(
                self._send_loop(), name="socketio-fanout-publish"
            )

    def _drop(self, count: int, why: str) -> None:
        for _ in range(count):
            self._buffer.popleft()
        if self._gap_notice == 0:  # the first drop since Redis last took a batch
            log.error(
                "socket.io fan-out: dropping the oldest unpublished messages (%s); "
                "the other processes will be told to resync",
                why,
            )
        self.counters.dropped += count
        self._gap_notice += count

    def _expire(self) -> None:
        limit = time.monotonic() - self.max_age_s
        old = 0
        for entry in self._buffer:
            if entry.queued_at >= limit:
                break
            old += 1
        if old:
            self._drop(old, f"older than {self.max_age_s:g} s")

    async def _send_loop(self) -> None:
        delay = RETRY_MIN_S
        while True:
            if not self._buffer and not self._gap_notice:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            self._expire()
            batch = self._next_batch()
            gap = self._gap_notice
            first = batch[0].seq if batch else self._seq + 1
            try:
                await self._send(first, [e.text for e in batch], gap)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._publish_failed(exc)
                self._signal_progress()
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            self._published(batch[-1].seq if batch else 0, len(batch), gap)
            self._signal_progress()

    def _next_batch(self) -> list[_Entry]:
        """The oldest messages, at most ``max_batch`` of them and ``max_batch_bytes`` (but at
        least one): Redis disconnects a subscriber whose output buffer passes 32 MB."""
        batch: list[_Entry] = []
        size = 0
        for entry in itertools.islice(self._buffer, self.max_batch):
            size += len(entry.text)
            if batch and size > self.max_batch_bytes:
                break
            batch.append(entry)
        return batch

    def _signal_progress(self) -> None:
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def _send(self, first_seq: int, texts: list[str], gap: int) -> None:
        """One round trip: publish ``texts`` (numbered from ``first_seq``) as one batch."""
        async with asyncio.timeout(self.publish_timeout_s):
            await self._publishing_client().publish(
                self.channel, self._envelope(first_seq, texts, gap)
            )

    def _envelope(self, first_seq: int, texts: list[str], gap: int) -> str:
        messages = ",".join(texts)  # each one is JSON already: nothing is encoded twice
        return (
            f'{{"method":"batch","host_id":"{self.host_id}","seq":{first_seq},'
            f'"gap":{gap},"messages":[{messages}]}}'
        )

    def _publishing_client(self) -> aioredis.Redis:
        if self._publisher is None:
            self._publisher = open_redis(self.redis_url)
            # Failures come back to the send loop, which retries in order and counts them,
            # instead of redis-py retrying a PUBLISH out of sight.
            self._publisher.set_retry(Retry(NoBackoff(), 0))
        return self._publisher

    def _publish_failed(self, exc: BaseException) -> None:
        self.counters.publish_failures += 1
        if self._publish_ok:
            self._publish_ok = False
            self._failing_since = time.monotonic()
            log.warning(
                "socket.io fan-out: cannot publish to Redis (%s); buffering emits",
                _describe(exc),
            )

    def _published(self, last_seq: int, count: int, gap: int) -> None:
        while self._buffer and self._buffer[0].seq <= last_seq:
            self._buffer.popleft()
        self._gap_notice -= gap
        self.counters.published += count
        self.counters.batches += 1
        if not self._publish_ok:
            self._publish_ok = True
            log.warning(
                "socket.io fan-out: publishing again after %.2f s (%d messages buffered)",
                time.monotonic() - self._failing_since,
                len(self._buffer),
            )
        if gap:
            log.warning("socket.io fan-out: told the other processes of %d dropped messages", gap)

    # -- listening ------------------------------------------------------------------------
    async def _listen(self) -> AsyncIterator[dict[str, Any]]:
        """Messages from the other processes, in order; resubscribes after any break."""
        delay = RETRY_MIN_S
        lost = False  # something may have been missed since the listener started
        since = time.monotonic()
        while not self._closed:
            client = aioredis.Redis.from_url(
                self.redis_url,
                client_name=f"{self.channel}:sub:{self.host_id[:12]}",
                retry=Retry(NoBackoff(), 0),  # a silent reconnect would hide the gap
                socket_connect_timeout=self.publish_timeout_s,
            )
            self._subscriber = client
            pubsub: Any = client.pubsub()
            try:
                async with asyncio.timeout(self.publish_timeout_s):
                    await pubsub.subscribe(self.channel)
                async for message in self._receive(pubsub, lost, since):
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closed:
                    break
                if self._subscribed or not lost:  # it was working, or this is the first try
                    log.warning(
                        "socket.io fan-out: cannot receive from Redis (%s); resubscribing",
                        _describe(exc),
                    )
                if self._subscribed:
                    delay, since = RETRY_MIN_S, time.monotonic()
                lost = True
            finally:
                self._subscribed = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            if self._closed:
                break
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, RESUBSCRIBE_MAX_S)
        # Closed (its cancellation lost, see close()): end as a cancelled listener does,
        # which upstream's _thread takes quietly (a listener that returns is logged as an
        # error).
        raise asyncio.CancelledError

    async def _receive(
        self, pubsub: Any, lost: bool, since: float
    ) -> AsyncIterator[dict[str, Any]]:
        """Read one subscription until it breaks (raises); PINGs it when it is quiet."""
        heard = time.monotonic()
        pinged = False
        while not self._closed:
            reply = await pubsub.get_message(timeout=self.ping_interval_s)
            now = time.monotonic()
            if reply is None:
                if now - heard > 2 * self.ping_interval_s:
                    raise ConnectionError(f"no answer to PING for {now - heard:.1f} s")
                if not pinged:
                    await pubsub.ping()
                    pinged = True
                continue
            heard, pinged = now, False
            kind = reply["type"]
            if kind == "subscribe":
                if self._subscribed or lost:
                    self.counters.resubscribed += 1
                    self._gap(f"subscribed again after {now - since:.2f} s")
                self._subscribed = True
                lost = True  # any later confirmation means the client reconnected
            elif kind == "message":
                for message in self._unpack(reply["data"]):
                    yield message

    def _unpack(self, data: bytes | str) -> list[dict[str, Any]]:
        try:
            doc = self.json.loads(data)
        except Exception:
            log.warning("socket.io fan-out: ignored a message that is not JSON")
            return []
        if not isinstance(doc, dict):
            return []
        if doc.get("method") != "batch":
            self.counters.received += 1
            return [doc]  # upstream's format: one message per PUBLISH
        host, first, gap, messages = (doc.get(k) for k in ("host_id", "seq", "gap", "messages"))
        if not (isinstance(host, str) and isinstance(first, int) and isinstance(messages, list)):
            log.warning("socket.io fan-out: ignored a malformed batch")
            return []
        if gap:
            self._gap(f"process {host[:12]} dropped {gap} unpublished messages")
        if host == self.host_id:
            return []  # its messages went to this process's clients when they were emitted
        last = self._last_seq.pop(host, None)
        if last is not None and first > last + 1 and not gap:
            self._gap(f"messages {last + 1}..{first - 1} of process {host[:12]} never arrived")
        skip = 0 if last is None else min(max(0, last + 1 - first), len(messages))
        self._last_seq[host] = max(first + len(messages) - 1, last if last is not None else 0)
        if len(self._last_seq) > KNOWN_HOSTS:
            del self._last_seq[next(iter(self._last_seq))]
        self.counters.duplicates += skip
        self.counters.received += len(messages) - skip
        return [m for m in messages[skip:] if isinstance(m, dict)]

    # -- gaps -----------------------------------------------------------------------------
    def _gap(self, why: str) -> None:
        self.counters.gaps += 1
        log.warning("socket.io fan-out: gap (%s); local clients must resync", why)
        if self._gap_task is not None and not self._gap_task.done():
            self._gap_again = True
            return
        self._gap_task = asyncio.get_running_loop().create_task(
            self._call_on_gap(), name="socketio-fanout-gap"
        )

    async def _call_on_gap(self) -> None:
        while True:
            self._gap_again = False
            hook = self.on_gap
            if hook is not None:
                try:
                    await hook()
                except Exception:
                    log.exception("socket.io fan-out: on_gap failed")
            if not self._gap_again:
                return


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
