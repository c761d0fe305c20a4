"""Invitations by e-mail, against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from server.services.mail import Mailer, parse_smtp_url
from server.settings import Settings
from tests.api.test_web import sign_in
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.integrations.conftest import Fakes, fakes  # noqa: F401  (fixture)
from tests.smtp_server import SmtpSink, self_signed, server_context, smtp_sink

SMTP_USER, SMTP_PASSWORD = "tasktimer-mailer", "smtp-Secret-pw-42"
SENDER = "Tasktimer <tasktimer@corp.local>"


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    async with smtp_sink(user=SMTP_USER, password=SMTP_PASSWORD) as server:
        yield server


async def mail_admin(make_client: Any, smtp_url: str, **overrides: Any) -> Api:
    client = await make_client(smtp_url=smtp_url, mail_from=SENDER, **overrides)
    return await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)


async def invite(admin: Api, email: str, name: str = "Ana") -> dict[str, Any]:
    status, user = await admin.post("/api/v1/users", {"email": email, "name": name})
    assert status == 201, user
    return dict(user)


async def accept(admin: Api, invite_url: str, password: str = "joined-password-1") -> Any:
    token = urlsplit(invite_url).path.rsplit("/", 1)[1]
    status, body = await Api(admin.client).post(
        f"/api/v1/invitations/{token}/accept", {"password": password}
    )
    assert status == 200, body
    return body


async def test_invitation_is_mailed_with_its_one_time_link(
    make_client: Any, sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = await mail_admin(make_client, sink.url(SMTP_USER, SMTP_PASSWORD))
    user = await invite(admin, "ana@corp.local", "Ana <Lopez>")
    assert user["mail"] == "sent" and user["invite_url"]
    assert sink.logins == [SMTP_USER]
    [received] = sink.messages
    assert received.recipients == ["ana@corp.local"]
    assert received.sender == "tasktimer@corp.local"
    message = received.message
    assert message["From"] == SENDER and "ana@corp.local" in message["To"]
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    assert user["invite_url"] in plain.get_content()
    html_text = rich.get_content()
    assert f'href="{user["invite_url"]}"' in html_text
    # The name is text, never markup.
    assert "Ana &lt;Lopez&gt;" in html_text and "<Lopez>" not in html_text
    # The mailed link is the working one-time link.
    joined = await accept(admin, user["invite_url"])
    assert joined["user"]["email"] == "ana@corp.local"
    assert SMTP_PASSWORD not in caplog.text


async def test_refused_delivery_says_failed_and_keeps_the_invitation(
    make_client: Any, sink: SmtpSink
) -> None:
    admin = await mail_admin(make_client, sink.url(SMTP_USER, SMTP_PASSWORD))
    user = await invite(admin, "refuse-bob@corp.local", "Bob")
    assert user["mail"] == "failed" and user["invite_url"]
    assert sink.messages == []
    # The next invitation goes through the same server normally.
    other = await invite(admin, "carol@corp.local", "Carol")
    assert other["mail"] == "sent" and len(sink.messages) == 1
    joined = await accept(admin, user["invite_url"])
    assert joined["user"]["email"] == "refuse-bob@corp.local"
    bob = await admin.login("refuse-bob@corp.local", "joined-password-1")
    assert (await bob.get("/api/v1/me"))[1]["email"] == "refuse-bob@corp.local"


async def test_wrong_smtp_password_fails_without_logging_it(
    make_client: Any, sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-smtp-pw-77"
    admin = await mail_admin(make_client, sink.url(SMTP_USER, wrong))
    user = await invite(admin, "dan@corp.local", "Dan")
    assert user["mail"] == "failed" and sink.messages == [] and sink.logins == []
    assert "invitation mail" in caplog.text
    assert wrong not in caplog.text and SMTP_PASSWORD not in caplog.text
    await accept(admin, user["invite_url"])


async def test_unresponsive_server_does_not_hold_the_request(make_client: Any) -> None:
    # A server that accepts the connection and never says hello.
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        admin = await mail_admin(make_client, f"smtp://127.0.0.1:{port}", smtp_timeout_s=0.5)
        started = time.monotonic()
        user = await invite(admin, "erin@corp.local", "Erin")
        assert time.monotonic() - started < 3.0
        assert user["mail"] == "failed"
        await accept(admin, user["invite_url"])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_unreachable_server_says_failed(make_client: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    admin = await mail_admin(make_client, f"smtp://127.0.0.1:{port}")
    user = await invite(admin, "fay@corp.local", "Fay")
    assert user["mail"] == "failed"
    await accept(admin, user["invite_url"])


async def test_without_smtp_nothing_is_mailed(admin: Api) -> None:
    user = await invite(admin, "gus@corp.local", "Gus")
    assert user["mail"] == "not_configured" and user["invite_url"]
    # Users created with a password get no invitation and no mail field.
    status, with_password = await admin.post(
        "/api/v1/users", {"email": "hal@corp.local", "name": "Hal", "password": "hal-password-1"}
    )
    assert status == 201 and with_password.get("mail") is None
    assert with_password.get("invite_url") is None


async def test_asana_coworker_invitations_are_mailed_in_one_session(
    make_client: Any,
    sink: SmtpSink,
    fakes: Fakes,  # noqa: F811
) -> None:
    state = fakes.asana
    owner = state.add_user("owner@corp.local", "Owner")
    mate = state.add_user("mate@corp.local", "Mate")
    refused = state.add_user("refuse-ivy@corp.local", "Ivy")
    state.set_authorizing_user(owner)
    workspace = state.add_workspace("Company")
    state.add_project(workspace, "Website", members=[owner, mate, refused])
    admin = await mail_admin(make_client, sink.url(SMTP_USER, SMTP_PASSWORD), **fakes.urls)
    await admin.new_user("known@corp.local")
    _, start = await admin.post("/api/v1/integrations/asana")
    redirect = await admin.client.session.get(start["authorize_url"], allow_redirects=False)
    location = urlsplit(redirect.headers["Location"])
    callback = await admin.client.get(f"{location.path}?{location.query}", allow_redirects=False)
    assert callback.status in (200, 302, 303)

    status, invited = await admin.post(
        "/api/v1/integrations/asana/invitations",
        {"emails": ["mate@corp.local", "refuse-ivy@corp.local", "known@corp.local"]},
    )
    assert status == 201, invited
    by_email = {item["email"]: item for item in invited["items"]}
    assert by_email["mate@corp.local"]["mail"] == "sent"
    assert by_email["refuse-ivy@corp.local"]["mail"] == "failed"
    assert by_email["known@corp.local"]["status"] == "already_a_user"
    assert by_email["known@corp.local"]["mail"] is None
    assert sink.logins == [SMTP_USER]  # one SMTP session for the batch
    [received] = sink.messages
    assert received.recipients == ["mate@corp.local"]
    plain = received.message.get_body(preferencelist=("plain",))
    assert plain is not None
    assert by_email["mate@corp.local"]["invite_url"] in plain.get_content()
    await accept(admin, by_email["refuse-ivy@corp.local"]["invite_url"])
    await accept(admin, by_email["mate@corp.local"]["invite_url"], "mate-password-1")


async def test_openapi_documents_the_mail_field(client: Any) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for model in ("UserOut", "InvitationOut"):
        mail = schemas[model]["properties"]["mail"]
        text = str(mail)
        assert "sent" in text and "failed" in text and "not_configured" in text
        assert "description" in mail


def test_smtp_url_parsing_and_masking() -> None:
    target = parse_smtp_url("smtps://me%40corp.local:p%3Ass@mail.corp.local")
    assert (target.host, target.port, target.implicit_tls) == ("mail.corp.local", 465, True)
    assert target.username == "me@corp.local" and target.password == "p:ss"
    assert "p:ss" not in repr(target)
    assert parse_smtp_url("smtp://mail.corp.local").port == 587
    settings = Settings(smtp_url="smtp://u:Very-secret-9@mail.corp.local:25")
    assert "Very-secret-9" not in repr(settings) + str(settings)
    assert Settings(public_url="https://tt.corp.local").effective_mail_from == (
        "Tasktimer <tasktimer@tt.corp.local>"
    )
    with pytest.raises(ValueError) as refused:
        Settings(smtp_url="http://u:Very-secret-9@mail.corp.local")
    assert "Very-secret-9" not in str(refused.value)
    assert not Mailer(None, SENDER).configured


async def test_starttls_when_offered_protects_the_password(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    async with smtp_sink(
        user=SMTP_USER, password=SMTP_PASSWORD, starttls=server_context(cert, key)
    ) as tls_sink:
        # A certificate nobody vouches for: no fallback to plain text, the mail fails.
        admin = await mail_admin(make_client, tls_sink.url(SMTP_USER, SMTP_PASSWORD))
        refused = await invite(admin, "kim@corp.local", "Kim")
        assert refused["mail"] == "failed" and tls_sink.logins == []
        # Trusted (as a real server's certificate would be): upgraded, then logged in.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        admin = await mail_admin(make_client, tls_sink.url(SMTP_USER, SMTP_PASSWORD))
        sent = await invite(admin, "lee@corp.local", "Lee")
        assert sent["mail"] == "sent"
        assert tls_sink.logins == [SMTP_USER] and tls_sink.encrypted == [True]
        await accept(admin, refused["invite_url"])


async def test_smtps_url_speaks_tls_from_the_start(
    make_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    async with smtp_sink(
        user=SMTP_USER, password=SMTP_PASSWORD, implicit_tls=server_context(cert, key)
    ) as tls_sink:
        url = tls_sink.url(SMTP_USER, SMTP_PASSWORD)
        assert url.startswith("smtps://")
        admin = await mail_admin(make_client, url)
        sent = await invite(admin, "max@corp.local", "Max")
        assert sent["mail"] == "sent" and tls_sink.encrypted == [True]
        assert tls_sink.logins == [SMTP_USER]


async def test_the_pages_say_what_became_of_the_mail(
    make_client: Any,
    sink: SmtpSink,
    fakes: Fakes,  # noqa: F811
) -> None:
    state = fakes.asana
    owner = state.add_user("owner@corp.local", "Owner")
    mate = state.add_user("asana.mate@corp.local", "Mate")
    state.set_authorizing_user(owner)
    state.add_project(state.add_workspace("Company"), "Website", members=[owner, mate])
    client = await make_client(
        smtp_url=sink.url(SMTP_USER, SMTP_PASSWORD), mail_from=SENDER, **fakes.urls
    )
    _, csrf = await sign_in(client)

    # Team page: a mailed invitation shows no link; a refused one shows it to pass on.
    mailed = await client.post(
        "/team/users", data={"csrf": csrf, "email": "nia@corp.local", "name": "Nia"}
    )
    text = await mailed.text()
    assert mailed.status == 200 and "mailed" in text and "data-tt-invite-url" not in text
    refused = await client.post(
        "/team/users", data={"csrf": csrf, "email": "refuse-ola@corp.local", "name": "Ola"}
    )
    text = await refused.text()
    assert "could not be sent" in text and re.search(r"data-tt-invite-url>http[^<]+<", text)
    assert [m.recipients for m in sink.messages] == [["nia@corp.local"]]

    # Integrations page: Asana co-workers invited by e-mail.
    start = await client.post(
        "/integrations/asana/enable", data={"csrf": csrf}, allow_redirects=False
    )
    authorized = await client.session.get(start.headers["Location"], allow_redirects=False)
    callback = urlsplit(authorized.headers["Location"])
    await client.get(f"{callback.path}?{callback.query}", allow_redirects=False)
    invited = await client.post(
        "/integrations/asana/invite", data={"csrf": csrf, "coworker": "asana.mate@corp.local"}
    )
    text = await invited.text()
    assert "1 co-worker invited; 1 by e-mail." in text and "data-tt-invite-url" not in text
    assert sink.messages[-1].recipients == ["asana.mate@corp.local"]
