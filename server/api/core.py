"""Route registry, request parsing, problem+json errors and the OpenAPI document.

Handlers declare their body, query and response models once; the same pydantic models
validate requests and generate the OpenAPI schemas, so the two never drift apart.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import BaseModel, ValidationError

from ..domain.errors import DomainError, Unauthorized, ValidationFailed
from ..jsonutil import JSONDecodeError, dumps, dumps_str, loads
from ..keys import SERVICES, SETTINGS
from ..services.container import Services
from ..services.ids import new_secret
from ..services.principal import Principal
from ..store.base import StoreUnavailable

log = logging.getLogger("server.api")
access_log = logging.getLogger("server.access")

M = TypeVar("M", bound=BaseModel)
PROBLEM = "application/problem+json"
# Cursors are offsets of up to 8 decimal digits (the pattern in models.Cursor).
MAX_OFFSET = 99_999_999
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal", Principal)
# Set by the CSRF check when the request's session cookie is not a live session: the
# request then counts as signed out instead of being refused.
IGNORE_COOKIE: web.RequestKey[bool] = web.RequestKey("ignore_cookie", bool)
SESSION_COOKIE = "tt_session"


@dataclass
class Ctx:
    request: web.Request
    services: Services
    principal: Principal | None
    body: Any = None
    query: Any = None

    @property
    def user(self) -> Principal:
        if self.principal is None:
            raise Unauthorized("authentication required")
        return self.principal

    def match(self, name: str) -> str:
        return self.request.match_info[name]


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    auth: bool = True
    errors: tuple[int, ...] = ()
    # Optional request headers the operation reads: (name, JSON schema of the value).
    headers: tuple[tuple[str, dict[str, Any]], ...] = ()

    def statuses(self) -> set[int]:
        """Every status this route can answer with: its own, its declared errors, and
        those the request parsing and the error middleware add. The OpenAPI document
        declares exactly these (and the authorization matrix test holds routes to them)."""
        codes = {self.status, *self.errors, 403, 503}  # 403: a foreign Origin; 503: no database
        parsed = self.body is not None or self.query is not None or bool(self.headers)
        if parsed or "{service}" in self.path:  # an unknown tool is a 400 too
            codes.add(400)
        if self.body is not None:
            codes.add(413)
        if self.auth:
            codes.add(401)
        return codes


@dataclass
class Api:
    routes: list[Route] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        auth: bool = True,
        errors: tuple[int, ...] = (),
        headers: tuple[tuple[str, dict[str, Any]], ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method,
                    path,
                    handler,
                    summary,
                    tag,
                    body,
                    query,
                    response,
                    status,
                    auth,
                    errors,
                    headers,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> list[web.AbstractRoute]:
        return [
            app.router.add_route(r.method, r.path, _wrap(r), name=r.handler.__name__)
            for r in self.routes
        ]


def _errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        out.append(
            {
                "field": f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body",
                "message": err["msg"],
            }
        )
    return out


_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _usable_token(token: str) -> bool:
    return _TOKEN.fullmatch(token) is not None


def session_cookie(request: web.Request) -> str | None:
    """The web app's session token from its cookie (only when no bearer token is sent:
    a bearer token always wins, so such requests never depend on the cookie)."""
    if request.get(IGNORE_COOKIE) or "Authorization" in request.headers:
        return None
    value = request.cookies.get(SESSION_COOKIE)
    return value if value and _usable_token(value) else None


def csrf_token(session: str) -> str:
    """The CSRF token of a session: derived from the session token, which only the
    server and the HttpOnly cookie know, so another site can neither read nor forge it."""
    return hashlib.sha256(b"tasktimer-csrf\0" + session.encode()).hexdigest()


def credential(request: web.Request) -> tuple[str, str] | None:
    """(token, kind) the request authenticates with: a bearer token, else the session."""
    token = bearer(request)
    if token is not None:
        return token, "api"
    session = session_cookie(request)
    return (session, "session") if session is not None else None


async def authenticate(request: web.Request, services: Services) -> Principal:
    presented = credential(request)
    if presented is None:
        raise Unauthorized("missing bearer token", code="missing_token")
    token, kind = presented
    if not _usable_token(token):
        raise Unauthorized("invalid or expired token", code="invalid_token")
    principal = await services.accounts.authenticate(token, kind)
    request[PRINCIPAL] = principal
    return principal


def _nulls(body: BaseModel, prefix: str = "") -> list[str]:
    """The ``NOT_NULL`` fields sent as ``null``, in nested bodies too."""
    found = [
        f"{prefix}{name}"
        for name in getattr(body, "NOT_NULL", ())
        if name in body.model_fields_set and getattr(body, name) is None
    ]
    for name in body.model_fields_set:
        value = getattr(body, name)
        if isinstance(value, BaseModel):
            found.extend(_nulls(value, f"{prefix}{name}."))
    return found


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        principal = await authenticate(request, services) if route.auth else None
        ctx = Ctx(request, services, principal)
        if route.query is not None:
            try:
                ctx.query = route.query.model_validate(dict(request.query))
            except ValidationError as exc:
                raise ValidationFailed("invalid query parameters", _errors(exc)) from None
        if route.body is not None:
            try:
                raw = await request.read()
            except RequestPayloadError:
                raise ValidationFailed(
                    "the body could not be read (check Content-Encoding)",
                    [{"field": "body", "message": "undecodable body"}],
                ) from None
            try:
                data = loads(raw) if raw else None
            except (JSONDecodeError, ValueError, UnicodeDecodeError):
                raise ValidationFailed(
                    "the body is not valid JSON", [{"field": "body", "message": "invalid JSON"}]
                ) from None
            if not raw.strip():
                data = {}  # no body: every field left out
            elif data is None:
                raise ValidationFailed(
                    "the body must be a JSON object",
                    [{"field": "body", "message": "null is not an object"}],
                )
            try:
                ctx.body = route.body.model_validate(data)
            except ValidationError as exc:
                raise ValidationFailed("invalid request body", _errors(exc)) from None
            nulls = _nulls(ctx.body)
            if nulls:
                raise ValidationFailed(
                    "these fields cannot be null",
                    [{"field": name, "message": "may be left out, not null"} for name in nulls],
                )
        result = await route.handler(ctx)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None and route.status == 204:
            return web.Response(status=204)
        return web.Response(
            body=dumps(result), status=route.status, content_type="application/json"
        )

    return handler


# -- list envelope ------------------------------------------------------------------


def encode_cursor(offset: int) -> str:
    return str(offset)


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor stands for; the query models check its form already, this
    guards callers that pass a raw string."""
    if not cursor:
        return 0
    if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 8):
        raise ValidationFailed("invalid cursor", [{"field": "cursor", "message": "invalid cursor"}])
    return int(cursor)


