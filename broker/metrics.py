"""What GET /metrics exposes, in Prometheus's text exposition format (``prometheus_client``).

Two kinds of figures, with different guarantees:

* **Counted by this process** (:data:`REGISTRY`): socket.io acknowledgements by namespace,
  event and code (:func:`count_ack`), moderation decisions (:func:`count_moderation`),
  alerts raised (:func:`count_alert`), the PostgreSQL writer's lock give-ups
  (:func:`count_lock_give_up`), and the process's own CPU, memory and open files.
  They start at 0 when the process starts and count only what *this* process did, so a
  dashboard sums them over every ``web`` process (``sum by (...) (rate(...))``); a
  restart resets them, which ``rate()``/``increase()`` handle.
* **Read from the database at scrape time** (:class:`LiveFigures`, :func:`render`): queue
  depth and oldest wait per queue, tutors by status, open sessions. They are the whole
  district's (every process's), the same on whichever process is scraped, and as fresh
  as the scrape; scrape one process for them, or take ``max`` over processes.

Labels carry no personal data: queue names (``<vendor>:<language>``), event names, error
codes, moderation actions and categories, alert kinds. Every label's values come from a
fixed set in the code, so the series stay few.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST  # what /metrics answers with: generate_latest's format
OK = "ok"  # the ``code`` label of a successful acknowledgement
NO_CATEGORY = "none"  # the ``category`` label of a moderation decision without one

# No *_created series: one series per counter, half the scrape.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: This process's counters. Not prometheus_client's global default registry, so nothing
#: another library registers there leaks into /metrics, and tests read exactly these.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, resident memory, fds
PlatformCollector(registry=REGISTRY)  # python_info

ACKS = Counter(
    "hh_acks",
    "socket.io event acknowledgements sent by this process, by namespace, event and "
    'code ("ok" for success, else the error code the client was given).',
    ["namespace", "event", "code"],
    registry=REGISTRY,
)
MODERATION_DECISIONS = Counter(
    "hh_moderation_decisions",
    "Chat moderation decisions taken by this process, by action and category "
    '(one per category the decision named; "none" when it named none).',
    ["action", "category"],
    registry=REGISTRY,
)
ALERTS_RAISED = Counter(
    "hh_alerts_raised",
    'Alerts raised to staff by this process, by kind ("distress" must page someone).',
    ["kind"],
    registry=REGISTRY,
)

WRITER_LOCK_GIVE_UPS = Counter(
    "hh_writer_lock_give_ups",
    "Batches of this process's PostgreSQL writer that gave up waiting for a row lock held "
    "by another process and ran again (each held up the process's writes for up to 200 ms).",
    registry=REGISTRY,
)
HAND_OVERS = Counter(
    "hh_hand_overs",
    "Times this process, cut off from Redis while another process reached it, told its "
    "clients to reconnect elsewhere and turned new ones away (web/hand_over.py).",
    registry=REGISTRY,
)


# Each counter's children by label values, so that counting (on every ack and every chat
# message) is a dict lookup and an increment, not prometheus_client's label resolution.
# Bounded: events, codes, actions and categories are fixed sets.
_CHILDREN: dict[tuple[Counter, tuple[str, ...]], Any] = {}


def _child(counter: Counter, *values: str) -> Any:
    key = (counter, values)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = counter.labels(*values)
    return child


def count_ack(namespace: str, event: str, code: str = OK) -> None:
    """Count one acknowledgement of ``event`` in ``namespace`` with ``code``."""
    _child(ACKS, namespace, event, code).inc()


def count_moderation(action: str, categories: Sequence[str]) -> None:
    """Count one moderation decision: once per category, or once as ``"none"``.

    So ``sum by (action)`` over categories counts a decision with two categories twice;
    ``hh_moderation_decisions_total{category="none"}`` are decisions that named none."""
    for category in categories or (NO_CATEGORY,):
        _child(MODERATION_DECISIONS, action, category).inc()


def count_alert(kind: str) -> None:
    """Count one alert of ``kind`` raised (e.g. ``"distress"``)."""
    ALERTS_RAISED.labels(kind=kind).inc()


def count_lock_give_up() -> None:
    """Count one writer batch that gave up a row lock wait (broker/commit/postgres.py)."""
    WRITER_LOCK_GIVE_UPS.inc()


def count_hand_over() -> None:
    """Count one hand-over of this process's clients (web/hand_over.py)."""
    HAND_OVERS.inc()


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity (registries key by it)
class LiveFigures(Collector):
    """One scrape's database figures, as Prometheus gauges.

    ``figures`` is what :meth:`broker.service.Broker.live_figures` returns (queues,
    tutors_available/busy/away); ``sessions_open`` maps a session kind (``on_demand``,
    ``booked``) to how many are open. The values are fixed when it is made: ``collect``
    does no I/O, so it is safe inside prometheus_client's synchronous scrape."""

    figures: Mapping[str, Any]
    sessions_open: Mapping[str, int]

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "hh_queue_depth", "Requests waiting in the queue now.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "hh_queue_oldest_wait_seconds",
            "How long the queue's longest-waiting request has waited, in seconds "
            "(0 when nobody waits: the queue is then absent).",
            labels=["queue"],
        )
        for queue in self.figures["queues"]:
            depth.add_metric([queue["queue"]], queue["queued"])
            oldest.add_metric([queue["queue"]], queue["longest_wait_s"])
        tutors = GaugeMetricFamily(
            "hh_tutors",
            "Tutors present now by status: available (and free), busy (in a session), "
            "away; tutors gone past the grace period are not counted.",
            labels=["status"],
        )
        for status in ("available", "busy", "away"):
            tutors.add_metric([status], self.figures[f"tutors_{status}"])
        sessions = GaugeMetricFamily(
            "hh_sessions_open",
            "Tutoring sessions open now, by kind (on_demand from the queues, booked rooms).",
            labels=["kind"],
        )
        for kind, count in sorted(self.sessions_open.items()):
            sessions.add_metric([kind], count)
        yield from (depth, oldest, tutors, sessions)


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity (registries key by it)
class _Merged(Collector):
    """Several collectors as one, for a per-scrape registry."""

    parts: tuple[Collector, ...]

    def collect(self) -> Iterable[Metric]:
        for part in self.parts:
            yield from part.collect()


def render(live: LiveFigures | None = None) -> bytes:
    """The exposition text: this process's counters, and ``live`` when given.

    A registry per call holds ``live``, so one scrape's database figures never show in
    another's and concurrent scrapes share nothing but the counters."""
    scrape = CollectorRegistry()
    scrape.register(_Merged((REGISTRY,) if live is None else (REGISTRY, live)))
    return generate_latest(scrape)
