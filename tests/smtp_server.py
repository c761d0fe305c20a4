"""A real SMTP server (aiosmtpd) on a random loopback port, in the test's own event loop.

It keeps every accepted message, refuses recipients whose local part starts with
``refuse``, and (when given credentials) requires SMTP AUTH with exactly those.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


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
    # Per accepted message: whether its session was encrypted (STARTTLS or implicit TLS).
    encrypted: list[bool] = field(default_factory=list)
    scheme: str = "smtp"

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"{self.scheme}://{auth}{self.host}:{self.port}"


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A certificate for ``host`` (and its key) that a test can tell clients to trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tasktimer test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class _Handler:
    def __init__(self, sink: SmtpSink, implicit: bool) -> None:
        self.sink = sink
        self.implicit = implicit

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
        self.sink.encrypted.append(session.ssl is not None or self.implicit)
        return "250 Message accepted"


@asynccontextmanager
async def smtp_sink(
    *,
    user: str | None = None,
    password: str | None = None,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
) -> AsyncIterator[SmtpSink]:
    """``starttls``: offer STARTTLS and allow AUTH only after it; ``implicit_tls``: TLS
    from the first byte (``smtps://``)."""
    sink = SmtpSink("127.0.0.1", 0, scheme="smtps" if implicit_tls else "smtp")
    handler = _Handler(sink, implicit_tls is not None)

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
            return SMTP(handler, hostname="tt-test-smtp", tls_context=starttls)
        return SMTP(
            handler,
            hostname="tt-test-smtp",
            tls_context=starttls,
            authenticator=authenticator,
            auth_required=False,
            # With STARTTLS on offer the password may only be sent encrypted.
            auth_require_tls=starttls is not None,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=implicit_tls)
    sink.port = server.sockets[0].getsockname()[1]
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()
