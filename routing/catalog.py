"""The vendor catalog: which vendors exist, whom they serve, in which languages, when.

:meth:`Catalog.from_toml` parses the district's TOML text (``routing/data/catalog.toml``;
format in ``docs/routing.md``) and validates it completely: any problem raises
:class:`~routing.errors.CatalogError` naming the vendor (or section) and the key. A parsed
:class:`Catalog` is immutable and precomputes the lookups the decision needs, so that
routing one request is a handful of dict lookups.

No I/O: callers read the file and pass its text in (time-zone data comes from
:mod:`zoneinfo`).
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from routing.errors import CatalogError, InvalidLanguageTagError, UnknownGradeError
from routing.grades import KG, parse_grade, span_label
from routing.languages import primary_language
from routing.schools import School, SchoolKind

ALL_SUBJECTS = "*"
DEFAULT_CAPACITY = 2
DEFAULT_TIMEZONE = "America/Los_Angeles"
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]?[0-9]|2[0-4]):([0-5][0-9])$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class Programme(enum.StrEnum):
    """The district's three kinds of tutoring; only ``on_demand`` vendors take live requests."""

    ON_DEMAND = "on_demand"
    HOME_BASED = "home_based"
    SCHOOL_BASED = "school_based"


@dataclass(frozen=True, slots=True)
class Window:
    """One weekly opening window: ``day`` 0 = Monday; minutes since local midnight, end > start."""

    day: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Hours:
    """When a vendor takes live requests: ``always`` (24/7) or weekly windows in the district's
    time zone. ``scheduled`` marks programmes that work by appointment (never live)."""

    always: bool = False
    windows: tuple[Window, ...] = ()
    scheduled: bool = False

    def open_at(self, when: datetime, tz: ZoneInfo) -> bool:
        """Whether a live request at ``when`` falls in these hours (naive times are UTC)."""
        if self.always:
            return True
        if self.scheduled or not self.windows:
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        local = when.astimezone(tz)
        day, minute = local.weekday(), local.hour * 60 + local.minute
        return any(w.day == day and w.start <= minute < w.end for w in self.windows)


@dataclass(frozen=True, slots=True)
class Vendor:
    """One vendor of the catalog. ``subjects`` is ``None`` when it serves every district subject.

    ``kinds`` and ``spans`` say which schools' students it serves (spans as ``(low, high)``
    integer grades, with PK/TK low grades counted as K); ``low_grade``..``high_grade`` bounds
    the grades it serves; ``languages`` are BCP 47 primary subtags in preference order;
    ``capacity`` is how many chats one of its tutors holds at once.
    """

    id: str
    name: str
    programme: Programme
    kinds: frozenset[SchoolKind]
    spans: frozenset[tuple[int, int]]
    low_grade: int
    high_grade: int
    languages: tuple[str, ...]
    subjects: frozenset[str] | None
    hours: Hours
    capacity: int = DEFAULT_CAPACITY
    language_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "language_set", frozenset(self.languages))

    @property
    def is_on_demand(self) -> bool:
        return self.programme is Programme.ON_DEMAND

    def serves_grade(self, grade: int) -> bool:
        return self.low_grade <= grade <= self.high_grade

    def serves_language(self, language: str) -> bool:
        """``language`` is a primary subtag (``zh``), as :func:`primary_language` returns."""
        return language in self.language_set

    def serves_subject(self, subject: str) -> bool:
        return self.subjects is None or subject in self.subjects

    @property
    def grades_label(self) -> str:
        return span_label(self.low_grade, self.high_grade)


def span_key(low: int, high: int) -> tuple[int, int]:
    """The span a school is matched on: PK and TK low grades count as K (a TK-5 school is K-5)."""
    return (max(low, KG), high)


