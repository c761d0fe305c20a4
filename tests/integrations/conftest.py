"""Shared fixtures: one client session per test and a retry policy with tiny waits; the
three fake providers on loopback and a signed-in admin of a server that talks to them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from server.integrations.http import ProviderHTTP
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.fakes.checks import FAST, Saved
from tests.fakes.connected import Providers, providers


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


# The three fakes on loopback (tests/fakes/connected.py), one set per test.
Fakes = Providers


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with providers() as running:
        yield running


@pytest.fixture
async def admin_api(make_client: Any, fakes: Fakes) -> Api:
    client = await make_client(**fakes.urls)
    return await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
