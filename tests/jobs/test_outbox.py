"""The outbox over SQLite and PostgreSQL: written once per dedupe key; due rows sent and
marked; failures backed off and then given up, visibly; cancelled rows never sent; a claim
whose sender died sent again (at-least-once); concurrent senders never share a row; the
demo's KeepSender leaves everything alone; and real SMTP against a sink started here."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from broker import constants as C
from broker.db import create_engine
from broker.errors import ConfigError
from broker.migrate import create_schema
from broker.outbox import (
    KeepSender,
    Message,
    PermanentSendError,
    Sender,
    SendError,
    SmtpConfig,
    SmtpSender,
    drain,
    enqueue,
    make_sender,
    message_status,
    outbox,
    outbox_values,
    retry_after_s,
    send_due,
)
from broker.settings import Settings
from tests.jobs.conftest import T0
from tests.jobs.smtp_sink import SmtpSink


def values(key: str, due: datetime = T0, **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": "reminder", "recipient_kind": "parent", "recipient_id": "p1",
        "channel": "email", "locale": "es", "subject": "Recordatorio",
        "body": "Su sesión de tutoría empieza a las 14:40.", "address": "ana@example.org",
    }
    fields.update(kw)
    return outbox_values(dedupe_key=key, due_at=due, now=T0 - timedelta(days=1), **fields)


async def put(engine: AsyncEngine, *rows: dict[str, Any]) -> int:
    async with engine.begin() as conn:
        return await enqueue(conn, list(rows))


async def rows(engine: AsyncEngine) -> dict[str, dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(sa.select(outbox))
        return {row["dedupe_key"]: dict(row) for row in result.mappings()}


class Recording(Sender):
    """Keeps what it is given; fails as told (an exception per dedupe key, or always)."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.sent: list[Message] = []
        self.fail = fail
        self.closed = 0

    async def send(self, message: Message) -> None:
        await asyncio.sleep(0)  # let a concurrent sender interleave
        if self.fail is not None:
            raise self.fail
        self.sent.append(message)

    async def close(self) -> None:
        self.closed += 1


async def test_a_dedupe_key_is_written_once(engine: AsyncEngine) -> None:
    assert await put(engine, values("occ:1:parent:p1"), values("occ:1:tutor:t1")) == 2
    assert await put(engine, values("occ:1:parent:p1")) == 0  # the job ran again
    assert await put(engine, values("occ:2:parent:p1"), values("occ:2:parent:p1")) == 1
    async with engine.begin() as conn:
        assert await enqueue(conn, values("occ:3:parent:p1")) == 1  # one mapping, too
        assert await enqueue(conn, []) == 0
    assert sorted(await rows(engine)) == [
        "occ:1:parent:p1", "occ:1:tutor:t1", "occ:2:parent:p1", "occ:3:parent:p1",
    ]


async def test_many_rows_are_inserted_in_chunks(engine: AsyncEngine) -> None:
    many = [values(f"bulk:{i}") for i in range(1_200)]
    assert await put(engine, *many) == 1_200
    assert await put(engine, *many[:700]) == 0


def test_outbox_values_refuse_what_does_not_fit() -> None:
    row = values("k")
    assert row["next_attempt_at"] == row["due_at"] == T0 and row["attempts"] == 0
    assert len(row["id"]) == 32
    with pytest.raises(ValueError):
        values("x" * 201)
    with pytest.raises(ValueError):
        values("")
    with pytest.raises(ValueError):
        values("k", due=T0.replace(tzinfo=None))


async def test_due_rows_are_sent_once_and_marked(engine: AsyncEngine) -> None:
    await put(engine, values("now"), values("later", due=T0 + timedelta(hours=1)))
    sender = Recording()
    counts = await send_due(engine, sender, T0)
    assert counts == {"claimed": 1, "sent": 1, "failed": 0, "gave_up": 0, "cancelled": 0}
    assert [m.dedupe_key for m in sender.sent] == ["now"] and sender.closed == 1
    state = await rows(engine)
    assert state["now"]["sent_at"] == T0 and state["now"]["attempts"] == 1
    assert message_status(state["now"]) == "sent"
    assert message_status(state["later"]) == "pending"
    assert (await send_due(engine, sender, T0 + timedelta(minutes=59)))["claimed"] == 0
    assert (await send_due(engine, sender, T0 + timedelta(hours=1)))["sent"] == 1
    assert (await send_due(engine, sender, T0 + timedelta(days=1)))["claimed"] == 0
    assert [m.dedupe_key for m in sender.sent] == ["now", "later"]


