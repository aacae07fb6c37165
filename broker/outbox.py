"""The outbox: reminders and notices to one person each, kept in the database until sent.

A change that announces itself (a booking, a cancellation, a reminder job) writes its
messages with :func:`outbox_values` and :func:`enqueue` in the same transaction as the
change, so a message exists exactly when the change does; a change that makes a message
moot (a cancelled session's reminder) withdraws it with :func:`withdraw`. This module is
the only code that writes ``outbox``. The worker's ``outbox`` job
drains the table with :func:`send_due` through a :class:`Sender`: :class:`SmtpSender`
when ``HH_SMTP_URL`` is set, else :class:`KeepSender` (the demo: rows stay for a page to
show, nothing is claimed or counted).

Guarantees:

* **Written once**: ``dedupe_key`` is unique and :func:`enqueue` skips a duplicate (``ON
  CONFLICT DO NOTHING`` on SQLite and PostgreSQL), so a job that runs twice (after a lost
  lease or a crash) leaves one row.
* **At-least-once delivery**: a row is marked ``sent_at`` only after the sender accepted
  it. A sender that dies after sending and before marking leaves the row claimed; the
  claim runs out after :data:`~broker.constants.OUTBOX_CLAIM_S` and the row is sent
  again (the mail keeps its ``Message-ID``, the row's id, so clients can fold the copy).
* **Never two senders on one row**: a claim is one ``UPDATE ... RETURNING`` that moves the
  due rows' ``next_attempt_at`` past the claim and counts the attempt; on PostgreSQL its
  ``WITH due AS MATERIALIZED (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`` takes at most
  ``batch`` rows, once, so concurrent senders take disjoint rows without waiting; SQLite
  has one writer, which serialises the claims.
* **Never a cancelled row**: rows with ``cancelled_at`` are not claimed, and each claimed
  row is read again just before it is handed to the sender; a cancel that commits while
  the message is already with the mail server cannot call it back.
* **Failures back off, then give up visibly**: a failed attempt keeps ``last_error`` and
  waits :data:`~broker.constants.OUTBOX_RETRY_BASE_S` doubling per attempt (capped at
  :data:`~broker.constants.OUTBOX_RETRY_MAX_S`); after
  :data:`~broker.constants.OUTBOX_MAX_ATTEMPTS` attempts (or at once, for a permanent
  refusal such as an unknown recipient) the row is no longer claimed but stays, unsent and
  not cancelled, with its error, for staff to see (:func:`message_status` says
  ``failed``). Attempts are counted when claimed, so a message that crashes its sender
  cannot loop forever either.
"""

from __future__ import annotations

import abc
import asyncio
import email.utils
import logging
import smtplib
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, ClassVar, Literal
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker import constants as C
from broker.db.models import metadata
from broker.errors import ConfigError
from broker.ids import new_id
from broker.settings import Settings

log = logging.getLogger("broker.outbox")
outbox = metadata.tables["outbox"]

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
_ERROR_WIDTH = 500
_INSERT_CHUNK = 500  # rows per INSERT (SQLite allows 32,766 parameters; a row has 17)


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


async def enqueue(
    conn: AsyncConnection,
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    revive: bool = False,
) -> int:
    """Insert one row's or several rows' :func:`outbox_values` in ``conn``'s transaction,
    skipping any whose ``dedupe_key`` is already there (or repeats earlier in ``values``);
    return how many were inserted (or revived).

    With ``revive``, a row whose ``dedupe_key`` is there but was withdrawn unsent
    (:func:`withdraw`) is pending again, with the new ``due_at`` (a reminder of a session
    moved away and back); a sent row or a pending one is left as it is. ``values`` must
    then not repeat a ``dedupe_key`` (PostgreSQL refuses to update one row twice)."""
    rows = [values] if isinstance(values, Mapping) else list(values)
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    inserted = 0
    for start in range(0, len(rows), _INSERT_CHUNK):
        stmt = insert(outbox).values([dict(row) for row in rows[start : start + _INSERT_CHUNK]])
        if revive:
            stmt = stmt.on_conflict_do_update(
                index_elements=["dedupe_key"],
                set_={"cancelled_at": None, "due_at": stmt.excluded.due_at,
                      "next_attempt_at": stmt.excluded.next_attempt_at},
                where=sa.and_(outbox.c.cancelled_at.is_not(None), outbox.c.sent_at.is_(None)),
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["dedupe_key"])
        inserted += max(int((await conn.execute(stmt)).rowcount or 0), 0)
    return inserted