class Catalog:
    """The parsed, validated, immutable vendor catalog with the decision's precomputed lookups.

    Guarantees (checked at construction, :class:`CatalogError` otherwise): vendor ids are
    unique; at most one on-demand vendor claims any school kind or span, so every school has
    at most one first-choice vendor; every unknown-school rule names an on-demand vendor
    that serves the rule's grades; every vendor's subjects are district subjects.
    """

    def __init__(
        self,
        vendors: Iterable[Vendor],
        subjects: Iterable[tuple[str, str]],
        *,
        timezone: str = DEFAULT_TIMEZONE,
        overflow: bool = False,
        kinds_decide: Iterable[SchoolKind] = (),
        unknown_school: Mapping[int, str] | None = None,
        languages: Iterable[str] = (),
    ) -> None:
        self._vendors = tuple(vendors)
        # The languages the district offers its students to ask for help in (its families'
        # home languages), whether or not a vendor serves them now: a request in one no
        # vendor serves is recorded as unmet demand (``language_unsupported``).
        self._district_languages = tuple(dict.fromkeys(languages))
        self._subjects = tuple(subjects)
        self._labels = dict(self._subjects)
        if len(self._labels) != len(self._subjects):
            raise CatalogError("subjects: an id appears twice", value="subjects")
        self.timezone_name = timezone
        try:
            self.timezone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CatalogError(
                f"district.timezone: unknown time zone {timezone!r}", value=timezone
            ) from exc
        self.overflow = bool(overflow)
        self.kinds_decide = frozenset(kinds_decide)
        self._by_id: dict[str, Vendor] = {}
        for v in self._vendors:
            if v.id in self._by_id:
                raise CatalogError(f"vendor {v.id!r}: key 'id' appears twice", value=v.id)
            self._by_id[v.id] = v
            if v.subjects is not None:
                for s in sorted(v.subjects - self._labels.keys()):
                    raise CatalogError(
                        f"vendor {v.id!r}: key 'subjects': {s!r} is not a district subject",
                        value=s,
                    )
        self._on_demand = tuple(v for v in self._vendors if v.is_on_demand)
        self._kind_owner: dict[SchoolKind, Vendor] = {}
        self._span_owner: dict[tuple[int, int], Vendor] = {}
        for v in self._on_demand:
            _claim(self._kind_owner, v.kinds, v, "kinds", str)
            _claim(self._span_owner, v.spans, v, "spans", lambda s: span_label(*s))
        self._unknown: dict[int, Vendor] = {}
        for grade, vid in (unknown_school or {}).items():
            owner = self._by_id.get(vid)
            if owner is None or not owner.is_on_demand:
                raise CatalogError(
                    f"unknown_school: key 'vendor': {vid!r} is not an on-demand vendor", value=vid
                )
            if not owner.serves_grade(grade):
                raise CatalogError(
                    f"unknown_school: key 'grades': {owner.id!r} does not serve grade "
                    f"{span_label(grade, grade).split('-')[0]}",
                    value=grade,
                )
            self._unknown[grade] = owner
        self.always_open = all(v.hours.always for v in self._on_demand)
        self._first_choice: dict[tuple[SchoolKind, int, int], Vendor | None] = {}
        #: Decision memo owned by :mod:`routing.decision` (keys: resolved request fields).
        self.memo: dict[tuple[Any, ...], Any] = {}

    # -- parsing ----------------------------------------------------------------------
    @classmethod
    def from_toml(cls, text: str) -> Catalog:
        """Parse and validate catalog TOML text; raise :class:`CatalogError` naming the culprit."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"catalog is not valid TOML: {exc}") from exc
        district = _table(data, "district", "district")
        routing_ = _table(data, "routing", "routing")
        overflow = _table(data, "overflow", "overflow")
        subjects = [
            _subject(entry, i) for i, entry in enumerate(_tables(data, "subjects", "subjects"))
        ]
        if not subjects:
            raise CatalogError("subjects: the district subject list is empty", value="subjects")
        vendors = [_vendor(entry, i) for i, entry in enumerate(_tables(data, "vendors", "vendors"))]
        kinds = [
            _kind(k, "routing", "kinds_decide")
            for k in _strings(routing_, "kinds_decide", "routing", default=[])
        ]
        unknown: dict[int, str] = {}
        for i, rule in enumerate(_tables(data, "unknown_school", "unknown_school")):
            where = f"unknown_school[{i}]"
            low, high = _grades(_str(rule, "grades", where), where, "grades")
            vid = _str(rule, "vendor", where)
            for g in range(low, high + 1):
                if g in unknown and unknown[g] != vid:
                    raise CatalogError(f"{where}: key 'grades' overlaps another rule", value=g)
                unknown[g] = vid
        enabled = overflow.get("enabled", False)
        if not isinstance(enabled, bool):
            raise CatalogError("overflow: key 'enabled' must be true or false", value=enabled)
        return cls(
            vendors,
            subjects,
            timezone=_str(district, "timezone", "district", default=DEFAULT_TIMEZONE),
            overflow=enabled,
            kinds_decide=kinds,
            unknown_school=unknown,
            languages=_strings(district, "languages", "district", default=[]),
        )

    def with_overflow(self, enabled: bool) -> Catalog:
        """A copy of this catalog with overflow switched on or off."""
        return Catalog(
            self._vendors,
            self._subjects,
            timezone=self.timezone_name,
            overflow=enabled,
            kinds_decide=self.kinds_decide,
            unknown_school={g: v.id for g, v in self._unknown.items()},
            languages=self._district_languages,
        )

    # -- what the broker and the widget read -------------------------------------------
    @property
    def vendors(self) -> tuple[Vendor, ...]:
        """Every vendor, in catalog order (scheduled programmes included)."""
        return self._vendors

    @property
    def district_languages(self) -> list[str]:
        """Every language the district offers to ask for help in: its ``[district]
        languages`` list, then any language an on-demand vendor serves that it does not
        name, without duplicates."""
        served = (lang for v in self._on_demand for lang in v.languages)
        return _unique([*self._district_languages, *served])

    @property
    def on_demand_vendors(self) -> tuple[Vendor, ...]:
        """The vendors that take live requests, in catalog order."""
        return self._on_demand

    @property
    def subjects(self) -> list[tuple[str, str]]:
        """The district subject list as ``(id, English label)`` pairs, in display order."""
        return list(self._subjects)

    def vendor(self, vendor_id: str) -> Vendor | None:
        """The vendor with this id, or ``None``."""
        return self._by_id.get(vendor_id)

    def has_subject(self, subject_id: str) -> bool:
        return subject_id in self._labels

    def subject_label(self, subject_id: str) -> str:
        """English label of a subject id; the id itself if it is not a district subject."""
        return self._labels.get(subject_id, subject_id)

    def first_choice(self, school: School) -> Vendor | None:
        """The on-demand vendor whose schools include ``school``, or ``None`` if none does.

        Kinds listed in ``routing.kinds_decide`` (options, virtual academy) decide by kind;
        otherwise the school's span decides (PK/TK counted as K), then its kind.
        """
        key = (school.kind, school.low_grade, school.high_grade)
        try:
            return self._first_choice[key]
        except KeyError:
            pass
        if school.kind in self.kinds_decide:
            chosen = self._kind_owner.get(school.kind)
        else:
            chosen = self._span_owner.get(span_key(school.low_grade, school.high_grade))
            if chosen is None:
                chosen = self._kind_owner.get(school.kind)
        self._first_choice[key] = chosen
        return chosen

    def unknown_school_vendor(self, grade: int) -> Vendor | None:
        """The vendor the grade decides when the school is unknown (``None``: no rule)."""
        return self._unknown.get(grade)

    def serves_grade_anywhere(self, grade: int) -> bool:
        """Whether some on-demand vendor serves this grade at all."""
        return any(v.serves_grade(grade) for v in self._on_demand)

    def languages_for(self, school: School | None, grade: int | None) -> list[str]:
        """The languages (primary subtags) in which a request from this student can be routed.

        Exactly the languages ``L`` for which :func:`routing.decision.route` routes a request
        with that school and grade, language ``L`` and some subject, ignoring opening hours
        (overflow honoured). With neither school nor grade known, every on-demand language.
        First-choice vendor's languages come first, in its order; no duplicates.
        """
        if school is None and grade is None:
            return _unique(lang for v in self._on_demand for lang in v.languages)
        if school is not None:
            first = self.first_choice(school)
        else:
            first = self._unknown.get(grade) if grade is not None else None
        if first is None:
            return []
        out: list[str] = []
        if grade is None or first.serves_grade(grade):
            out.extend(first.languages)
        if self.overflow and grade is not None:
            out.extend(
                lang for v in self._on_demand if v.serves_grade(grade) for lang in v.languages
            )
        return _unique(out)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _claim(owners: dict[Any, Vendor], keys: Iterable[Any], v: Vendor, key: str, show: Any) -> None:
    for k in keys:
        other = owners.get(k)
        if other is not None:
            raise CatalogError(
                f"vendor {v.id!r}: key {key!r}: {show(k)} is already served by {other.id!r}",
                value=k,
            )
        owners[k] = v


# -- TOML helpers: each names the section (vendor) and the key on error ---------------------
def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise CatalogError(f"{where}: must be a table", value=key)
    return value


def _tables(data: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CatalogError(f"{where}: must be an array of tables ([[{key}]])", value=key)
    return value


_MISSING: Any = object()


def _str(entry: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> str:
    value = entry.get(key, default)
    if value is _MISSING:
        raise CatalogError(f"{where}: key {key!r} is missing", value=key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: key {key!r} must be a non-empty string", value=value)
    return value.strip()


def _strings(
    entry: Mapping[str, Any], key: str, where: str, default: Any = _MISSING
) -> list[str]:
    value = entry.get(key, default)
    if value is _MISSING:
        raise CatalogError(f"{where}: key {key!r} is missing", value=key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CatalogError(f"{where}: key {key!r} must be a list of strings", value=value)
    return value


def _grades(text: str, where: str, key: str) -> tuple[int, int]:
    low_text, sep, high_text = text.partition("-")
    try:
        low = parse_grade(low_text)
        high = parse_grade(high_text) if sep else low
    except UnknownGradeError as exc:
        raise CatalogError(f"{where}: key {key!r}: {exc.message}", value=text) from exc
    if low > high:
        raise CatalogError(f"{where}: key {key!r}: {text!r} runs backwards", value=text)
    return low, high


def _kind(text: str, where: str, key: str) -> SchoolKind:
    try:
        return SchoolKind(text)
    except ValueError:
        known = ", ".join(k.value for k in SchoolKind)
        raise CatalogError(
            f"{where}: key {key!r}: unknown school kind {text!r} (one of {known})", value=text
        ) from None


def _subject(entry: Mapping[str, Any], i: int) -> tuple[str, str]:
    where = f"subjects[{i}]"
    sid = _str(entry, "id", where)
    if not _ID.match(sid):
        raise CatalogError(f"{where}: key 'id': {sid!r} must be lower-case a-z0-9_.-", value=sid)
    return sid, _str(entry, "label", f"subject {sid!r}")


def _hours(value: Any, where: str, programme: Programme) -> Hours:
    if value is None:
        return Hours(always=True) if programme is Programme.ON_DEMAND else Hours(scheduled=True)
    if value == "24/7":
        return Hours(always=True)
    if value == "scheduled":
        if programme is Programme.ON_DEMAND:
            raise CatalogError(f"{where}: key 'hours': an on-demand vendor needs live hours")
        return Hours(scheduled=True)
    if not isinstance(value, list) or not value:
        raise CatalogError(
            f"{where}: key 'hours' must be \"24/7\", \"scheduled\" or a list of windows",
            value=value,
        )
    windows: list[Window] = []
    for w in value:
        if not isinstance(w, dict):
            raise CatalogError(f"{where}: key 'hours': a window must be a table", value=w)
        start, end = _clock(w.get("start"), where), _clock(w.get("end"), where)
        if end <= start:
            raise CatalogError(f"{where}: key 'hours': a window must end after it starts")
        for day in _strings(w, "days", f"{where} hours"):
            if day.lower() not in _DAYS:
                raise CatalogError(f"{where}: key 'hours': unknown day {day!r}", value=day)
            windows.append(Window(_DAYS.index(day.lower()), start, end))
    return Hours(windows=tuple(windows))


def _clock(value: Any, where: str) -> int:
    match = _CLOCK.match(value) if isinstance(value, str) else None
    minutes = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if not match or minutes > 24 * 60:
        raise CatalogError(f"{where}: key 'hours': {value!r} is not a time HH:MM", value=value)
    return minutes


def _vendor(entry: Mapping[str, Any], i: int) -> Vendor:
    vid = _str(entry, "id", f"vendors[{i}]")
    where = f"vendor {vid!r}"
    if not _ID.match(vid):
        raise CatalogError(f"{where}: key 'id' must be lower-case a-z0-9_.-", value=vid)
    try:
        programme = Programme(_str(entry, "programme", where))
    except ValueError:
        raise CatalogError(
            f"{where}: key 'programme' must be on_demand, home_based or school_based",
            value=entry.get("programme"),
        ) from None
    kinds = frozenset(_kind(k, where, "kinds") for k in _strings(entry, "kinds", where, []))
    spans = frozenset(
        span_key(*_grades(s, where, "spans")) for s in _strings(entry, "spans", where, [])
    )
    low, high = _grades(_str(entry, "grades", where), where, "grades")
    languages: list[str] = []
    for tag in _strings(entry, "languages", where):
        try:
            primary = primary_language(tag)
        except InvalidLanguageTagError as exc:
            raise CatalogError(f"{where}: key 'languages': {exc.message}", value=tag) from exc
        if primary != tag.strip().lower():
            raise CatalogError(
                f"{where}: key 'languages': write the primary subtag {primary!r}, not {tag!r}",
                value=tag,
            )
        languages.append(primary)
    if not languages:
        raise CatalogError(f"{where}: key 'languages' is empty", value="languages")
    subject_ids = _strings(entry, "subjects", where)
    if not subject_ids:
        raise CatalogError(f"{where}: key 'subjects' is empty", value="subjects")
    subjects = None if ALL_SUBJECTS in subject_ids else frozenset(subject_ids)
    capacity = entry.get("capacity", DEFAULT_CAPACITY)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= 50:
        raise CatalogError(f"{where}: key 'capacity' must be an integer 1-50", value=capacity)
    if programme is Programme.ON_DEMAND and not (kinds or spans):
        raise CatalogError(f"{where}: key 'kinds': an on-demand vendor must serve some schools")
    known = {"id", "name", "programme", "kinds", "spans", "grades", "languages", "subjects",
             "hours", "capacity"}
    for key in entry:
        if key not in known:
            raise CatalogError(f"{where}: unknown key {key!r}", value=key)
    return Vendor(
        id=vid,
        name=_str(entry, "name", where),
        programme=programme,
        kinds=kinds,
        spans=spans,
        low_grade=low,
        high_grade=high,
        languages=tuple(_unique(languages)),
        subjects=subjects,
        hours=_hours(entry.get("hours"), where, programme),
        capacity=capacity,
    )