async def test_failures_back_off_then_give_up_and_stay_visible(engine: AsyncEngine) -> None:
    await put(engine, values("flaky"))
    down = Recording(fail=SendError("connection refused"))
    at = T0
    for attempt in range(1, 4):
        counts = await send_due(engine, down, at, max_attempts=4)
        assert counts["failed"] == 1, attempt
        row = (await rows(engine))["flaky"]
        assert row["attempts"] == attempt
        assert row["last_error"] == "SendError: connection refused"
        assert row["next_attempt_at"] == at + timedelta(seconds=retry_after_s(attempt))
        early = row["next_attempt_at"] - timedelta(seconds=1)
        assert (await send_due(engine, down, early, max_attempts=4))["claimed"] == 0
        at = row["next_attempt_at"]
    assert (await send_due(engine, down, at, max_attempts=4))["gave_up"] == 1
    row = (await rows(engine))["flaky"]
    assert message_status(row, max_attempts=4) == "failed" and row["sent_at"] is None
    assert row["cancelled_at"] is None and "connection refused" in row["last_error"]
    later = at + timedelta(days=7)
    assert (await send_due(engine, Recording(), later, max_attempts=4))["claimed"] == 0


def test_the_outbox_backoff_doubles_and_is_capped() -> None:
    assert [retry_after_s(n) for n in (1, 2, 3)] == [60, 120, 240]
    assert retry_after_s(50) == C.OUTBOX_RETRY_MAX_S


async def test_a_permanent_refusal_gives_up_at_once(engine: AsyncEngine) -> None:
    await put(engine, values("bad"))
    counts = await send_due(engine, Recording(fail=PermanentSendError("550 no such user")), T0)
    assert counts["gave_up"] == 1
    row = (await rows(engine))["bad"]
    assert message_status(row) == "failed" and "550" in row["last_error"]


async def test_cancelled_rows_are_never_sent(engine: AsyncEngine) -> None:
    await put(engine, values("a"), values("b", due=T0 - timedelta(seconds=1)), values("c"))
    async with engine.begin() as conn:
        await conn.execute(outbox.update().where(outbox.c.dedupe_key == "a")
                           .values(cancelled_at=T0 - timedelta(minutes=5)))

    class CancelsTheNext(Recording):
        """While the first message is being sent, the next one is cancelled (a holiday
        was added): claimed already, it must still not be sent."""

        async def send(self, message: Message) -> None:
            async with engine.begin() as conn:
                await conn.execute(outbox.update().where(outbox.c.dedupe_key == "c")
                                   .values(cancelled_at=T0))
            await super().send(message)

    sender = CancelsTheNext()
    counts = await send_due(engine, sender, T0)
    assert counts == {"claimed": 2, "sent": 1, "failed": 0, "gave_up": 0, "cancelled": 1}
    assert [m.dedupe_key for m in sender.sent] == ["b"]
    later = await send_due(engine, sender, T0 + timedelta(days=1))
    assert later["claimed"] == 0
    state = await rows(engine)
    assert message_status(state["a"]) == message_status(state["c"]) == "cancelled"


async def test_a_sender_that_dies_mid_batch_sends_again_after_the_claim(
    engine: AsyncEngine,
) -> None:
    """At-least-once: the message was perhaps sent, never marked; once the claim runs out
    another sender sends it (again)."""
    await put(engine, values("m"))
    with pytest.raises(asyncio.CancelledError):
        await send_due(engine, Recording(fail=asyncio.CancelledError()), T0)
    row = (await rows(engine))["m"]
    assert (row["sent_at"], row["attempts"]) == (None, 1)
    survivor = Recording()
    claim = timedelta(seconds=C.OUTBOX_CLAIM_S)
    assert (await send_due(engine, survivor, T0 + claim - timedelta(seconds=1)))["claimed"] == 0
    assert (await send_due(engine, survivor, T0 + claim))["sent"] == 1
    assert (await rows(engine))["m"]["attempts"] == 2


async def test_two_concurrent_senders_never_send_the_same_row(
    engine: AsyncEngine, engine2: AsyncEngine
) -> None:
    total = 300
    await put(engine, *(values(f"m{i}", due=T0 - timedelta(seconds=i)) for i in range(total)))

    class Meeting(Recording):
        """Its first message waits until the other sender holds a claim too, so the two
        certainly claim side by side."""

        def __init__(self) -> None:
            super().__init__()
            self.holding = asyncio.Event()
            self.other: Meeting | None = None

        async def send(self, message: Message) -> None:
            if not self.holding.is_set():
                self.holding.set()
                assert self.other is not None
                async with asyncio.timeout(10):
                    await self.other.holding.wait()
            await super().send(message)

    senders = [Meeting(), Meeting()]
    senders[0].other, senders[1].other = senders[1], senders[0]

    claims: list[int] = []

    async def worker(eng: AsyncEngine, sender: Recording) -> None:
        while claimed := (await send_due(eng, sender, T0, batch=7))["claimed"]:
            claims.append(claimed)

    await asyncio.gather(worker(engine, senders[0]), worker(engine2, senders[1]),
                         worker(engine, senders[0]), worker(engine2, senders[1]))
    sent = Counter(m.id for s in senders for m in s.sent)
    left = [r for r in (await rows(engine)).values() if r["id"] not in sent]
    assert len(sent) == total and set(sent.values()) == {1}, [
        (r["dedupe_key"], r["attempts"], r["sent_at"], r["next_attempt_at"]) for r in left]
    assert all(s.sent for s in senders)
    assert max(claims) <= 7 and sum(claims) == total  # a claim takes one batch, once
    marked = (await rows(engine)).values()
    assert all(row["sent_at"] == T0 and row["attempts"] == 1 for row in marked)


