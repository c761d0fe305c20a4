"""Handlers for integrations: enable, sync, status, settings, unlink."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..domain.errors import DomainError, ValidationFailed
from ..integrations.base import SERVICES
from . import models as m
from .core import Api, Ctx, decode_cursor, envelope, page_of

api = Api()

# Credentials travel in HTTP headers (Pivotal's X-TrackerToken) or forms: a control
# character cannot be sent, so it is refused here as a 400 naming the field.
SENDABLE = r"^[^\x00-\x1f\x7f]*$"
Secret = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=SENDABLE)]
ProviderEmail = Annotated[str, StringConstraints(min_length=3, max_length=320, pattern=SENDABLE)]


class HeySpaceEnable(m.Body):
    email: ProviderEmail
    password: Secret


class PivotalEnable(m.Body):
    api_token: Secret


class Unreadable(BaseModel):
    """An item the sync could read but whose contents it could not (e.g. an Asana project
    the owner may not open): everything stored under it was kept as it was."""

    external_id: str
    name: str
    kind: str


class SyncSummary(BaseModel):
    id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    requested_at: str | None = None
    started_at: str | None
    finished_at: str | None
    counts: dict[str, int] = Field(
        description="created, updated, archived, removed, unchanged, and requests "
        "(provider requests this sync sent)"
    )
    error: str | None
    unreadable: list[Unreadable] = Field(default_factory=list)


class PollSummary(BaseModel):
    """The latest light incremental check (new and changed items only)."""

    at: str
    requests: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    error: str | None = None


class IntegrationOut(BaseModel):
    service: m.ServiceName
    status: Literal["syncing", "ok", "error", "needs_reauth", "owner_missing", "unlinked"]
    owner_user_id: str | None
    root_task_id: str | None
    last_sync: SyncSummary | None
    last_poll: PollSummary | None = None
    next_sync_at: str | None
    settings: dict[str, Any]
    error: str | None = None


class AuthorizeOut(BaseModel):
    authorize_url: str


class SyncStarted(BaseModel):
    sync_id: str


class SyncOut(SyncSummary):
    service: m.ServiceName
    progress: dict[str, Any]


class IntegrationSettings(m.Body):
    NOT_NULL = ("keywords_from_ids",)
    keywords_from_ids: bool | None = None


class IntegrationPatch(m.Body):
    settings: IntegrationSettings


def _service(ctx: Ctx) -> str:
    service = ctx.match("service")
    if service not in ("heyspace", "asana", "pivotaltracker"):
        raise ValidationFailed(
            "unknown service",
            [{"field": "service", "message": "heyspace, asana or pivotaltracker"}],
        )
    return service


@api.route(
    "GET",
    "/api/v1/integrations",
    summary="Connected tools and their status",
    tag="integrations",
    query=m.ListQuery,
    response=m.list_of(IntegrationOut),
)
async def list_integrations(ctx: Ctx) -> Any:
    items = await ctx.services.sync.list_integrations(ctx.user)
    return {"items": items, "next_cursor": None}


def _enable_route(service: str, name: str, body: type[m.Body]) -> None:
    async def enable(ctx: Ctx) -> Any:
        return await ctx.services.sync.enable(
            ctx.user, service, ctx.body.model_dump(), reenable=False
        )

    enable.__name__ = f"enable_{service}"
    api.route(
        "POST",
        f"/api/v1/integrations/{service}",
        summary=f"Connect {name} (starts the first sync)",
        tag="integrations",
        body=body,
        response=IntegrationOut,
        status=201,
        errors=(403, 409),
    )(enable)


_enable_route("heyspace", "HeySpace", HeySpaceEnable)
_enable_route("pivotaltracker", "Pivotal Tracker", PivotalEnable)


def _reenable_route(service: str, name: str, body: type[m.Body] | None) -> None:
    # One route per tool (the path API.md writes as {service}/reenable), so that each
    # declares the credentials its tool needs.
    async def reenable(ctx: Ctx) -> Any:
        if service == "asana":
            return await ctx.services.sync.asana.start(ctx.user, reenable=True)
        return await ctx.services.sync.enable(
            ctx.user, service, ctx.body.model_dump(), reenable=True
        )

    reenable.__name__ = f"reenable_{service}"
    api.route(
        "POST",
        f"/api/v1/integrations/{service}/reenable",
        summary=f"New credentials for the existing {name} integration (same task ids)"
        + (": returns the OAuth authorize URL" if body is None else ""),
        tag="integrations",
        body=body,
        response=AuthorizeOut if body is None else IntegrationOut,
        errors=(403, 404, 409),
    )(reenable)


_reenable_route("heyspace", "HeySpace", HeySpaceEnable)
_reenable_route("pivotaltracker", "Pivotal Tracker", PivotalEnable)
_reenable_route("asana", "Asana", None)


ServiceHandler = Callable[[Ctx, str], Awaitable[Any]]


def _per_tool(
    method: str,
    summary: str,
    *,
    body: type[m.Body] | None = None,
    response: Any = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
) -> Callable[[ServiceHandler], ServiceHandler]:
    """``handler(ctx, service)`` on ``/api/v1/integrations/<tool>`` for each tool. Concrete
    paths, because POST on these same paths connects a tool: a ``{service}`` template
    beside them would make the document claim POST is not supported there."""

    def register(handler: ServiceHandler) -> ServiceHandler:
        for service in SERVICES:

            async def bound(ctx: Ctx, service: str = service) -> Any:
                return await handler(ctx, service)

            bound.__name__ = f"{handler.__name__}_{service}"
            api.route(
                method,
                f"/api/v1/integrations/{service}",
                summary=summary,
                tag="integrations",
                body=body,
                response=response,
                status=status,
                errors=errors,
            )(bound)
        return handler

    return register


@_per_tool(
    "PATCH",
    "Change integration settings",
    body=IntegrationPatch,
    response=IntegrationOut,
    errors=(403, 404),
)
async def patch_integration(ctx: Ctx, service: str) -> Any:
    settings = ctx.body.settings.model_dump(exclude_unset=True)
    return await ctx.services.sync.update_settings(ctx.user, service, settings)


@_per_tool(
    "DELETE",
    "Unlink: forget credentials, archive the tree, keep entries",
    status=204,
    errors=(403, 404),
)
async def unlink(ctx: Ctx, service: str) -> None:
    await ctx.services.sync.unlink(ctx.user, service)


@api.route(
    "POST",
    "/api/v1/integrations/{service}/sync",
    summary="Force synchronization (a sync that starts no earlier than this request)",
    tag="integrations",
    response=SyncStarted,
    status=202,
    errors=(404, 409),
)
async def force_sync(ctx: Ctx) -> Any:
    return {"sync_id": await ctx.services.sync.force_sync(ctx.user, _service(ctx))}


@api.route(
    "GET",
    "/api/v1/integrations/{service}/syncs",
    summary="Sync history, newest first",
    tag="integrations",
    query=m.ListQuery,
    response=m.list_of(SyncOut),
    errors=(404,),
)
async def list_syncs(ctx: Ctx) -> Any:
    offset = decode_cursor(ctx.query.cursor)
    items = await ctx.services.sync.list_syncs(
        ctx.user, _service(ctx), skip=offset, limit=ctx.query.limit + 1
    )
    return envelope(items[: ctx.query.limit], offset, ctx.query.limit, len(items) > ctx.query.limit)


@api.route(
    "GET",
    "/api/v1/integrations/{service}/syncs/{sync_id}",
    summary="State, progress and counts of one sync",
    tag="integrations",
    response=SyncOut,
    errors=(404,),
)
async def get_sync(ctx: Ctx) -> Any:
    return await ctx.services.sync.get_sync(ctx.user, _service(ctx), ctx.match("sync_id"))


# -- Asana ----------------------------------------------------------------------------


# OAuth parameters are printable ASCII (RFC 6749, appendix A); the bounds keep the encoded
# request line within the HTTP parser's limit (8190 bytes).
OAUTH_CHARS = r"^[\x20-\x7e]*$"


OAuthCode = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=OAUTH_CHARS)]
OAuthState = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=OAUTH_CHARS)]
OAuthError = Annotated[str, StringConstraints(max_length=200, pattern=OAUTH_CHARS)]
OAuthText = Annotated[str, StringConstraints(max_length=500, pattern=OAUTH_CHARS)]


class CallbackQuery(m.Query):
    # A browser lands here from Asana: parameters we do not know are ignored, never a
    # JSON error page.
    model_config = ConfigDict(extra="ignore")

    code: OAuthCode | None = None
    state: OAuthState | None = None
    # RFC 6749 4.1.2.1: what the authorization server sends back when it refuses.
    error: OAuthError | None = None
    error_description: OAuthText | None = None
    error_uri: OAuthText | None = None


class WorkspaceOut(BaseModel):
    id: str
    name: str
    selected: bool


class WorkspaceSelection(m.Body):
    selected: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]]


class CoworkerOut(BaseModel):
    email: str
    name: str


class InvitationsBody(m.Body):
    emails: list[m.Email] = Field(min_length=1, max_length=200)


class InvitationOut(BaseModel):
    email: str
    status: Literal["invited", "already_a_user"]
    user_id: str | None
    invite_url: str | None
    mail: m.MailOutcome | None = Field(
        default=None, description=m.MAIL_DESCRIPTION + " Null for `already_a_user`."
    )


@api.route(
    "POST",
    "/api/v1/integrations/asana",
    summary="Start connecting Asana: returns the OAuth authorize URL (PKCE)",
    tag="asana",
    response=AuthorizeOut,
    errors=(403, 409),
)
async def asana_start(ctx: Ctx) -> Any:
    return await ctx.services.sync.asana.start(ctx.user, reenable=False)


def _back_to_page(**notice: str) -> web.Response:
    """Back to the integrations page (always this relative path: never an open redirect),
    with what happened in the query for the page to put into words."""
    return web.Response(
        status=303,
        headers={
            "Location": f"/integrations?{urlencode(notice)}",
            "Cache-Control": "no-store",
            # The callback URL carries the one-time code and state.
            "Referrer-Policy": "no-referrer",
        },
    )


@api.route(
    "GET",
    "/api/v1/integrations/asana/callback",
    # 303 to /integrations?connected=asana, or ?asana_error=<code>&asana_error_description=
    # when Asana refused (access_denied, forbidden_scopes) or the state was unusable.
    summary="OAuth redirect target: completes the Asana connection, back to /integrations",
    tag="asana",
    query=CallbackQuery,
    auth=False,
    status=303,
)
async def asana_callback(ctx: Ctx) -> Any:
    q: CallbackQuery = ctx.query
    if q.error or not q.code or not q.state:
        return _back_to_page(
            asana_error=q.error or "invalid_request",
            asana_error_description=(q.error_description or "")[:300],
        )
    try:
        await ctx.services.sync.asana.callback(q.code, q.state)
    except DomainError as exc:
        return _back_to_page(asana_error=exc.code, asana_error_description=exc.detail[:300])
    return _back_to_page(connected="asana")


@api.route(
    "GET",
    "/api/v1/integrations/asana/workspaces",
    summary="Asana workspaces and whether each is imported",
    tag="asana",
    query=m.ListQuery,
    response=m.list_of(WorkspaceOut),
    errors=(403, 404, 409),
)
async def asana_workspaces(ctx: Ctx) -> Any:
    items = await ctx.services.sync.asana.workspaces(ctx.user)
    return page_of(items, ctx.query.cursor, ctx.query.limit)


@api.route(
    "PUT",
    "/api/v1/integrations/asana/workspaces",
    summary="Choose the Asana workspaces to import (starts a sync)",
    tag="asana",
    body=WorkspaceSelection,
    response=IntegrationOut,
    errors=(403, 404, 409),
)
async def asana_select(ctx: Ctx) -> Any:
    return await ctx.services.sync.asana.select_workspaces(ctx.user, ctx.body.selected)


@api.route(
    "GET",
    "/api/v1/integrations/asana/coworkers",
    summary="Asana users of the selected workspaces who are not users yet",
    tag="asana",
    query=m.ListQuery,
    response=m.list_of(CoworkerOut),
    errors=(403, 404, 409),
)
async def asana_coworkers(ctx: Ctx) -> Any:
    items = await ctx.services.sync.asana.coworkers(ctx.user)
    return page_of(items, ctx.query.cursor, ctx.query.limit)


@api.route(
    "POST",
    "/api/v1/integrations/asana/invitations",
    summary="Invite Asana co-workers (one-time links)",
    tag="asana",
    body=InvitationsBody,
    response=m.list_of(InvitationOut),
    status=201,
    errors=(403, 404, 409),
)
async def asana_invite(ctx: Ctx) -> Any:
    items = await ctx.services.sync.asana.invite(ctx.user, [str(e) for e in ctx.body.emails])
    return {"items": items, "next_cursor": None}
