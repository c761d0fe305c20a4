"""Placeholder for the reports page (the reports work replaces this module)."""

from __future__ import annotations

from aiohttp import web

from ..services.principal import Principal
from .core import page, render

routes = web.RouteTableDef()


@routes.get("/reports")
@page()
async def reports_page(request: web.Request, user: Principal) -> web.StreamResponse:
    return render(request, "reports.html", {"title": "Reports"}, user=user)
