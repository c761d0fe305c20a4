"""Invitation mail over SMTP (aiosmtplib).

A batch of messages shares one connection and one deadline, so inviting many co-workers
costs one login and never holds the request longer than ``TT_SMTP_TIMEOUT_S``. A message
the server refuses, or a server that cannot be reached, is reported per message as
``failed``; the caller keeps the invitation either way.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Literal
from urllib.parse import unquote, urlsplit

import aiosmtplib

log = logging.getLogger(__name__)

MailStatus = Literal["sent", "failed", "not_configured"]


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    def __repr__(self) -> str:
        # Never the password, wherever the object ends up being printed.
        return f"SmtpTarget({self.host}:{self.port}, tls={self.implicit_tls})"


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("expected smtp://user:pass@host:port or smtps://user:pass@host:port")
    implicit_tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if implicit_tls else 587),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit_tls,
    )


@dataclass(frozen=True)
class Invitation:
    """What an invitation mail needs to say."""

    email: str
    name: str
    url: str
    inviter: str
    expires_days: int


def invitation_message(sender: str, invitation: Invitation) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr((invitation.name, invitation.email))
    message["Subject"] = f"{invitation.inviter} invited you to Tasktimer"
    message["Message-ID"] = make_msgid(domain=invitation.email.rpartition("@")[2] or None)
    greeting = f"Hello {invitation.name}," if invitation.name else "Hello,"
    message.set_content(
        f"{greeting}\n\n"
        f"{invitation.inviter} invited you to track your time with Tasktimer.\n"
        f"Open this link to choose your password and sign in:\n\n"
        f"{invitation.url}\n\n"
        f"The link works once and expires in {invitation.expires_days} days.\n"
    )
    e = html.escape
    message.add_alternative(
        '<!doctype html><html><body style="font-family:system-ui,sans-serif">'
        f"<p>{e(greeting)}</p>"
        f"<p>{e(invitation.inviter)} invited you to track your time with Tasktimer.</p>"
        f'<p><a href="{e(invitation.url)}">Choose your password and sign in</a></p>'
        f"<p>Or copy this link into your browser: {e(invitation.url)}</p>"
        f"<p>The link works once and expires in {invitation.expires_days} days.</p>"
        "</body></html>",
        subtype="html",
    )
    return message


class Mailer:
    def __init__(self, smtp_url: str | None, sender: str, *, timeout_s: float = 10.0) -> None:
        self._target = parse_smtp_url(smtp_url) if smtp_url else None
        self.sender = sender
        self._timeout_s = timeout_s

    @property
    def configured(self) -> bool:
        return self._target is not None

    def _client(self, target: SmtpTarget) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.implicit_tls,
            # None: upgrade with STARTTLS when the server offers it, plain otherwise.
            start_tls=False if target.implicit_tls else None,
            timeout=self._timeout_s,
        )

    async def send(self, messages: Sequence[EmailMessage]) -> list[MailStatus]:
        target = self._target
        if target is None:
            return ["not_configured"] * len(messages)
        results: list[MailStatus] = ["failed"] * len(messages)
        if not messages:
            return results
        try:
            async with asyncio.timeout(self._timeout_s):
                smtp = self._client(target)
                async with smtp:
                    for i, message in enumerate(messages):
                        try:
                            await smtp.send_message(message)
                        except aiosmtplib.SMTPResponseException as exc:
                            # Refused by the server (a recipient, the sender, the data):
                            # this message failed, the next may still go through.
                            log.warning(
                                "invitation mail refused by %s:%s: %s %s",
                                target.host,
                                target.port,
                                exc.code,
                                exc.message,
                            )
                        except aiosmtplib.SMTPRecipientsRefused as exc:
                            log.warning(
                                "invitation mail refused by %s:%s: %s",
                                target.host,
                                target.port,
                                "; ".join(f"{r.code} {r.message}" for r in exc.recipients),
                            )
                        else:
                            results[i] = "sent"
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            # The exception texts are the server's answers or socket errors; the URL
            # (with its password) is never part of them.
            log.warning(
                "invitation mail via %s:%s failed: %s: %s",
                target.host,
                target.port,
                type(exc).__name__,
                exc,
            )
        return results