async def withdraw(
    conn: AsyncConnection,
    key_prefixes: Sequence[str],
    at: datetime,
    *,
    recipient: tuple[str, str] | None = None,
) -> int:
    """Withdraw (``cancelled_at`` = ``at``) the unsent rows whose ``dedupe_key`` starts
    with one of ``key_prefixes`` (``recipient``: only those to that ``(kind, id)``), in
    ``conn``'s transaction; a sender that claimed one skips it. Returns how many."""
    withdrawn = 0
    for prefix in key_prefixes:
        stmt = outbox.update().where(
            outbox.c.dedupe_key.startswith(prefix, autoescape=True),
            outbox.c.sent_at.is_(None),
            outbox.c.cancelled_at.is_(None),
        )
        if recipient is not None:
            stmt = stmt.where(outbox.c.recipient_kind == recipient[0],
                              outbox.c.recipient_id == recipient[1])
        withdrawn += max(int((await conn.execute(stmt.values(cancelled_at=at))).rowcount or 0),
                         0)
    return withdrawn


Status = Literal["pending", "sent", "cancelled", "failed"]


def message_status(row: Mapping[str, Any], max_attempts: int = C.OUTBOX_MAX_ATTEMPTS) -> Status:
    """What a page shows for an outbox row: sent, cancelled, failed (given up), pending."""
    if row["sent_at"] is not None:
        return "sent"
    if row["cancelled_at"] is not None:
        return "cancelled"
    if row["attempts"] >= max_attempts:
        return "failed"
    return "pending"


def retry_after_s(attempts: int) -> float:
    """The wait after the ``attempts``-th failed attempt: doubling, capped."""
    steps = min(max(attempts, 1) - 1, 32)
    return min(C.OUTBOX_RETRY_BASE_S * 2.0**steps, C.OUTBOX_RETRY_MAX_S)


# -- senders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A claimed outbox row, as a sender sees it."""

    id: str
    dedupe_key: str
    kind: str
    recipient_kind: str
    recipient_id: str
    channel: str
    address: str | None
    locale: str
    subject: str
    body: str
    due_at: datetime
    attempts: int  # this attempt included


class SendError(Exception):
    """The message was not sent; it will be tried again (after a backoff)."""


class PermanentSendError(SendError):
    """The message can never be sent as it is (no address, recipient refused): give up."""


class Sender(abc.ABC):
    """Delivers messages of its ``channels``; ``send`` returns once the message is handed
    over (the mail server accepted it) and raises otherwise. ``close`` ends a batch (e.g.
    quits an SMTP connection kept open across one batch's messages)."""

    channels: ClassVar[frozenset[str]] = frozenset({"email"})
    delivers: ClassVar[bool] = True

    @abc.abstractmethod
    async def send(self, message: Message) -> None: ...

    async def close(self) -> None:  # noqa: B027 - optional hook
        """End a batch."""


class KeepSender(Sender):
    """No sender configured (the demo): messages stay in the outbox, for a page to show;
    :func:`send_due` claims nothing and counts no attempt."""

    channels: ClassVar[frozenset[str]] = frozenset()
    delivers: ClassVar[bool] = False

    async def send(self, message: Message) -> None:
        raise PermanentSendError("no sender is configured")


