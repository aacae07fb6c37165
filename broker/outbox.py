"""The outbox: reminders and notices to one person each, kept in the database until sent.

A change that announces itself (a booking, a cancellation, a reminder job) writes its
messages with :func:`outbox_values` and :func:`enqueue` in the same transaction as the
change, so a message exists exactly when the change does. A sender drains the table.

Guarantees:

* ``dedupe_key`` is unique: writing the same message twice (a job that runs again after a
  lost lease or a crash) leaves one row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from broker.ids import new_id

# Column widths of ``outbox`` (migration 0007); a longer value is refused, not truncated.
_WIDTHS = {
    "dedupe_key": 200,
    "kind": 32,
    "recipient_kind": 16,
    "recipient_id": 64,
    "channel": 16,
    "locale": 16,
    "subject": 200,
}
_ADDRESS_WIDTH = 320


def outbox_values(
    *,
    dedupe_key: str,
    kind: str,
    recipient_kind: str,
    recipient_id: str,
    channel: str,
    locale: str,
    subject: str,
    body: str,
    due_at: datetime,
    now: datetime,
    address: str | None = None,
) -> dict[str, Any]:
    """The values of one insert into ``outbox``, with a new id (:func:`broker.ids.new_id`).

    The message is first tried at ``due_at`` (``next_attempt_at`` starts there), with no
    attempts yet. ``due_at`` and ``now`` must be timezone-aware; the strings must fit their
    columns and the keys must not be empty (:class:`ValueError` otherwise, so a bad
    message fails where it is written, not in the sender).
    """
    texts = {
        "dedupe_key": dedupe_key,
        "kind": kind,
        "recipient_kind": recipient_kind,
        "recipient_id": recipient_id,
        "channel": channel,
        "locale": locale,
        "subject": subject,
    }
    for column, value in texts.items():
        if not value and column != "subject":
            raise ValueError(f"outbox {column} is empty")
        if len(value) > _WIDTHS[column]:
            raise ValueError(f"outbox {column} is longer than {_WIDTHS[column]} characters")
    if address is not None and len(address) > _ADDRESS_WIDTH:
        raise ValueError(f"outbox address is longer than {_ADDRESS_WIDTH} characters")
    for name, moment in (("due_at", due_at), ("now", now)):
        if moment.tzinfo is None:
            raise ValueError(f"outbox {name} must be timezone-aware")
    return {
        "id": new_id(),
        **texts,
        "address": address,
        "body": body,
        "created_at": now,
        "due_at": due_at,
        "next_attempt_at": due_at,
        "attempts": 0,
        "last_error": "",
        "sent_at": None,
        "cancelled_at": None,
    }
