"""What every page shares: rendering, who is signed in, the session cookie, the CSRF
check, the security headers and HTML error pages.

Pages are another face on the services the API uses: a page handler parses its input,
calls a service and renders a template. It never reads the database itself.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from ..api.core import (
    IGNORE_COOKIE,
    PRINCIPAL,
    REQUEST_ID,
    SESSION_COOKIE,
    authenticate,
    csrf_token,
    session_cookie,
)
from ..domain.errors import DomainError, Forbidden, Unauthorized
from ..keys import SERVICES, SETTINGS
from ..services.container import Services
from ..services.principal import Principal
from ..store.base import StoreUnavailable
from . import localtime as lt

log = logging.getLogger("server.web")

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"

# Every page response carries these; set in exactly one place (the page middleware).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    admin_only: bool = False


# The navigation of every page, in order. A new page adds its entry here.
NAV: tuple[NavItem, ...] = (
    NavItem("/", "Timesheet"),
    NavItem("/reports", "Reports"),
    NavItem("/tasks", "Tasks"),
    NavItem("/integrations", "Integrations", admin_only=True),
    NavItem("/team", "Team", admin_only=True),
)


def is_api_path(path: str) -> bool:
    return path.startswith("/api/") or path == "/health"


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


# -- who is signed in -----------------------------------------------------------------


async def current_user(request: web.Request) -> Principal | None:
    """The signed-in user of a page request (from the session cookie), or None."""
    known: Principal | None = request.get(PRINCIPAL)
    if known is not None:
        return known
    if session_cookie(request) is None:
        return None
    try:
        return await authenticate(request, services(request))
    except Unauthorized:
        return None


PageHandler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]


def form_texts(form: Mapping[str, object], names: Iterable[str]) -> dict[str, str]:
    """The named fields of a posted form as stripped text ('' when absent)."""
    return {name: str(form.get(name) or "").strip() for name in names}


async def user_zone(request: web.Request, user: Principal) -> ZoneInfo:
    """The signed-in user's time zone (UTC when unset or unknown)."""
    me = await services(request).accounts.get_user(user.account_id, user.user_id)
    return lt.zone(me.get("time_zone"))


def page(*, admin: bool = False) -> Callable[[PageHandler], Callable[[web.Request], Any]]:
    """A page for signed-in users: signed out -> the sign-in page, returning here after;
    ``admin`` pages answer others with the 403 page."""

    def wrap(handler: PageHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            user = await current_user(request)
            if user is None:
                if request.method in ("GET", "HEAD"):
                    raise web.HTTPFound(f"/?next={quote(request.path_qs, safe='')}")
                # A form posted after the session ended: to sign-in, not back to a POST.
                raise web.HTTPSeeOther("/")
            if admin and not user.is_admin:
                raise Forbidden("This page is for admins.")
            return await handler(request, user)

        wrapped.__name__ = handler.__name__
        wrapped.__doc__ = handler.__doc__
        return wrapped

    return wrap


def safe_next(value: str | None) -> str:
    """A return path after sign-in: a same-origin relative path only, else ``/``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 for c in value):
        return "/"
    return value


# -- rendering ------------------------------------------------------------------------


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    user: Principal | None = None,
    status: int = 200,
) -> web.Response:
    """Renders a page with what the layout needs: the user, the nav, the CSRF token."""
    user = user if user is not None else request.get(PRINCIPAL)
    session = session_cookie(request)
    base: dict[str, Any] = {
        "user": user,
        "nav": [
            item for item in NAV if user is not None and (user.is_admin or not item.admin_only)
        ],
        "current_path": request.path,
        # A session cookie's forms carry its token (even a stale cookie's: harmless).
        "csrf": csrf_token(session) if session else "",
        "alerts": [],
        "notice": "",
    }
    base.update(context or {})
    response = aiohttp_jinja2.render_template(template, request, base, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    titles = {
        400: "Bad request",
        401: "Please sign in",
        403: "Not allowed",
        404: "Page not found",
        405: "Not allowed",
        409: "Conflict",
        413: "Too large",
        429: "Too many requests",
        503: "Unavailable",
    }
    return render(
        request,
        "error.html",
        {"status": status, "title": titles.get(status, "Something went wrong"), "message": message},
        status=status,
    )


# -- the session cookie ---------------------------------------------------------------


def set_session(request: web.Request, response: web.StreamResponse, token: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Lax",
        path="/",
        secure=settings.effective_public_url.startswith("https://"),
        max_age=int(settings.token_ttl_days * 86400),
    )


async def end_session(request: web.Request) -> None:
    """Revokes the session this request carries, if it is a live one (signing in anew or
    accepting an invitation replaces it: the old value must not stay usable)."""
    user = await current_user(request)
    if user is not None and user.kind == "session":
        await services(request).accounts.logout(user)


def clear_session(request: web.Request, response: web.StreamResponse) -> None:
    settings = request.app[SETTINGS]
    response.del_cookie(
        SESSION_COOKIE,
        path="/",
        secure=settings.effective_public_url.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )


# -- middlewares ----------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def page_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HTML error pages and the security headers for everything outside the API."""
    if is_api_path(request.path):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        else:
            messages = {
                404: "There is no page at this address.",
                405: "This page does not accept that kind of request.",
            }
            # A signed-in visitor keeps the navigation on an error page.
            await current_user(request)
            response = error_page(request, exc.status, messages.get(exc.status, exc.reason))
    except DomainError as exc:
        response = error_page(request, exc.status, exc.detail)
        response.headers.update(exc.headers)
    except StoreUnavailable:
        log.error("database unavailable", extra={"request_id": request.get(REQUEST_ID)})
        response = error_page(request, 503, "The database is unavailable. Try again shortly.")
    except Exception:
        log.exception("unhandled error on a page (request %s)", request.get(REQUEST_ID))
        response = error_page(request, 500, "An unexpected error occurred.")
    for header, value in SECURITY_HEADERS.items():
        response.headers.setdefault(header, value)
    if request.app[SETTINGS].effective_public_url.startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every unsafe request authenticated by the session cookie — pages and API alike —
    must carry the session's CSRF token (form field or header). Bearer requests never
    depend on the cookie and are not checked."""
    if request.method in UNSAFE_METHODS:
        session = session_cookie(request)
        if session is not None:
            sent = request.headers.get(CSRF_HEADER)
            if sent is None and request.content_type in FORM_TYPES:
                form = await request.post()
                value = form.get(CSRF_FIELD)
                sent = value if isinstance(value, str) else None
            if not (sent and hmac.compare_digest(sent.encode(), csrf_token(session).encode())):
                try:
                    await authenticate(request, services(request))
                except Unauthorized:
                    # A stale cookie of an ended session: the request is simply signed out.
                    request[IGNORE_COOKIE] = True
                    request.pop(PRINCIPAL, None)
                else:
                    raise Forbidden(
                        "the request lacks a valid CSRF token; reload the page and try again",
                        code="csrf_failed",
                    )
    return await handler(request)