async def test_drain_sends_batch_after_batch(engine: AsyncEngine) -> None:
    await put(engine, *(values(f"m{i}") for i in range(25)))
    counts = await drain(engine, Recording(), T0, batch=10)
    assert (counts["claimed"], counts["sent"]) == (25, 25)


async def test_the_keep_sender_leaves_every_row_for_the_page(engine: AsyncEngine) -> None:
    await put(engine, values("kept"))
    assert (await send_due(engine, KeepSender(), T0))["claimed"] == 0
    row = (await rows(engine))["kept"]
    assert (row["attempts"], row["sent_at"], message_status(row)) == (0, None, "pending")


# -- SMTP against a real server ----------------------------------------------------------------


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'mail.db'}")
    await create_schema(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    server = SmtpSink(refuse={"nobody@example.org"})
    await server.start()
    yield server
    await server.close()


async def test_smtp_delivers_through_a_real_server(lite: AsyncEngine, sink: SmtpSink) -> None:
    await put(
        lite,
        values("good"),
        values("refused", address="nobody@example.org"),
        values("sms", channel="sms", address="+15550100"),  # not the mail sender's
        values("no-address", address=None),
    )
    sender = SmtpSender(
        f"smtp://tutoring%40district:p%40ss@127.0.0.1:{sink.port}",
        "Tutoring Services <tutoring@district.example>",
    )
    assert "p@ss" not in repr(sender)
    counts = await send_due(lite, sender, T0)
    assert counts == {"claimed": 3, "sent": 1, "failed": 0, "gave_up": 2, "cancelled": 0}
    assert sink.logins == [("tutoring@district", "p@ss")]
    assert sink.connections == 1  # one connection for the batch
    (got,) = sink.received
    state = await rows(lite)
    assert got.mail_from == "tutoring@district.example" and got.rcpt_to == ["ana@example.org"]
    mail = got.message
    assert mail["Subject"] == "Recordatorio" and mail["To"] == "ana@example.org"
    assert mail["Message-ID"] == f"<{state['good']['id']}@district.example>"
    assert mail["Content-Language"] == "es" and mail["Auto-Submitted"] == "auto-generated"
    assert mail.get_content().strip() == "Su sesión de tutoría empieza a las 14:40."
    assert state["good"]["sent_at"] == T0
    assert "550" in state["refused"]["last_error"]
    assert message_status(state["refused"]) == message_status(state["no-address"]) == "failed"
    assert message_status(state["sms"]) == "pending" and state["sms"]["attempts"] == 0


async def test_smtp_deferrals_and_outages_are_retried(lite: AsyncEngine, sink: SmtpSink) -> None:
    await put(lite, values("deferred"))
    sender = SmtpSender(f"smtp://127.0.0.1:{sink.port}", "tutoring@district.example")
    sink.defer_next = 1
    assert (await send_due(lite, sender, T0))["failed"] == 1
    row = (await rows(lite))["deferred"]
    assert row["last_error"].startswith("SendError: 451")
    retry = row["next_attempt_at"]
    await sink.close()  # the mail server is down at the retry
    assert (await send_due(lite, sender, retry))["failed"] == 1
    assert "cannot reach the mail server" in (await rows(lite))["deferred"]["last_error"]
    await sink.start()  # back, on a new port
    sender = SmtpSender(f"smtp://127.0.0.1:{sink.port}", "tutoring@district.example")
    retry = (await rows(lite))["deferred"]["next_attempt_at"]
    assert (await send_due(lite, sender, retry))["sent"] == 1
    assert len(sink.received) == 1 and sink.logins == []


def test_smtp_settings() -> None:
    cfg = SmtpConfig.from_url("smtps://u:p@mail.example.org")
    assert (cfg.host, cfg.port, cfg.security, cfg.username) == ("mail.example.org", 465, "tls", "u")
    assert SmtpConfig.from_url("smtp+starttls://mail.example.org").port == 587
    assert SmtpConfig.from_url("smtp://mail.example.org:2525").port == 2525
    for bad in ("http://mail.example.org", "smtp://", "smtp://h:notaport"):
        with pytest.raises(ConfigError):
            SmtpConfig.from_url(bad)
    settings = Settings.from_env({"HH_SMTP_URL": "smtp://mail:25", "HH_MAIL_FROM": "a@b.c"})
    sender = make_sender(settings)
    assert isinstance(sender, SmtpSender) and sender.mail_from == "a@b.c"
    assert isinstance(make_sender(Settings.from_env({})), KeepSender)
