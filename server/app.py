"""The application factory: builds everything, opens nothing at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import aiohttp_cors
from aiohttp import web

from . import web as pages
from .api.core import Ctx, origin_allowed, request_middleware
from .api.openapi import build_openapi
from .api.routes import api
from .keys import SERVICES, SETTINGS
from .services.container import Services, build_services
from .settings import Settings
from .store.factory import open_backend
from .web.core import csrf_middleware, page_middleware

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return version("tasktimer")
    except PackageNotFoundError:
        return "0.0.0"


async def _bootstrap_admin(services: Services) -> None:
    settings = services.settings
    if not (settings.bootstrap_admin_email and settings.bootstrap_admin_password):
        return
    if await services.accounts.user_count():
        return
    await services.accounts.create_account_with_admin(
        settings.bootstrap_admin_email, settings.bootstrap_admin_password.get_secret_value()
    )
    log.info("created the bootstrap admin %s", settings.bootstrap_admin_email)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        # Outermost first: request ids, logging and API errors; then HTML error pages and
        # security headers for the pages; then the CSRF check for cookie sessions.
        middlewares=[request_middleware, page_middleware, csrf_middleware],
        client_max_size=settings.max_body_bytes,
    )
    app[SETTINGS] = settings

    async def database(app: web.Application) -> AsyncIterator[None]:
        backend = await open_backend(settings)
        services = build_services(settings, backend)
        app[SERVICES] = services
        await _bootstrap_admin(services)
        await services.events.start()
        # Objects made at start-up live as long as the process: keep them out of the
        # collector's full scans, which otherwise show up as latency spikes under load.
        gc.freeze()
        try:
            yield
        finally:
            await services.events.stop()
            await backend.close()

    app.cleanup_ctx.append(database)
    from .integrations.wiring import integrations_ctx

    app.cleanup_ctx.append(integrations_ctx)

    from .api.integrations import api as integrations_api
    from .api.reports import api as reports_api

    routes = [
        *api.install(app),
        *integrations_api.install(app),
        *reports_api.install(app),
        *pages.install(app),
    ]
    document = build_openapi(_merged(api, integrations_api, reports_api), version=_version())

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    routes.append(app.router.add_get("/api/v1/openapi.json", openapi, allow_head=False))

    cors = aiohttp_cors.setup(
        app,
        defaults={
            # The origin itself is checked against TT_CORS_ORIGINS by the request
            # middleware (it allows extension-id wildcards, which aiohttp-cors does not).
            "*": aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
                allow_credentials=False,
                allow_headers=("Authorization", "Content-Type", "Idempotency-Key"),
                expose_headers=("X-Request-Id",),
                allow_methods="*",
                max_age=3600,
            )
        },
    )
    for route in routes:
        cors.add(route)

    allowed = [*settings.cors_origin_list, settings.effective_public_url]

    async def strip_foreign_cors(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin and not origin_allowed(origin, allowed):
            for header in [h for h in response.headers if h.lower().startswith("access-control-")]:
                del response.headers[header]

    app.on_response_prepare.append(strip_foreign_cors)
    return app


def _merged(*apis: Any) -> Any:
    from .api.core import Api

    merged = Api()
    for part in apis:
        merged.routes.extend(part.routes)
    return merged


__all__ = ["Ctx", "create_app"]
