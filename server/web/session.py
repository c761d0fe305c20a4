"""Signing in and out through the pages: the same accounts-service login as the API,
ending in a session cookie instead of a bearer token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..domain.errors import DomainError
from .core import clear_session, end_session, render, safe_next, services, set_session

routes = web.RouteTableDef()
MAX_EMAIL = 320
MAX_PASSWORD = 1000


def sign_in_page(
    request: web.Request,
    *,
    next_path: str = "/",
    email: str = "",
    error: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    context: dict[str, Any] = {
        "title": "Sign in",
        "next_path": next_path,
        "email": email,
        "alerts": [error] if error else [],
    }
    response = render(request, "sign_in.html", context, status=status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@routes.post("/sign-in")
async def sign_in(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email") or "").strip()[:MAX_EMAIL]
    password = str(form.get("password") or "")[:MAX_PASSWORD]
    next_path = safe_next(str(form.get("next") or ""))
    if not email or not password:
        return sign_in_page(
            request,
            next_path=next_path,
            email=email,
            error="Enter your e-mail and password.",
            status=400,
        )
    try:
        token, _ = await services(request).accounts.login(email, password, kind="session")
    except DomainError as exc:
        headers = dict(exc.headers)  # Retry-After of the login limit
        retry = headers.get("Retry-After", "")
        if exc.code == "invalid_credentials":
            message = "Wrong e-mail or password."
        elif exc.code == "rate_limited" and retry.isdigit():
            # The same limit as the API's login (the accounts service counts the failures).
            minutes = max(1, -(-int(retry) // 60))
            message = (
                "Too many failed sign-ins for this e-mail address. "
                f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
            )
        else:
            message = f"Signing in failed: {exc.detail}"
        return sign_in_page(
            request,
            next_path=next_path,
            email=email,
            error=message,
            status=exc.status,
            headers=headers,
        )
    await end_session(request)
    response = web.HTTPSeeOther(next_path)
    set_session(request, response, token)
    raise response


@routes.post("/sign-out")
async def sign_out(request: web.Request) -> web.StreamResponse:
    await end_session(request)
    response = web.HTTPSeeOther("/")
    clear_session(request, response)
    raise response
