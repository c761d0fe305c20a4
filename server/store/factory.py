"""Pick the adapter the database URL names."""

from __future__ import annotations

from ..settings import Settings
from .base import Backend
from .mongo import MongoBackend
from .specs import ALL
from .sqlite import SQLiteBackend


def make_backend(settings: Settings) -> Backend:
    if settings.is_mongo:
        return MongoBackend(settings.database_url)
    return SQLiteBackend(settings.sqlite_path)


async def open_backend(settings: Settings) -> Backend:
    backend = make_backend(settings)
    await backend.open(ALL)
    return backend
