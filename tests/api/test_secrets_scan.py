"""No secret leaks: after a run that connects all three tools, signs in, invites, accepts
and syncs, no password, provider credential or token, API token, invitation token, OAuth
code or the server's secret key appears in any response body or any line the server
logged (a real ``python -m server`` process at DEBUG level, on both stores).

An API token may appear in exactly one place: the answer that issued it; an invitation
link only in the answer to the admin who created it (no SMTP configured)."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from bench._common import ADMIN_EMAIL, tasktimer_server
from tests.conftest import Api
from tests.fakes.connected import Providers, connect_all, provider_tokens, providers
from tests.fuzzing import RemoteClient


class RecordingClient(RemoteClient):
    """Keeps every answer's body (and the Location of redirects)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        super().__init__(session, base)
        self.answers: list[tuple[str, bytes]] = []

    async def request(self, method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
        response = await super().request(method, path, **kw)
        body = await response.read()
        where = f"{method} {path} {response.status}"
        self.answers.append((where, body + response.headers.get("Location", "").encode()))
        return response


async def run_everything(api: Api, client: RecordingClient, fakes: Providers) -> dict[str, Any]:
    """The whole life of an account; what was issued along the way."""
    issued: dict[str, Any] = {
        "api_tokens": [api.token],
        "invitations": [],
        "oauth": [],
        "states": [],
    }
    # A wrong password, twice, must not be logged either.
    for _ in range(2):
        await Api(client).call(
            "POST", "/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": "Wrong-Guess-77"}
        )
    original_get = client.session.get

    async def remember_oauth(url: Any, **kw: Any) -> aiohttp.ClientResponse:
        response = await original_get(url, **kw)
        query = parse_qs(urlsplit(response.headers.get("Location", "")).query)
        # The state travels in the authorize URL the admin is given; the code never does.
        issued["oauth"].extend(query.get("code", []))
        issued["states"].extend(query.get("state", []))
        return response

    client.session.get = remember_oauth  # type: ignore[method-assign]
    try:
        await connect_all(api, fakes, coworkers=("carol.case@corp.local",))
    finally:
        client.session.get = original_get  # type: ignore[method-assign]
    user, user_doc = await api.new_user("worker@corp.local", password="Worker-Secret-9931")
    issued["api_tokens"].append(user.token)
    _, tasks = await api.get("/api/v1/tasks?limit=500")
    root = next(t for t in tasks["items"] if t["parent_id"] is None)
    await api.put(f"/api/v1/tasks/{root['id']}/members/{user_doc['id']}", {"role": "regular"})
    status, started = await user.post("/api/v1/timer/start", {"task_id": root["id"]})
    assert status == 201, started
    await user.post("/api/v1/timer/stop", {})
    # An invitation by e-mail address, accepted, signed in.
    status, invited = await api.post("/api/v1/users", {"email": "bob@corp.local", "name": "Bob"})
    assert status == 201
    token = invited["invite_url"].rsplit("/", 1)[1]
    issued["invitations"].append(token)
    status, accepted = await Api(client).post(
        f"/api/v1/invitations/{token}/accept", {"password": "Bob-Secret-5521"}
    )
    assert status == 200
    issued["api_tokens"].append(accepted["token"])
    bob = await Api(client).login("bob@corp.local", "Bob-Secret-5521")
    issued["api_tokens"].append(bob.token)
    # Asana co-workers invited.
    status, coworkers = await api.post(
        "/api/v1/integrations/asana/invitations", {"emails": ["carol.case@corp.local"]}
    )
    assert status == 201, coworkers
    issued["invitations"].append(coworkers["items"][0]["invite_url"].rsplit("/", 1)[1])
    # Forced syncs, re-enabling with the same credentials, listings.
    for service in ("heyspace", "pivotaltracker", "asana"):
        status, _ = await api.post(f"/api/v1/integrations/{service}/sync")
        assert status == 202
    pivotal_token = fakes.secrets[-1]
    status, _ = await api.post(
        "/api/v1/integrations/pivotaltracker/reenable", {"api_token": pivotal_token}
    )
    assert status == 200
    from tests.fakes.connected import wait_for_syncs

    await wait_for_syncs(api)
    for path in ("/api/v1/integrations", "/api/v1/users", "/api/v1/me", "/api/v1/entries"):
        assert (await api.get(path))[0] == 200
    assert (await user.post("/api/v1/auth/logout"))[0] == 204
    return issued


async def test_no_secret_in_any_answer_or_log_line(database_url: str) -> None:
    admin_password = "Admin-Secret-" + secrets.token_hex(6)
    secret_key = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="tt-secrets-") as tmp:
        workdir = Path(tmp)
        async with providers() as fakes, aiohttp.ClientSession() as session:
            env = {f"TT_{k.upper()}": v for k, v in fakes.urls.items()}
            env.update(
                TT_SECRET_KEY=secret_key,
                TT_LOG_LEVEL="DEBUG",
                TT_PASSWORD_TIME_COST="1",
                TT_PASSWORD_MEMORY_KIB="1024",
            )
            import sys

            with tasktimer_server(
                sys.executable, database_url, workdir, admin_password, 60, extra_env=env
            ) as server:
                client = RecordingClient(session, server.base)
                api = await Api(client).login(ADMIN_EMAIL, admin_password)
                issued = await run_everything(api, client, fakes)
                log_path = server.log_path
            log_lines = log_path.read_text(errors="replace").splitlines()

        always_secret = {
            "admin password": admin_password,
            "server secret key": secret_key,
            "user password": "Worker-Secret-9931",
            "invitee password": "Bob-Secret-5521",
            "wrong password": "Wrong-Guess-77",
            **{f"provider credential {i}": s for i, s in enumerate(fakes.secrets)},
            **{f"provider token {i}": t for i, t in enumerate(provider_tokens(fakes))},
            **{f"oauth value {i}": v for i, v in enumerate(issued["oauth"])},
        }
        assert len(provider_tokens(fakes)) >= 3  # the fakes did issue tokens
        assert len(log_lines) > 20  # the server logged the run (access log, syncs)
        leaks = []
        for line in log_lines:
            for name, value in always_secret.items():
                if value in line:
                    leaks.append(f"log: {name} in {line[:200]}")
            for value in [*issued["api_tokens"], *issued["invitations"], *issued["states"]]:
                if value and value in line:
                    leaks.append(f"log: a token in {line[:200]}")
        for where, body in client.answers:
            text = body.decode(errors="replace")
            for name, value in always_secret.items():
                if value in text:
                    leaks.append(f"answer {where}: {name}")
            for value in issued["api_tokens"]:
                # The answer that issued a token carries it; no other answer may.
                if (
                    value
                    and value in text
                    and not where.startswith(
                        ("POST /api/v1/auth/login 200", "POST /api/v1/invitations/")
                    )
                ):
                    leaks.append(f"answer {where}: an API token")
        assert issued["oauth"] and issued["states"]
        assert leaks == [], "\n".join(leaks)
        issuing = [
            w for w, b in client.answers if any(t and t in b.decode() for t in issued["api_tokens"])
        ]
        # Each API token appears in the one answer that issued it.
        assert len(issuing) == len({t for t in issued["api_tokens"] if t})
