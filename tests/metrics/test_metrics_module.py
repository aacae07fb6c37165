"""broker.metrics without a server: the counters the lead's code calls, and one scrape's
database figures rendered apart from every other scrape's."""

from __future__ import annotations

from broker import metrics
from tests.metrics.scrape import Scrape, parse

FIGURES = {
    "queues": [
        {"queue": "paper:en", "queued": 3, "longest_wait_s": 130},
        {"queue": "tutorcom:es", "queued": 1, "longest_wait_s": 7},
    ],
    "queued": 4,
    "longest_wait_s": 130,
    "tutors_available": 2,
    "tutors_busy": 5,
    "tutors_away": 1,
    "at": "2026-01-01T00:00:00Z",
}


def _now() -> Scrape:
    return parse(metrics.render().decode())


def test_moderation_counts_once_per_category_or_as_none() -> None:
    before = _now()
    metrics.count_moderation("hold", ["self_harm", "contact_info"])
    metrics.count_moderation("hold", ["self_harm"])
    metrics.count_moderation("allow", [])
    after = _now()

    def delta(action: str, category: str) -> float:
        name = "hh_moderation_decisions_total"
        return after.count(name, action=action, category=category) - before.count(
            name, action=action, category=category
        )

    assert delta("hold", "self_harm") == 2
    assert delta("hold", "contact_info") == 1
    assert delta("allow", "none") == 1
    assert delta("hold", "none") == 0


def test_alerts_are_counted_by_kind() -> None:
    before = _now()
    metrics.count_alert("distress")
    metrics.count_alert("distress")
    metrics.count_alert("abuse_report")
    after = _now()
    name = "hh_alerts_raised_total"
    assert after.count(name, kind="distress") - before.count(name, kind="distress") == 2
    assert after.count(name, kind="abuse_report") - before.count(name, kind="abuse_report") == 1


def test_live_figures_are_rendered_as_given_and_only_in_their_scrape() -> None:
    live = metrics.LiveFigures(FIGURES, {"on_demand": 5, "booked": 2})
    scraped = parse(metrics.render(live).decode())
    assert scraped.value("hh_queue_depth", queue="paper:en") == 3
    assert scraped.value("hh_queue_depth", queue="tutorcom:es") == 1
    assert scraped.value("hh_queue_oldest_wait_seconds", queue="paper:en") == 130
    assert scraped.value("hh_queue_oldest_wait_seconds", queue="tutorcom:es") == 7
    assert [scraped.value("hh_tutors", status=s) for s in ("available", "busy", "away")] == [
        2, 5, 1,
    ]
    assert scraped.value("hh_sessions_open", kind="on_demand") == 5
    assert scraped.value("hh_sessions_open", kind="booked") == 2
    # the next scrape (without database figures) shows none of them: nothing is kept
    alone = _now()
    assert alone.names("hh_queue_depth") == [] and alone.names("hh_tutors") == []


def test_the_registry_is_not_the_global_default() -> None:
    from prometheus_client import REGISTRY as DEFAULT
    from prometheus_client import Counter

    stray = Counter("hh_test_stray", "registered on the global default registry")
    try:
        assert "hh_test_stray" not in metrics.render().decode()
    finally:
        DEFAULT.unregister(stray)
