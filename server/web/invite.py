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
    request: web.Request,
    *,
    email: str | None,
    name: str = "",
    error: str = "",
    status: int = 200,
) -> web.Response:
    alerts = [error] if error else []
    if email is None and not error:
        alerts = [USED]
        status = 404
    response = render(
        request,
        "invite.html",
        {"title": "Join Tasktimer", "email": email, "name": name, "alerts": alerts},
        status=status,
    )
    response.headers.update(PRIVATE)
    return response


USED = "This invitation link was already used or has expired. Ask your admin for a new one."


@routes.get("/invite/{token}")
async def invite_page(request: web.Request) -> web.StreamResponse:
    email = await services(request).accounts.pending_invitation(request.match_info["token"])
    return _page(request, email=email)


@routes.post("/invite/{token}")
async def accept_invite(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = request.match_info["token"]
    name = str(form.get("name") or "").strip()[:200]
    password = str(form.get("password") or "")[:1000]
    try:
        session, _ = await services(request).accounts.accept_invitation(
            token, password, name or None, kind="session"
        )
    except DomainError as exc:
        if exc.code == "invitation_invalid":
            return _page(request, email=None, error=USED, status=exc.status)
        message = (
            "Choose a password of at least 8 characters."
            if exc.code == "validation_error"
            else exc.detail
        )
        email = await services(request).accounts.pending_invitation(token)
        return _page(request, email=email, name=name, error=message, status=exc.status)
    await end_session(request)
    response = web.HTTPSeeOther("/")
    set_session(request, response, session)
    response.headers.update(PRIVATE)
    raise response
