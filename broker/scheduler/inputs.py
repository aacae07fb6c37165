"""Reading the scheduler's request bodies: total, typed, and refusing with
:class:`~broker.errors.InvalidPayload` naming the ``field`` (nothing is written for a body
that does not read)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Any

from broker.errors import InvalidPayload
from broker.scheduler.rules import WEEKDAYS, parse_hhmm, zone_of

ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
WEEKDAY_NAMES = {name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat",
                                                    "sun"))}
WEEKDAY_NAMES.update({code.lower(): i for i, code in enumerate(WEEKDAYS)})
MAX_LIST = 500


def body(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidPayload("the body must be a JSON object")
    return value


def ident(spec: Mapping[str, Any], name: str) -> str:
    value = spec.get(name)
    if not isinstance(value, str) or not ID.match(value):
        raise InvalidPayload(f"{name} must be an id", field=name)
    return value


def optional_ident(spec: Mapping[str, Any], name: str) -> str | None:
    return None if spec.get(name) is None else ident(spec, name)


def text(spec: Mapping[str, Any], name: str, limit: int, default: str | None = None) -> str:
    value = spec.get(name, default)
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise InvalidPayload(f"{name} must be text of at most {limit} characters", field=name)
    return value.strip()


def integer(spec: Mapping[str, Any], name: str, low: int, high: int,
            default: int | None = None) -> int:
    value = spec.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidPayload(f"{name} must be a whole number from {low} to {high}", field=name)
    return value


def flag(spec: Mapping[str, Any], name: str) -> bool:
    value = spec.get(name, False)
    if not isinstance(value, bool):
        raise InvalidPayload(f"{name} must be true or false", field=name)
    return value


def day(spec: Mapping[str, Any], name: str) -> date:
    return parse_day(spec.get(name), name)


def not_past_day(spec: Mapping[str, Any], name: str, now: datetime, zone: str) -> date:
    """``name`` as a date from which a change applies: default today in ``zone``; a day
    before today there is refused (the past stays as it was)."""
    today = now.astimezone(zone_of(zone)).date()
    found = day(spec, name) if spec.get(name) is not None else today
    if found < today:
        raise InvalidPayload(f"{name} must be today or later: past sessions stay as they "
                             "were", field=name)
    return found


def parse_day(value: object, name: str) -> date:
    try:
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise InvalidPayload(f"{name} must be a date (YYYY-MM-DD)", field=name)


def minute(spec: Mapping[str, Any], name: str, default: str | None = None) -> int:
    return parse_minute(spec.get(name, default), name)


def parse_minute(value: object, name: str) -> int:
    try:
        if isinstance(value, str):
            return parse_hhmm(value)
    except ValueError:
        pass
    raise InvalidPayload(f"{name} must be a time of day (HH:MM)", field=name)


def weekday(value: object, name: str = "weekday") -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    if isinstance(value, str) and value.strip().lower() in WEEKDAY_NAMES:
        return WEEKDAY_NAMES[value.strip().lower()]
    raise InvalidPayload(f"{name} must be a weekday (mon..sun)", field=name)


def zone(spec: Mapping[str, Any], name: str = "timezone") -> str:
    value = spec.get(name)
    try:
        if isinstance(value, str) and len(value) <= 64:
            zone_of(value)
            return value
    except ValueError:
        pass
    raise InvalidPayload(f"{name} must be an IANA time zone", field=name)


def codes(spec: Mapping[str, Any], name: str, allowed: Collection[str] | None = None,
          *, required: bool = True) -> list[str]:
    """A list of lower-case codes (each in ``allowed`` when given), sorted, deduplicated."""
    value = spec.get(name, [] if not required else None)
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",") if v.strip()]
    if not isinstance(value, list) or len(value) > 16 or (required and not value):
        raise InvalidPayload(f"{name} must be a list of codes", field=name)
    out = set()
    for item in value:
        code = item.strip().lower() if isinstance(item, str) else ""
        if not re.fullmatch(r"[a-z][a-z_]{0,31}", code):
            raise InvalidPayload(f"{name} must be a list of codes", field=name)
        if allowed is not None and code not in allowed:
            raise InvalidPayload(f"{name}: {code!r} is not one of {sorted(allowed)}",
                                 field=name)
        out.add(code)
    return sorted(out)


def languages(spec: Mapping[str, Any], name: str = "languages") -> list[str]:
    found = codes(spec, name)
    if not all(LANGUAGE.match(x) for x in found):
        raise InvalidPayload(f"{name} must be ISO 639 language codes", field=name)
    return found


def language(spec: Mapping[str, Any], name: str = "language") -> str:
    value = spec.get(name)
    if not isinstance(value, str) or not LANGUAGE.match(value):
        raise InvalidPayload(f"{name} must be an ISO 639 language code", field=name)
    return value


def items(spec: Mapping[str, Any], name: str, limit: int = MAX_LIST) -> list[Mapping[str, Any]]:
    value = spec.get(name, [])
    if not isinstance(value, list) or len(value) > limit or not all(
        isinstance(v, Mapping) for v in value
    ):
        raise InvalidPayload(f"{name} must be a list of at most {limit} objects", field=name)
    return value


def id_list(spec: Mapping[str, Any], name: str, limit: int = MAX_LIST) -> list[str]:
    value = spec.get(name)
    if not isinstance(value, list) or not value or len(value) > limit or not all(
        isinstance(v, str) and ID.match(v) for v in value
    ):
        raise InvalidPayload(f"{name} must be a list of ids", field=name)
    if len(set(value)) != len(value):
        raise InvalidPayload(f"{name} lists an id twice", field=name)
    return list(value)
