"""A real SMTP server (aiosmtpd) on a random loopback port, in the test's own event loop.

It keeps every accepted message, refuses recipients whose local part starts with
``refuse``, and (when given credentials) requires SMTP AUTH with exactly those.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"smtp://{auth}{self.host}:{self.port}"


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.split("@")[0].lower().startswith("refuse"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.sink.messages.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed)
        )
        return "250 Message accepted"


@asynccontextmanager
async def smtp_sink(
    *, user: str | None = None, password: str | None = None
) -> AsyncIterator[SmtpSink]:
    sink = SmtpSink("127.0.0.1", 0)
    handler = _Handler(sink)

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        if ok:
            sink.logins.append(str(user))
        return AuthResult(success=ok, handled=False)

    def factory() -> SMTP:
        if user is None:
            return SMTP(handler, hostname="tt-test-smtp")
        return SMTP(
            handler,
            hostname="tt-test-smtp",
            authenticator=authenticator,
            auth_required=False,
            auth_require_tls=False,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()
