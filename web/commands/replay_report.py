"""What a replay measured (:mod:`web.commands.replay`), per queue and overall.

A report is plain data: segments of a year replayed in parallel each return one, and
:meth:`Report.merge` adds them up (counts and tutor-hours summed, waits concatenated), so a
year replayed in pieces reports exactly what one long replay of the same events would
count.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any


# -- the report --------------------------------------------------------------------------
@dataclass
class QueueReport:
    """What the replay measured for one queue (or, with ``queue=None``, overall)."""

    queue: str
    arrivals: int = 0
    accepted: int = 0
    gave_up: int = 0
    within_target: int = 0
    waits: list[float] = field(default_factory=list)
    tutor_hours: float = 0.0
    busy_hours: float = 0.0
    # the advice's expected service level for the headcount used, weighted by arrivals
    expected_weight: float = 0.0
    expected_sum: float = 0.0

    @property
    def service_level(self) -> float | None:
        decided = self.accepted + self.gave_up
        return self.within_target / decided if decided else None

    @property
    def expected_service_level(self) -> float | None:
        return self.expected_sum / self.expected_weight if self.expected_weight else None

    def percentile(self, p: float) -> float | None:
        if not self.waits:
            return None
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    def as_dict(self) -> dict[str, Any]:
        def r(x: float | None, n: int = 3) -> float | None:
            return None if x is None else round(x, n)

        return {
            "queue": self.queue, "arrivals": self.arrivals, "accepted": self.accepted,
            "gave_up": self.gave_up, "service_level": r(self.service_level),
            "expected_service_level": r(self.expected_service_level),
            "wait_p50_s": r(self.percentile(0.5), 1), "wait_p90_s": r(self.percentile(0.9), 1),
            "tutor_hours": r(self.tutor_hours, 1), "busy_hours": r(self.busy_hours, 1),
        }


@dataclass
class Report:
    start: dt.datetime
    end: dt.datetime
    target_fraction: float
    target_wait_s: float
    headcount: str
    arrivals: int = 0
    unmet: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    queues: dict[str, QueueReport] = field(default_factory=dict)
    wall_s: float = 0.0
    #: requests sent again by students who were refused or gave up (counted in arrivals)
    retries: int = 0
    #: students whose every attempt failed (they never got a session)
    never_served: int = 0
    segments: int = 1
    workers: int = 1
    #: CPU seconds the replays' processes spent driving the events (start-up excluded)
    cpu_s: float = 0.0

    def queue(self, name: str) -> QueueReport:
        if name not in self.queues:
            self.queues[name] = QueueReport(name)
        return self.queues[name]

    def merge(self, other: Report) -> None:
        """Add ``other`` (another segment of the same replay) into this report."""
        self.arrivals += other.arrivals
        self.conflicts += other.conflicts
        self.retries += other.retries
        self.never_served += other.never_served
        self.cpu_s += other.cpu_s
        for counts, more in ((self.unmet, other.unmet), (self.errors, other.errors)):
            for key, n in more.items():
                counts[key] = counts.get(key, 0) + n
        for name, q in other.queues.items():
            mine = self.queue(name)
            for f in dataclasses.fields(QueueReport):
                if f.name != "queue":
                    setattr(mine, f.name, getattr(mine, f.name) + getattr(q, f.name))

    def overall(self) -> QueueReport:
        out = QueueReport("all")
        for q in self.queues.values():
            for f in dataclasses.fields(QueueReport):
                if f.name != "queue":
                    setattr(out, f.name, getattr(out, f.name) + getattr(q, f.name))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "target": {"fraction": self.target_fraction, "wait_s": self.target_wait_s},
            "headcount": self.headcount, "arrivals": self.arrivals,
            "unmet": dict(sorted(self.unmet.items())), "unmet_total": sum(self.unmet.values()),
            "conflicts": self.conflicts, "retries": self.retries,
            "never_served": self.never_served, "errors": dict(sorted(self.errors.items())),
            "queues": [q.as_dict() for q in self.queues.values()],
            "overall": self.overall().as_dict(), "wall_s": round(self.wall_s, 1),
            "segments": self.segments, "workers": self.workers,
            "cpu_s": round(self.cpu_s, 1),
        }

    def text(self) -> str:
        def pct(x: float | None) -> str:
            return "-" if x is None else f"{100 * x:5.1f}%"

        def sec(x: float | None) -> str:
            return "-" if x is None else f"{x:7.0f}"

        lines = [
            f"replay {self.start.isoformat()} .. {self.end.isoformat()}  headcount: "
            f"{self.headcount}  target: {100 * self.target_fraction:.0f}% within "
            f"{self.target_wait_s:.0f} s",
            f"{'queue':<14}{'arrivals':>9}{'accepted':>9}{'gave up':>8}{'SL':>8}"
            f"{'advice':>8}{'p50 s':>8}{'p90 s':>8}{'tutor-h':>9}{'busy-h':>8}",
        ]
        for q in [*self.queues.values(), self.overall()]:
            lines.append(
                f"{q.queue:<14}{q.arrivals:>9}{q.accepted:>9}{q.gave_up:>8}"
                f"{pct(q.service_level):>8}{pct(q.expected_service_level):>8}"
                f"{sec(q.percentile(0.5)):>8}{sec(q.percentile(0.9)):>8}"
                f"{q.tutor_hours:>9.1f}{q.busy_hours:>8.1f}"
            )
        unmet = ", ".join(f"{k} {v}" for k, v in sorted(self.unmet.items())) or "none"
        lines.append(f"requests {self.arrivals} (of which retries {self.retries}); unmet "
                     f"{sum(self.unmet.values())} ({unmet}); open-request conflicts "
                     f"{self.conflicts}; students never served {self.never_served}")
        per = 1000 * self.cpu_s / self.arrivals if self.arrivals else 0.0
        lines.append(f"wall {self.wall_s:.1f} s ({self.segments} segment(s) on "
                     f"{self.workers} process(es)); replay CPU {self.cpu_s:.1f} s, "
                     f"{per:.1f} ms per request")
        if self.errors:
            lines.append(f"unexpected refusals: {self.errors}")
        return "\n".join(lines)


__all__ = ["QueueReport", "Report"]
