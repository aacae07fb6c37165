"""A synthetic year of on-demand arrivals shaped like the district's 2023-24.

Pure and seeded: :func:`generate` with the same :class:`Shape` and seed returns the same
arrivals, in time order, on every machine (one :class:`random.Random`, no I/O, no clock).

What it reproduces exactly (by construction, not by luck of the draw):

* the totals: ``Shape.sessions`` arrivals (103,315) from ``Shape.students`` distinct
  students (25,623), every student at least one session;
* the group table: exactly ``SWD``, ``EL`` and ``RFEP`` students who used the service
  (2,839, 2,888, 7,978; EL and RFEP are exclusive, SWD overlaps both), so each group's
  % of enrolled is the district's.

What it reproduces in shape (documented distributions, ``docs/capacity.md`` "Replay"):

* sessions per student: 1 + a geometric draw (mean 4.64, a long tail of regulars), then
  nudged at random students until the total is exact;
* the calendar (``America/Los_Angeles``): the school year 14 Aug 2023 - 7 Jun 2024 with
  Thanksgiving week, winter break (18 Dec - 5 Jan) and spring break (25 - 29 Mar) as
  documented district dates; summer and breaks at a fraction of a school day's demand;
* the week: Monday-Thursday busiest, Friday and Saturday lower, Sunday evening homework;
* the day: a local evening peak 18:00-21:00, an after-school shoulder, a quiet night
  (the service is open 24/7, so every half-hour has some demand);
* language and subject mixes by grade band and group (EL students ask in Spanish more);
* handle time: log-normal, median 15 min (mean ~20 min); patience: exponential, mean 5 min.

Arrival times are UTC; local times are drawn in the district's zone and converted, so
daylight-saving weeks are right (a draw in the skipped spring hour moves an hour on).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from broker.capacity.demand import (
    SLOTS_PER_DAY,
    SLOTS_PER_WEEK,
    Demand,
    Queue,
    QueueDemand,
    week_slot,
)
from routing.catalog import Catalog
from routing.schools import School, SchoolKind, StudentGroup
from routing.schools import Student as RosterStudent

UTC = dt.UTC
TIMEZONE = "America/Los_Angeles"
#: The district's 2023-24 figures (``../shared/domain.md``).
SESSIONS = 103_315
STUDENTS = 25_623
GROUP_USERS = {"SWD": 2_839, "EL": 2_888, "RFEP": 7_978}
ENROLLED = {"All": 409_119, "SWD": 60_975, "EL": 73_907, "RFEP": 106_398}

#: School-year dates (documented district calendar for 2023-24, local dates).
FIRST_DAY = dt.date(2023, 8, 14)
LAST_DAY = dt.date(2024, 6, 7)
BREAKS: tuple[tuple[dt.date, dt.date], ...] = (
    (dt.date(2023, 11, 20), dt.date(2023, 11, 24)),  # Thanksgiving week
    (dt.date(2023, 12, 18), dt.date(2024, 1, 5)),  # winter break
    (dt.date(2024, 3, 25), dt.date(2024, 3, 29)),  # spring break
)
HOLIDAYS = frozenset({
    dt.date(2023, 9, 4), dt.date(2023, 9, 25), dt.date(2023, 11, 10),
    dt.date(2024, 1, 15), dt.date(2024, 2, 19), dt.date(2024, 5, 27),
})

#: Relative demand of a day by weekday (Monday first), in term time.
WEEKDAY_WEIGHT = (1.0, 1.0, 0.97, 0.9, 0.6, 0.35, 0.75)
#: A day's demand outside term time, relative to the same weekday in term.
BREAK_FACTOR = 0.3
HOLIDAY_FACTOR = 0.5
SUMMER_FACTOR = 0.12
#: Relative demand per local hour of the day (0-23): evening peak 18-21.
HOUR_WEIGHT = (
    0.15, 0.08, 0.05, 0.04, 0.04, 0.06, 0.15, 0.35, 0.45, 0.5, 0.55, 0.6,
    0.65, 0.75, 0.95, 1.3, 1.55, 1.75, 2.3, 2.6, 2.55, 2.1, 1.2, 0.5,
)
#: Handle time: log-normal with this median (s) and sigma; patience: exponential mean (s).
HANDLE_MEDIAN_S = 900.0
HANDLE_SIGMA = 0.75
PATIENCE_MEAN_S = 300.0

#: Grade of a student who used the service (K = 0): older students use it more.
GRADE_WEIGHT = (3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 13, 12, 10)
#: The synthetic schools' kinds and spans (K = 0), and how many users each kind has.
SCHOOL_KINDS: tuple[tuple[SchoolKind, int, int], ...] = (
    (SchoolKind.ELEMENTARY, 0, 5),
    (SchoolKind.SPAN, 0, 8),
    (SchoolKind.MIDDLE, 6, 8),
    (SchoolKind.HIGH, 9, 12),
    (SchoolKind.SPAN, 0, 12),
    (SchoolKind.SPAN, 6, 12),
    (SchoolKind.OPTIONS, 9, 12),
    (SchoolKind.VIRTUAL_ACADEMY, 0, 12),
)
KIND_WEIGHT = (70, 12, 55, 70, 3, 8, 2, 2)
SCHOOLS_PER_KIND = 6
REGIONS = ("East", "North", "South", "West")

#: Home language of a student (EL students draw from ``EL_LANGUAGES``).
LANGUAGES = (("en", 0.9), ("es", 0.085), ("zh", 0.006), ("fr", 0.003), ("ko", 0.002),
             ("hy", 0.002), ("vi", 0.001), ("tl", 0.001))
EL_LANGUAGES = (("es", 0.7), ("en", 0.12), ("zh", 0.05), ("ko", 0.03), ("hy", 0.03),
                ("vi", 0.02), ("tl", 0.02), ("ru", 0.01), ("ar", 0.01), ("fa", 0.01))
SUBJECTS_BY_BAND = {
    "elementary": (("math", 45), ("reading", 20), ("ela", 15), ("writing", 10),
                   ("science", 7), ("social_studies", 3)),
    "middle": (("math", 35), ("algebra", 12), ("ela", 12), ("writing", 10),
               ("science", 12), ("history", 8), ("social_studies", 6), ("reading", 5)),
    "high": (("algebra", 14), ("geometry", 10), ("precalculus", 8), ("calculus", 6),
             ("statistics", 4), ("ela", 8), ("writing", 9), ("biology", 7),
             ("chemistry", 8), ("physics", 6), ("history", 6), ("government", 3),
             ("economics", 3), ("world_languages", 3), ("computer_science", 2), ("ap", 3)),
}


@dataclass(frozen=True, slots=True)
class Shape:
    """The targets a synthetic year is built to; defaults are the district's 2023-24."""

    sessions: int = SESSIONS
    students: int = STUDENTS
    group_users: tuple[tuple[str, int], ...] = tuple(GROUP_USERS.items())
    start: dt.date = dt.date(2023, 7, 1)
    end: dt.date = dt.date(2024, 7, 1)  # exclusive
    timezone: str = TIMEZONE

    def __post_init__(self) -> None:
        if self.students <= 0 or self.sessions < self.students:
            raise ValueError("a shape needs students > 0 and sessions >= students")
        groups = dict(self.group_users)
        if groups.get("EL", 0) + groups.get("RFEP", 0) > self.students or any(
            n < 0 or n > self.students for n in groups.values()
        ):
            raise ValueError("group counts do not fit the students")
        if self.end <= self.start:
            raise ValueError("a shape's end must be after its start")


