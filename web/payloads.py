"""Validation of event payloads: each helper returns a typed value or raises InvalidPayload
naming the field, so handlers never see a malformed payload."""

from __future__ import annotations

from typing import Any

from broker.errors import InvalidPayload

MAX_ID = 64


def obj(data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidPayload("payload must be a JSON object")
    return data


def text(
    data: dict[str, Any], key: str, *, required: bool = True, max_len: int = 200, default: str = ""
) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise InvalidPayload(f"'{key}' is required", field=key)
        return default
    if not isinstance(value, str):
        raise InvalidPayload(f"'{key}' must be a string", field=key)
    if required and not value.strip():
        raise InvalidPayload(f"'{key}' must not be empty", field=key)
    if len(value) > max_len:
        raise InvalidPayload(f"'{key}' is longer than {max_len} characters", field=key)
    if "\x00" in value:  # no database stores it (PostgreSQL refuses it in text)
        raise InvalidPayload(f"'{key}' contains a NUL character", field=key)
    return value


def ident(data: dict[str, Any], key: str) -> str:
    value = text(data, key, max_len=MAX_ID)
    if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InvalidPayload(f"'{key}' is not a valid id", field=key)
    return value


def client_id(data: dict[str, Any], key: str = "client_id") -> str | None:
    """An optional id the client chose (a message's, for at-most-once resends): at most
    40 characters of letters, digits, ``-`` and ``_``; ``None`` when absent."""
    if data.get(key) is None:
        return None
    value = text(data, key, max_len=40)
    if not value.replace("-", "").replace("_", "").isalnum() or not value.isascii():
        raise InvalidPayload(f"'{key}' is not a valid id", field=key)
    return value


def boolean(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidPayload(f"'{key}' must be true or false", field=key)
    return value


def integer(data: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidPayload(f"'{key}' must be an integer from {lo} to {hi}", field=key)
    return value


def grade(data: dict[str, Any], key: str = "grade") -> str | int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidPayload(f"'{key}' must be a grade code", field=key)
    if isinstance(value, str) and len(value) > 4:
        raise InvalidPayload(f"'{key}' must be a grade code", field=key)
    return value
