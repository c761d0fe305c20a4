"""The three fake providers on loopback, and a Tasktimer account connected to all three
through its real HTTP API (HeySpace password, Pivotal token, Asana OAuth with PKCE).

Used by tests that need every integration endpoint reachable: the fuzzing run, the
secrets scan and the e-mail tests of Asana co-workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp.test_utils import TestServer

from tests.conftest import Api
from tests.fakes import asana as fake_asana
from tests.fakes import heyspace as fake_heyspace
from tests.fakes import pivotal as fake_pivotal

HS_EMAIL, HS_PASSWORD = "owner@heyspace.example", "hey-secret-password-41"


@dataclass
class Providers:
    heyspace: fake_heyspace.HeySpaceState
    pivotal: fake_pivotal.PivotalState
    asana: fake_asana.AsanaState
    urls: dict[str, str]
    # Every credential handed to Tasktimer while connecting, for secrets checks.
    secrets: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def providers() -> AsyncIterator[Providers]:
    states = (fake_heyspace.HeySpaceState(), fake_pivotal.PivotalState(), fake_asana.AsanaState())
    modules = (fake_heyspace, fake_pivotal, fake_asana)
    servers = [
        TestServer(module.create_app(state), host="127.0.0.1")  # type: ignore[attr-defined]
        for module, state in zip(modules, states, strict=True)
    ]
    for server in servers:
        await server.start_server()
    base = [str(s.make_url("")).rstrip("/") for s in servers]
    urls = {
        "heyspace_api_url": f"{base[0]}/api",
        "pivotal_api_url": f"{base[1]}/services/v5",
        "asana_api_url": f"{base[2]}/api/1.0",
        "asana_oauth_url": f"{base[2]}/-",
        "asana_client_id": fake_asana.CLIENT_ID,
        "asana_client_secret": fake_asana.CLIENT_SECRET,
    }
    try:
        yield Providers(*states, urls=urls, secrets=[HS_PASSWORD, fake_asana.CLIENT_SECRET])
    finally:
        for server in servers:
            await server.close()


async def wait_for_syncs(admin: Api) -> None:
    """Until no integration is syncing any more."""
    for _ in range(400):
        _, listing = await admin.get("/api/v1/integrations")
        if all(i["status"] != "syncing" for i in listing["items"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("syncs did not finish")


async def connect_all(admin: Api, fakes: Providers, *, coworkers: tuple[str, ...] = ()) -> None:
    """Small worlds in the three fakes, each connected through the API, first syncs done.
    ``coworkers``: e-mail addresses of extra Asana users (not Tasktimer users)."""
    hs = fakes.heyspace
    hs.add_user(HS_EMAIL, HS_PASSWORD)
    todo = hs.add_list(hs.add_space(hs.add_workspace("Studio"), "Website"), "To do")
    hs.add_card(todo, "Design")
    status, body = await admin.post(
        "/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    assert status == 201, body

    token = fakes.pivotal.add_user("pm@example.com")
    fakes.secrets.append(token)
    project = fakes.pivotal.add_project("Mobile app")
    fakes.pivotal.add_story(project, "Login screen", "started")
    status, body = await admin.post("/api/v1/integrations/pivotaltracker", {"api_token": token})
    assert status == 201, body

    asana = fakes.asana
    owner = asana.add_user("owner@asana.example", "Owner")
    for address in coworkers:
        asana.add_user(address, address.split("@")[0])
    asana.set_authorizing_user(owner)
    site = asana.add_project(asana.add_workspace("Company"), "Website", members=[owner])
    asana.add_task(site, "Launch", asana.add_section(site, "Now"))
    await connect_asana(admin)
    await wait_for_syncs(admin)


async def connect_asana(api: Api) -> None:
    """Asana connected through the API's OAuth flow (the fake authorizes at once)."""
    status, start = await api.post("/api/v1/integrations/asana")
    assert status == 200, start
    redirect = await api.client.session.get(start["authorize_url"], allow_redirects=False)
    location = urlsplit(redirect.headers["Location"])
    page = await api.client.get(f"{location.path}?{location.query}")
    assert page.status == 200, await page.text()


def provider_tokens(fakes: Providers) -> list[str]:
    """Access and refresh tokens the fakes issued (Asana OAuth, HeySpace sign-in)."""
    found: list[str] = []
    for state in (fakes.asana, fakes.heyspace, fakes.pivotal):
        store = state.tokens
        found.extend([*store._access, *store._refresh])
    return found
