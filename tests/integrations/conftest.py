"""Shared fixtures: one client session per test and a retry policy with tiny waits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from server.integrations.http import ProviderHTTP
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
