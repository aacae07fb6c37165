"""The one exception base of the broker package.

Each error has a stable ``code`` that the edge sends unchanged in an error ack
(``{"ok": false, "error": {"code", "message"}}``) or an HTTP problem body.
"""

from __future__ import annotations

from typing import Any


class BrokerError(Exception):
    code = "broker_error"
    http_status = 400

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


class ConfigError(BrokerError):
    code = "config_error"


class InvalidPayload(BrokerError):
    code = "invalid_payload"


class NotFound(BrokerError):
    code = "not_found"
    http_status = 404


class NotAllowed(BrokerError):
    code = "not_allowed"
    http_status = 403


class Unauthenticated(BrokerError):
    code = "unauthenticated"
    http_status = 401


class AlreadyTaken(BrokerError):
    code = "already_taken"
    http_status = 409


class OverCapacity(BrokerError):
    code = "over_capacity"
    http_status = 409


class RateLimited(BrokerError):
    code = "rate_limited"
    http_status = 429


class Unmet(BrokerError):
    """A help request no vendor can serve; it has been recorded as unmet demand."""

    code = "unmet"
    http_status = 422


class Conflict(BrokerError):
    code = "conflict"
    http_status = 409


class ImportFailed(BrokerError):
    """A roster import was refused; nothing was written."""

    code = "import_failed"
