"""The store tests' backend: opened on each storage backend's database, closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.store.base import Backend
from server.store.factory import open_backend
from tests.conftest import make_settings


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Backend]:
    backend = await open_backend(make_settings(database_url))
    try:
        yield backend
    finally:
        await backend.close()
