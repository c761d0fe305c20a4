"""Resources of the integrations part: the provider HTTP session and the sync service."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web


async def integrations_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