def envelope(items: list[Any], offset: int, limit: int, has_more: bool) -> dict[str, Any]:
    return {"items": items, "next_cursor": encode_cursor(offset + limit) if has_more else None}


def page_of(items: list[Any], cursor: str | None, limit: int) -> dict[str, Any]:
    """Envelope for a list computed in memory."""
    offset = decode_cursor(cursor)
    chunk = items[offset : offset + limit]
    return envelope(chunk, offset, limit, offset + limit < len(items))


# -- middlewares --------------------------------------------------------------------


def problem(
    status: int, title: str, detail: str, code: str, request_id: str = "", **extra: Any
) -> web.Response:
    body = {
        "type": f"https://tasktimer.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    if request_id:
        body["request_id"] = request_id
    return web.Response(status=status, text=dumps_str(body), content_type=PROBLEM)


_HTTP_CODES = {
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    400: ("bad_request", "Bad request"),
}


def same_host(origin: str, request: web.Request) -> bool:
    """A request from a page of this very server (opened at another address than
    TT_PUBLIC_URL, e.g. localhost instead of 127.0.0.1): browsers set Origin, so a page
    of another site cannot pretend to be one of ours."""
    netloc = origin.partition("://")[2]
    return bool(netloc) and netloc.lower() == request.host.lower()


def origin_allowed(origin: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern == "*" or origin == pattern:
            return True
        if pattern.endswith("*") and origin.startswith(pattern[:-1]):
            return True
    return False


_REQUEST_PREFIX = new_secret()[:8]
_request_numbers = itertools.count(1)


def _next_request_id() -> str:
    # Unique per process start without a random draw per request (a syscall each).
    return f"{_REQUEST_PREFIX}-{next(_request_numbers):x}"


@web.middleware
async def request_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    offered = request.headers.get("X-Request-Id", "")
    # A caller's id is kept for tracing only when it cannot forge log lines.
    request_id = offered if _REQUEST_ID.fullmatch(offered) else _next_request_id()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        origin = request.headers.get("Origin")
        settings = request.app[SETTINGS]
        if (
            origin
            and not origin_allowed(
                origin, [*settings.cors_origin_list, settings.effective_public_url]
            )
            and not same_host(origin, request)
        ):
            response: web.StreamResponse = problem(
                403,
                "Forbidden",
                "this origin may not call the API",
                "origin_not_allowed",
                request_id,
            )
        else:
            response = await handler(request)
    except DomainError as exc:
        response = problem(exc.status, exc.title, exc.detail, exc.code, request_id, **exc.extra)
        response.headers.update(exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, title = _HTTP_CODES.get(exc.status, ("http_error", exc.reason))
        response = problem(exc.status, title, exc.reason, code, request_id)
        if exc.status == 405:
            # RFC 9110: a 405 names the methods the path supports.
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except StoreUnavailable:
        log.error("database unavailable", extra={"request_id": request_id})
        response = problem(
            503,
            "Service unavailable",
            "the database is unavailable",
            "database_unavailable",
            request_id,
        )
    except Exception:
        log.exception("unhandled error (request %s)", request_id)
        response = problem(
            500, "Internal error", "an unexpected error occurred", "internal_error", request_id
        )
    status = response.status
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
    principal = request.get(PRINCIPAL)
    # Only the path: query strings can carry OAuth codes and states; path segments that are
    # secrets (invitation tokens) are masked.
    path = request.path
    secret = request.match_info.get("token") if request.match_info else None
    if secret:
        path = path.replace(secret, "***")
    access_log.info(
        "%s %s %s %.1fms",
        request.method,
        path,
        status,
        (time.perf_counter() - started) * 1000,
        extra={
            "request_id": request_id,
            "user_id": principal.user_id if principal else None,
        },
    )
    return response


def patch_changes(body: BaseModel, not_null: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields a PATCH body sets. The body's ``NOT_NULL`` fields were refused as
    ``null`` already when it was parsed; ``not_null`` may name more."""
    changes = body.model_dump(exclude_unset=True)
    nulls = [key for key in not_null if key in changes and changes[key] is None]
    if nulls:
        raise ValidationFailed(
            "these fields cannot be null", [{"field": key, "message": "null"} for key in nulls]
        )
    return changes


def require_admin(ctx: Ctx) -> Principal:
    from ..domain.errors import Forbidden

    principal = ctx.user
    if not principal.is_admin:
        raise Forbidden("only admins may do this")
    return principal
