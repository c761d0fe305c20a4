"""Shared fixtures: one client session per test and a retry policy with tiny waits; the
three fake providers on loopback and a signed-in admin of a server that talks to them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from server.integrations.http import ProviderHTTP
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.fakes import asana as fake_asana
from tests.fakes import heyspace as fake_heyspace
from tests.fakes import pivotal as fake_pivotal
from tests.fakes.checks import FAST, Saved


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def http(session: aiohttp.ClientSession) -> ProviderHTTP:
    return ProviderHTTP(session, policy=FAST)


@pytest.fixture
def saver() -> Saved:
    return Saved()


@dataclass
class Fakes:
    heyspace: fake_heyspace.HeySpaceState
    pivotal: fake_pivotal.PivotalState
    asana: fake_asana.AsanaState
    urls: dict[str, str]


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    states = (fake_heyspace.HeySpaceState(), fake_pivotal.PivotalState(), fake_asana.AsanaState())
    servers = [
        TestServer(module.create_app(state), host="127.0.0.1")  # type: ignore[attr-defined]
        for module, state in zip((fake_heyspace, fake_pivotal, fake_asana), states, strict=True)
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
        yield Fakes(*states, urls=urls)
    finally:
        for server in servers:
            await server.close()


@pytest.fixture
async def admin_api(make_client: Any, fakes: Fakes) -> Api:
    client = await make_client(**fakes.urls)
    return await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
