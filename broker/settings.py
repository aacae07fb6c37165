"""Typed settings read once from the environment (see the README's configuration table)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from broker import constants as C
from broker.errors import ConfigError


def normalise_database_url(url: str) -> str:
    """Accept the URLs platforms hand out (``postgres://``) and pick the async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        url = "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def _bounded(
    env: Mapping[str, str], name: str, default: float, low: float, high: float,
    *, with_low: bool = False,
) -> float:
    """A number strictly between ``low`` and ``high`` (or equal to ``low`` if ``with_low``)."""
    value = _float(env, name, default)
    if not (low < value < high or (with_low and value == low)):
        raise ConfigError(f"{name} must be between {low} and {high}, got {value!r}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """An integer of at least 1 (a limit of events: 0 would refuse every event)."""
    value = _int(env, name, default)
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


@dataclass(frozen=True)
class Settings:
    host: str = C.DEFAULT_HOST
    port: int = C.DEFAULT_PORT
    database_url: str = C.DEFAULT_DATABASE_URL
    redis_url: str | None = None
    redis_prefix: str = C.DEFAULT_REDIS_PREFIX
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    pseudonym_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    catalog_path: Path | None = None  # None: the shipped district catalog
    demo: bool = False
    log_level: str = "INFO"
    grace_seconds: float = C.GRACE_SECONDS
    hand_over_after_s: float = C.HAND_OVER_AFTER_S
    queue_max_wait_s: float = C.QUEUE_MAX_WAIT_S
    session_idle_s: float = C.SESSION_IDLE_S
    chat_max_chars: int = C.CHAT_MAX_CHARS
    chat_rate_messages: int = C.CHAT_RATE_MESSAGES
    chat_rate_window_s: float = C.CHAT_RATE_WINDOW_S
    request_rate_limit: int = C.REQUEST_RATE_LIMIT
    request_rate_window_s: float = C.REQUEST_RATE_WINDOW_S
    message_retention_days: int = C.MESSAGE_RETENTION_DAYS
    metadata_retention_days: int = C.METADATA_RETENTION_DAYS
    frame_ancestors: str = "'self' https://*.schoology.com"
    lti_platforms: str | None = None  # JSON text or a path to a JSON file
    public_url: str | None = None  # e.g. https://help.example.org, for LTI configuration
    show_first_name_to_tutors: bool = False
    smtp_url: str | None = None  # HH_SMTP_URL; None: the outbox is kept, not sent
    mail_from: str = C.DEFAULT_MAIL_FROM  # HH_MAIL_FROM
    default_locale: str = "en"  # HH_DEFAULT_LOCALE: pages' language when nothing says one
    # chat safety (docs/moderation.md)
    moderation_rules_path: Path | None = None  # HH_MODERATION_RULES; None: shipped rules
    crisis_resources_path: Path | None = None  # HH_CRISIS_RESOURCES; None: shipped text
    tutor_silent_s: float = C.TUTOR_SILENT_S  # HH_TUTOR_SILENT_S; 0 turns it off
    student_silent_s: float = C.STUDENT_SILENT_S  # HH_STUDENT_SILENT_S
    no_tutor_alert_s: float = C.NO_TUTOR_ALERT_S  # HH_NO_TUTOR_ALERT_S; 0 turns it off
    safety_review_days: int = C.SAFETY_REVIEW_DAYS  # HH_SAFETY_REVIEW_DAYS
    safety_alert_email: str | None = None  # HH_SAFETY_ALERT_EMAIL: the district's contact
    # HH_VENDOR_SAFETY_CONTACTS: "vendor=address;vendor=address", told of suspensions
    vendor_safety_contacts: str = ""
    # capacity planning (docs/capacity.md): the target staffing advice aims at
    service_target: float = 0.8  # HH_SERVICE_TARGET: share accepted within the wait below
    service_target_wait_s: float = 60.0  # HH_SERVICE_TARGET_WAIT_S

    @property
    def uses_redis(self) -> bool:
        return bool(self.redis_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        catalog = env.get("HH_CATALOG")
        secret = env.get("HH_SECRET_KEY") or defaults.secret_key
        return cls(
            host=env.get("HH_HOST", C.DEFAULT_HOST),
            port=_int(env, "PORT", C.DEFAULT_PORT),
            database_url=normalise_database_url(env.get("DATABASE_URL") or C.DEFAULT_DATABASE_URL),
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("HH_REDIS_PREFIX", C.DEFAULT_REDIS_PREFIX),
            secret_key=secret,
            pseudonym_secret=env.get("HH_PSEUDONYM_SECRET") or secret,
            catalog_path=Path(catalog) if catalog else None,
            demo=_bool(env, "HH_DEMO", False),
            log_level=env.get("HH_LOG_LEVEL", "INFO").upper(),
            grace_seconds=_float(env, "HH_GRACE_SECONDS", C.GRACE_SECONDS),
            hand_over_after_s=_bounded(
                env, "HH_HAND_OVER_AFTER_S", C.HAND_OVER_AFTER_S, 0.0, 86400.0
            ),
            queue_max_wait_s=_float(env, "HH_QUEUE_MAX_WAIT_S", C.QUEUE_MAX_WAIT_S),
            session_idle_s=_float(env, "HH_SESSION_IDLE_S", C.SESSION_IDLE_S),
            chat_max_chars=_int(env, "HH_CHAT_MAX_CHARS", C.CHAT_MAX_CHARS),
            chat_rate_messages=_positive_int(env, "HH_CHAT_RATE_MESSAGES", C.CHAT_RATE_MESSAGES),
            chat_rate_window_s=_bounded(
                env, "HH_CHAT_RATE_WINDOW_S", C.CHAT_RATE_WINDOW_S, 0.0, 86400.0
            ),
            request_rate_limit=_positive_int(
                env, "HH_REQUEST_RATE_LIMIT", C.REQUEST_RATE_LIMIT
            ),
            request_rate_window_s=_bounded(
                env, "HH_REQUEST_RATE_WINDOW_S", C.REQUEST_RATE_WINDOW_S, 0.0, 86400.0
            ),
            message_retention_days=_int(
                env, "HH_MESSAGE_RETENTION_DAYS", C.MESSAGE_RETENTION_DAYS
            ),
            metadata_retention_days=_int(
                env, "HH_METADATA_RETENTION_DAYS", C.METADATA_RETENTION_DAYS
            ),
            frame_ancestors=env.get("HH_FRAME_ANCESTORS", defaults.frame_ancestors),
            lti_platforms=env.get("HH_LTI_PLATFORMS") or None,
            public_url=env.get("HH_PUBLIC_URL") or None,
            show_first_name_to_tutors=_bool(env, "HH_SHOW_FIRST_NAME", False),
            smtp_url=env.get("HH_SMTP_URL") or None,
            mail_from=env.get("HH_MAIL_FROM") or C.DEFAULT_MAIL_FROM,
            default_locale=env.get("HH_DEFAULT_LOCALE") or "en",
            moderation_rules_path=_path(env, "HH_MODERATION_RULES"),
            crisis_resources_path=_path(env, "HH_CRISIS_RESOURCES"),
            tutor_silent_s=_float(env, "HH_TUTOR_SILENT_S", C.TUTOR_SILENT_S),
            student_silent_s=_float(env, "HH_STUDENT_SILENT_S", C.STUDENT_SILENT_S),
            no_tutor_alert_s=_float(env, "HH_NO_TUTOR_ALERT_S", C.NO_TUTOR_ALERT_S),
            safety_review_days=_int(env, "HH_SAFETY_REVIEW_DAYS", C.SAFETY_REVIEW_DAYS),
            safety_alert_email=env.get("HH_SAFETY_ALERT_EMAIL") or None,
            vendor_safety_contacts=env.get("HH_VENDOR_SAFETY_CONTACTS", ""),
            service_target=_bounded(env, "HH_SERVICE_TARGET", 0.8, 0.0, 1.0),
            service_target_wait_s=_bounded(
                env, "HH_SERVICE_TARGET_WAIT_S", 60.0, 0.0, 86400.0, with_low=True
            ),
        )

    def vendor_contact(self, vendor: str) -> str | None:
        """The address ``HH_VENDOR_SAFETY_CONTACTS`` gives for ``vendor``, if any."""
        for part in self.vendor_safety_contacts.split(";"):
            name, _, address = part.partition("=")
            if name.strip() == vendor and address.strip():
                return address.strip()
        return None
