"""The web app: server-rendered pages over the same services as the API."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from . import integrations, invite, reports, session, tasks, team, timesheet

STATIC = Path(__file__).parent / "static"

# Each page module has a ``routes`` table; a new page adds its module here.
PAGES = (session, timesheet, team, invite, reports, integrations, tasks)


def install(app: web.Application) -> list[web.AbstractRoute]:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("server.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    for module in PAGES:
        app.router.add_routes(module.routes)
    app.router.add_static("/static/", STATIC, append_version=False)
    return []
