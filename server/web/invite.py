"""Accepting an invitation: choose a password (and a name), then signed in."""

from __future__ import annotations

from aiohttp import web

from ..domain.errors import DomainError
from .core import end_session, render, services, set_session

routes = web.RouteTableDef()
# The token is in the address: keep it out of caches. Referer headers go to our own
# origin only (the pages' same-origin policy; "no-referrer" would make the browser send
# "Origin: null" with the form, which the origin check refuses).
PRIVATE = {"Cache-Control": "no-store"}


def _page(
    request: web.Request, *, name: str = "", error: str = "", status: int = 200
) -> web.Response:
    response = render(
        request, "invite.html", {"name": name, "alerts": [error] if error else []}, status=status
    )
    response.headers.update(PRIVATE)
    return response


@routes.get("/invite/{token}")
async def invite_page(request: web.Request) -> web.StreamResponse:
    return _page(request)


@routes.post("/invite/{token}")
async def accept_invite(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    name = str(form.get("name") or "").strip()[:200]
    password = str(form.get("password") or "")[:1000]
    try:
        token, _ = await services(request).accounts.accept_invitation(
            request.match_info["token"], password, name or None, kind="session"
        )
    except DomainError as exc:
        if exc.code == "validation_error":
            message = "Choose a password of at least 8 characters."
        elif exc.code == "invitation_invalid":
            message = (
                "This invitation link was already used or has expired. "
                "Ask your admin for a new one."
            )
        else:
            message = exc.detail
        return _page(request, name=name, error=message, status=exc.status)
    await end_session(request)
    response = web.HTTPSeeOther("/")
    set_session(request, response, token)
    response.headers.update(PRIVATE)
    raise response