@dataclass(frozen=True)
class SmtpConfig:
    """Where to send mail, from ``HH_SMTP_URL``: ``smtp://[user:pass@]host[:port]`` (plain,
    port 25), ``smtp+starttls://`` (STARTTLS, port 587) or ``smtps://`` (TLS, port 465)."""

    host: str
    port: int
    security: Literal["none", "starttls", "tls"]
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        schemes = {"smtp": ("none", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigError(
                "HH_SMTP_URL must look like smtp://user:pass@host:port "
                "(or smtp+starttls://, smtps://)"
            )
        security, default_port = schemes[parts.scheme]
        try:
            port = parts.port or default_port
        except ValueError as exc:
            raise ConfigError("HH_SMTP_URL has a bad port") from exc
        return cls(
            host=parts.hostname,
            port=port,
            security=security,  # type: ignore[arg-type]
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )


class SmtpSender(Sender):
    """Mail through an SMTP server with the standard library's :mod:`smtplib`, run in a
    thread so the event loop never blocks. One connection serves a whole batch (opened at
    the first message, quit by :meth:`close`); a connection the server dropped is opened
    again once. A refused recipient or message (a 5xx reply) is permanent; anything else
    (no connection, 4xx) is retried."""

    def __init__(self, url: str, mail_from: str, timeout_s: float = 30.0) -> None:
        self.config = SmtpConfig.from_url(url)
        if not mail_from:
            raise ConfigError("HH_MAIL_FROM is needed to send mail")
        self.mail_from = mail_from
        self.timeout_s = timeout_s
        self._smtp: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the password
        return f"SmtpSender({self.config.host}:{self.config.port}, from {self.mail_from})"

    def compose(self, message: Message) -> EmailMessage:
        if message.channel != "email" or not message.address:
            raise PermanentSendError(f"no e-mail address for {message.recipient_kind}")
        mail = EmailMessage()
        try:
            mail["From"] = self.mail_from
            mail["To"] = message.address
            mail["Subject"] = message.subject
        except ValueError as exc:  # a line break in a header
            raise PermanentSendError(f"bad header: {exc}") from exc
        mail["Date"] = email.utils.formatdate(usegmt=True)
        domain = self.mail_from.rpartition("@")[2].strip(">") or "localhost"
        mail["Message-ID"] = f"<{message.id}@{domain}>"  # the same on a resend
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        mail.set_content(message.body)
        mail["Content-Language"] = message.locale  # after set_content, which clears Content-*
        return mail

    async def send(self, message: Message) -> None:
        mail = self.compose(message)
        await asyncio.to_thread(self._send, mail)

    async def close(self) -> None:
        await asyncio.to_thread(self._quit)

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        smtp: smtplib.SMTP
        if cfg.security == "tls":
            smtp = smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=self.timeout_s, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=self.timeout_s)
        try:
            smtp.ehlo()
            if cfg.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _send(self, mail: EmailMessage) -> None:
        with self._lock:
            for fresh in (self._smtp is None, True):
                if self._smtp is None:
                    try:
                        self._smtp = self._connect()
                    except (OSError, smtplib.SMTPException) as exc:
                        raise SendError(f"cannot reach the mail server: {exc}") from exc
                try:
                    self._smtp.send_message(mail)
                    return
                except smtplib.SMTPServerDisconnected as exc:
                    self._smtp = None
                    if fresh:
                        raise SendError(f"the mail server hung up: {exc}") from exc
                except smtplib.SMTPSenderRefused as exc:  # our from address: not the message's
                    self._reset()
                    reply = f"{exc.smtp_code} {_text(exc.smtp_error)}"
                    raise SendError(f"sender refused: {reply}") from exc
                except smtplib.SMTPNotSupportedError as exc:  # e.g. an address needing SMTPUTF8
                    self._reset()
                    raise PermanentSendError(str(exc)) from exc
                except smtplib.SMTPRecipientsRefused as exc:
                    raise PermanentSendError(f"recipient refused: {_replies(exc)}") from exc
                except smtplib.SMTPResponseException as exc:
                    self._reset()
                    error = PermanentSendError if exc.smtp_code >= 500 else SendError
                    raise error(f"{exc.smtp_code} {_text(exc.smtp_error)}") from exc
                except (OSError, smtplib.SMTPException) as exc:
                    self._drop()
                    raise SendError(str(exc)) from exc

    def _reset(self) -> None:
        """After a refusal the connection is usable once the transaction is reset."""
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def _quit(self) -> None:
        with self._lock:
            if self._smtp is None:
                return
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
            finally:
                self._drop()


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _replies(exc: smtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(f"{code} {_text(text)}" for code, text in exc.recipients.values())


def make_sender(settings: Settings) -> Sender:
    """:class:`SmtpSender` when ``HH_SMTP_URL`` is set, else :class:`KeepSender`."""
    if settings.smtp_url:
        return SmtpSender(settings.smtp_url, settings.mail_from)
    return KeepSender()


# -- draining ----------------------------------------------------------------------------------

_MESSAGE_COLUMNS = [outbox.c[name] for name in Message.__dataclass_fields__]


async def _claim(
    engine: AsyncEngine, sender: Sender, now: datetime, batch: int, max_attempts: int,
    claim_s: float,
) -> list[Message]:
    due = (
        sa.select(outbox.c.id)
        .where(
            outbox.c.sent_at.is_(None),
            outbox.c.cancelled_at.is_(None),
            outbox.c.next_attempt_at <= now,
            outbox.c.attempts < max_attempts,
            outbox.c.channel.in_(sorted(sender.channels)),
        )
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(batch)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite's one writer serialises
        # Evaluated once: as a plain ``IN (subquery)`` PostgreSQL may run the subquery again
        # for each row (a nested loop), and each run locks and claims ``batch`` more rows.
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    claim = (
        outbox.update()
        .where(
            outbox.c.id.in_(sa.select(due.c.id)),
            # Again outside the subquery: PostgreSQL re-checks these on a row another
            # sender changed meanwhile, so a row is never claimed twice even without locks.
            outbox.c.sent_at.is_(None),
            outbox.c.cancelled_at.is_(None),
            outbox.c.next_attempt_at <= now,
        )
        .values(
            next_attempt_at=now + timedelta(seconds=claim_s),
            attempts=outbox.c.attempts + 1,
        )
        .returning(*_MESSAGE_COLUMNS)
    )
    async with engine.begin() as conn:
        rows = (await conn.execute(claim)).mappings().all()
    messages = [Message(**row) for row in rows]
    messages.sort(key=lambda m: (m.due_at, m.id))
    return messages


async def _cancelled(engine: AsyncEngine, message_id: str) -> bool:
    async with engine.connect() as conn:
        at = await conn.scalar(sa.select(outbox.c.cancelled_at).where(outbox.c.id == message_id))
    return at is not None


async def _mark(engine: AsyncEngine, message_id: str, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            outbox.update()
            .where(outbox.c.id == message_id, outbox.c.sent_at.is_(None))
            .values(**values)
        )


async def send_due(
    engine: AsyncEngine,
    sender: Sender,
    now: datetime,
    batch: int = C.OUTBOX_BATCH,
    *,
    max_attempts: int = C.OUTBOX_MAX_ATTEMPTS,
    claim_s: float = C.OUTBOX_CLAIM_S,
) -> dict[str, int]:
    """Claim up to ``batch`` rows due at ``now`` for ``sender``'s channels, send them one
    by one, and mark each: ``sent_at``, or a failed attempt (``last_error``, a backoff in
    ``next_attempt_at``), or given up. Returns the counts ``{"claimed", "sent",
    "failed", "gave_up", "cancelled"}``. With a :class:`KeepSender` it does nothing.
    Safe to run on several workers at once (see the module's guarantees)."""
    counts = {"claimed": 0, "sent": 0, "failed": 0, "gave_up": 0, "cancelled": 0}
    if not sender.delivers or batch <= 0:
        return counts
    messages = await _claim(engine, sender, now, batch, max_attempts, claim_s)
    counts["claimed"] = len(messages)
    try:
        for message in messages:
            if await _cancelled(engine, message.id):
                counts["cancelled"] += 1
                continue
            try:
                await sender.send(message)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:_ERROR_WIDTH]
                if isinstance(exc, PermanentSendError) or message.attempts >= max_attempts:
                    counts["gave_up"] += 1
                    log.warning("outbox %s given up after %d attempts: %s",
                                message.id, message.attempts, error)
                    await _mark(
                        engine, message.id, last_error=error,
                        attempts=max(message.attempts, max_attempts),
                    )
                else:
                    counts["failed"] += 1
                    retry_at = now + timedelta(seconds=retry_after_s(message.attempts))
                    await _mark(engine, message.id, last_error=error, next_attempt_at=retry_at)
                continue
            counts["sent"] += 1
            await _mark(engine, message.id, sent_at=now, last_error="")
    finally:
        await sender.close()
    return counts


async def drain(
    engine: AsyncEngine, sender: Sender, now: datetime, batch: int = C.OUTBOX_BATCH,
    max_batches: int = 50,
) -> dict[str, int]:
    """The worker's ``outbox`` job: :func:`send_due` batch after batch while batches come
    back full (at most ``max_batches``, so one round ends); the summed counts."""
    total: dict[str, int] = {}
    for _ in range(max_batches):
        counts = await send_due(engine, sender, now, batch)
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
        if counts["claimed"] < batch:
            break
    return total