@dataclass(frozen=True, slots=True)
class Student:
    """A synthetic student: pseudonymous id, school, grade (K = 0), groups, language."""

    id: str
    school: School
    grade: int
    groups: frozenset[str]
    language: str


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request for help: when (UTC), who, in what, and how long it would take."""

    at: dt.datetime
    student: Student
    language: str
    subject: str
    handle_s: float
    patience_s: float


@dataclass(frozen=True, slots=True)
class Year:
    """A generated year: the shape and seed it came from, its students and arrivals."""

    shape: Shape
    seed: int
    students: tuple[Student, ...]
    arrivals: tuple[Arrival, ...] = field(repr=False)

    def between(self, start: dt.datetime, end: dt.datetime) -> list[Arrival]:
        """The arrivals in ``[start, end)`` (aware datetimes), in time order."""
        keys = [a.at for a in self.arrivals]
        return list(self.arrivals[bisect.bisect_left(keys, start):
                                  bisect.bisect_left(keys, end)])

    def week(self, monday: dt.date) -> tuple[dt.datetime, dt.datetime, list[Arrival]]:
        """The local week starting at ``monday`` 00:00 (district zone) and its arrivals."""
        tz = ZoneInfo(self.shape.timezone)
        start = dt.datetime.combine(monday, dt.time(), tz).astimezone(UTC)
        end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(), tz).astimezone(UTC)
        return start, end, self.between(start, end)


def day_weight(day: dt.date) -> float:
    """Relative demand of a local date: weekday weight times term/break/summer factor."""
    weight = WEEKDAY_WEIGHT[day.weekday()]
    if day < FIRST_DAY or day > LAST_DAY:
        return weight * SUMMER_FACTOR
    if any(lo <= day <= hi for lo, hi in BREAKS):
        return weight * BREAK_FACTOR
    if day in HOLIDAYS:
        return weight * HOLIDAY_FACTOR
    return weight


def _schools() -> list[list[School]]:
    """The synthetic schools, grouped by :data:`SCHOOL_KINDS` entry."""
    out = []
    for k, (kind, low, high) in enumerate(SCHOOL_KINDS):
        out.append([
            School(f"syn-sch-{k}{i:02d}", f"Synthetic {kind.value} school {k}{i:02d}",
                   REGIONS[i % len(REGIONS)], low, high, kind)
            for i in range(SCHOOLS_PER_KIND)
        ])
    return out


def _pick(rng: random.Random, table: Sequence[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


def _band(grade: int) -> str:
    return "elementary" if grade <= 5 else "middle" if grade <= 8 else "high"


def _students(rng: random.Random, shape: Shape) -> list[Student]:
    n = shape.students
    groups: list[set[str]] = [set() for _ in range(n)]
    counts = dict(shape.group_users)
    order = list(range(n))
    rng.shuffle(order)
    el, rfep = counts.get("EL", 0), counts.get("RFEP", 0)
    for i in order[:el]:
        groups[i].add("EL")
    for i in order[el:el + rfep]:
        groups[i].add("RFEP")
    for i in rng.sample(range(n), counts.get("SWD", 0)):
        groups[i].add("SWD")
    schools = _schools()
    out = []
    for i in range(n):
        grade = rng.choices(range(13), GRADE_WEIGHT)[0]
        kinds = zip(SCHOOL_KINDS, KIND_WEIGHT, strict=True)
        fitting = [(k, w) for k, ((_, lo, hi), w) in enumerate(kinds) if lo <= grade <= hi]
        kind = rng.choices([k for k, _ in fitting], [w for _, w in fitting])[0]
        school = rng.choice(schools[kind])
        language = _pick(rng, EL_LANGUAGES if "EL" in groups[i] else LANGUAGES)
        out.append(Student(f"syn-stu-{i + 1:05d}", school, grade, frozenset(groups[i]),
                           language))
    return out


def _sessions_per_student(rng: random.Random, shape: Shape) -> list[int]:
    """1 + geometric(mean - 1) per student, then nudged until the sum is exact."""
    extra_mean = shape.sessions / shape.students - 1
    p = 1 / (1 + extra_mean)
    counts = []
    for _ in range(shape.students):
        u = rng.random()
        extra = int(math.log(1 - u) / math.log(1 - p)) if p < 1 else 0
        counts.append(1 + extra)
    diff = shape.sessions - sum(counts)
    while diff != 0:
        i = rng.randrange(shape.students)
        if diff > 0:
            counts[i] += 1
            diff -= 1
        elif counts[i] > 1:
            counts[i] -= 1
            diff += 1
    return counts


def _local_to_utc(day: dt.date, second: float, tz: ZoneInfo) -> dt.datetime:
    local = dt.datetime.combine(day, dt.time(), tz) + dt.timedelta(seconds=second)
    # wall-clock arithmetic: a time in the skipped spring hour maps to the hour after.
    return local.astimezone(UTC)


def generate(seed: int = 2024, shape: Shape | None = None) -> Year:
    """A synthetic year: students and their arrivals, in time order (UTC)."""
    shape = shape or Shape()
    rng = random.Random(seed)
    tz = ZoneInfo(shape.timezone)
    students = _students(rng, shape)
    counts = _sessions_per_student(rng, shape)
    days = [shape.start + dt.timedelta(days=d) for d in range((shape.end - shape.start).days)]
    day_cum = list(itertools.accumulate(day_weight(d) for d in days))
    hour_cum = list(itertools.accumulate(HOUR_WEIGHT))
    arrivals = []
    for student, count in zip(students, counts, strict=True):
        band = _band(student.grade)
        for _ in range(count):
            day = days[bisect.bisect(day_cum, rng.random() * day_cum[-1])]
            hour = bisect.bisect(hour_cum, rng.random() * hour_cum[-1])
            at = _local_to_utc(day, hour * 3600 + rng.random() * 3600, tz)
            language = student.language if rng.random() < 0.9 else "en"
            subject = _pick(rng, SUBJECTS_BY_BAND[band])
            handle = HANDLE_MEDIAN_S * math.exp(rng.gauss(0.0, HANDLE_SIGMA))
            patience = rng.expovariate(1 / PATIENCE_MEAN_S)
            arrivals.append(Arrival(at.replace(microsecond=0), student, language, subject,
                                    round(handle, 1), round(patience, 1)))
    arrivals.sort(key=lambda a: (a.at, a.student.id))
    return Year(shape, seed, tuple(students), tuple(arrivals))


def queue_of(arrival: Arrival, catalog: Catalog) -> Queue | None:
    """The queue (vendor, language) the district's rule sends ``arrival`` to, or ``None``
    when it is unmet demand (no vendor for the school, grade or language)."""
    vendor = catalog.first_choice(arrival.student.school)
    if vendor is None or not vendor.serves_grade(arrival.student.grade):
        return None
    if not vendor.serves_language(arrival.language):
        return None
    return vendor.id, arrival.language


def usage_table(arrivals: Iterable[Arrival]) -> dict[str, dict[str, float]]:
    """The district's usage table over ``arrivals``: sessions, students, sessions per
    student, and per group the students using it and their % of enrolled."""
    sessions = 0
    seen: dict[str, Student] = {}
    for a in arrivals:
        sessions += 1
        seen[a.student.id] = a.student
    out: dict[str, dict[str, float]] = {
        "All": {"sessions": sessions, "students": len(seen),
                "sessions_per_student": sessions / len(seen) if seen else 0.0}
    }
    for group in ("SWD", "EL", "RFEP"):
        n = sum(1 for s in seen.values() if group in s.groups)
        out[group] = {"students": n}
    for group, row in out.items():
        row["pct_enrolled"] = 100 * row["students"] / ENROLLED[group]
    return out


def all_schools() -> list[School]:
    """Every synthetic school (``syn-sch-…``), of every kind."""
    return [school for kind in _schools() for school in kind]


def enrolled_roster(year: Year, enrolled: dict[str, int] | None = None) -> list[RosterStudent]:
    """The district's enrolment the year's users belong to: every student of ``year`` as
    they are, plus students who never asked (``syn-enr-…``) until the roster holds
    ``enrolled["All"]`` students with exactly ``enrolled[group]`` in each group (EL and
    RFEP exclusive, SWD overlapping both), at the synthetic schools, grades fitting the
    school. With it, a replayed year's usage report gives each group's % of enrolled as
    the district's table does. Deterministic for the year's seed."""
    wanted = dict(enrolled or ENROLLED)
    rng = random.Random(year.seed + 1)
    users = list(year.students)
    have = {g: sum(1 for s in users if g in s.groups) for g in ("SWD", "EL", "RFEP")}
    extra = wanted["All"] - len(users)
    need = {g: wanted[g] - have[g] for g in have}
    if extra < 0 or any(n < 0 for n in need.values()) or need["EL"] + need["RFEP"] > extra:
        raise ValueError("the enrolment is smaller than the year's users")
    groups: list[set[str]] = [set() for _ in range(extra)]
    order = list(range(extra))
    rng.shuffle(order)
    for i in order[:need["EL"]]:
        groups[i].add("EL")
    for i in order[need["EL"]:need["EL"] + need["RFEP"]]:
        groups[i].add("RFEP")
    for i in rng.sample(range(extra), need["SWD"]):
        groups[i].add("SWD")
    schools = all_schools()
    roster = [RosterStudent(s.id, s.school.id, s.grade,
                            frozenset(StudentGroup(g) for g in s.groups)) for s in users]
    for i in range(extra):
        school = schools[rng.randrange(len(schools))]
        grade = rng.randint(school.low_grade, school.high_grade)
        roster.append(RosterStudent(f"syn-enr-{i + 1:06d}", school.id, grade,
                                    frozenset(StudentGroup(g) for g in groups[i])))
    return roster


def synthetic_demand(arrivals: Sequence[Arrival], start: dt.datetime, end: dt.datetime,
                     catalog: Catalog) -> Demand:
    """The demand :mod:`broker.capacity.advice` reads, as if the broker had served every
    routed arrival at once (handle time as drawn, nobody giving up): the *offered* load
    per queue and local half-hour of the week over ``[start, end)``."""
    tz = catalog.timezone
    queues: dict[Queue, QueueDemand] = {}
    for v in catalog.on_demand_vendors:
        for lang in v.languages:
            queues[(v.id, lang)] = QueueDemand(v.id, lang, v.capacity)
    for a in arrivals:
        if not start <= a.at < end:
            continue
        q = queue_of(a, catalog)
        if q is None or q not in queues:
            continue
        cell = queues[q].slots[week_slot(a.at, tz)]
        cell.arrivals += 1
        cell.accepted += 1
        cell.handled += 1
        cell.handle_s += a.handle_s
    exposure = [0.0] * SLOTS_PER_WEEK
    at = start
    step = dt.timedelta(minutes=30)
    while at < end:
        exposure[week_slot(at, tz)] += (min(end, at + step) - at).total_seconds()
        at += step
    for qd in queues.values():
        for i, cell in enumerate(qd.slots):
            cell.exposure_s = exposure[i]
    return Demand(start, end, tz.key, tuple(queues.values()))


__all__ = [
    "SLOTS_PER_DAY", "Arrival", "Shape", "Student", "Year", "all_schools", "day_weight",
    "enrolled_roster",
    "generate", "queue_of", "synthetic_demand", "usage_table",
]
