"""A tiny SMTP server for tests, on ``asyncio.start_server`` (no aiosmtpd): it speaks just
enough ESMTP for :mod:`smtplib` (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT),
keeps what it receives, and can refuse recipients or defer messages on demand."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage


@dataclass
class Received:
    mail_from: str
    rcpt_to: list[str]
    message: EmailMessage


@dataclass
class SmtpSink:
    refuse: set[str] = field(default_factory=set)  # recipients answered 550
    defer_next: int = 0  # this many messages answered 451 after DATA
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    connections: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set at each message
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1

        def reply(text: str) -> None:
            writer.write(text.encode() + b"\r\n")

        reply("220 sink ESMTP")
        mail_from, rcpt_to = "", []
        try:
            while line := await reader.readline():
                command = line.decode().rstrip("\r\n")
                verb, _, arg = command.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    reply("250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME")
                elif verb in ("HELO", "NOOP"):
                    reply("250 ok")
                elif verb == "AUTH":
                    _, _, token = arg.partition(" ")
                    _, user, password = base64.b64decode(token).decode().split("\0")
                    self.logins.append((user, password))
                    reply("235 ok")
                elif verb == "MAIL":
                    mail_from, rcpt_to = _address(arg), []
                    reply("250 ok")
                elif verb == "RCPT":
                    to = _address(arg)
                    if to in self.refuse:
                        reply("550 no such user")
                    else:
                        rcpt_to.append(to)
                        reply("250 ok")
                elif verb == "DATA":
                    reply("354 go on")
                    await writer.drain()
                    data = await _read_data(reader)
                    if self.defer_next > 0:
                        self.defer_next -= 1
                        reply("451 try again later")
                    else:
                        parsed = email.message_from_bytes(data, policy=email.policy.default)
                        assert isinstance(parsed, EmailMessage)
                        self.received.append(Received(mail_from, rcpt_to, parsed))
                        self.arrived.set()
                        reply("250 queued")
                elif verb == "RSET":
                    mail_from, rcpt_to = "", []
                    reply("250 ok")
                elif verb == "QUIT":
                    reply("221 bye")
                    await writer.drain()
                    break
                else:
                    reply("502 not implemented")
                await writer.drain()
        finally:
            writer.close()


def _address(arg: str) -> str:
    return arg.partition("<")[2].partition(">")[0]


async def _read_data(reader: asyncio.StreamReader) -> bytes:
    lines = []
    while (line := await reader.readline()) not in (b".\r\n", b""):
        lines.append(line[1:] if line.startswith(b"..") else line)
    return b"".join(lines)
