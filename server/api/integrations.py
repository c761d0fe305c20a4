"""Handlers for integrations: enable, sync, status, settings, unlink."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..domain.errors import DomainError, ValidationFailed
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


class Reenable(m.Body):
    email: ProviderEmail | None = None
    password: Secret | None = None
    api_token: Secret | None = None


class SyncSummary(BaseModel):
    id: str
    state: Literal["queued", "running", "succeeded", "failed"]
    started_at: str | None
    finished_at: str | None
    counts: dict[str, int]
    error: str | None


class IntegrationOut(BaseModel):
    service: m.ServiceName
    status: Literal["syncing", "ok", "error", "needs_reauth", "owner_missing", "unlinked"]
    owner_user_id: str | None
    root_task_id: str | None
    last_sync: SyncSummary | None
    next_sync_at: str | None
    settings: dict[str, Any]
    error: str | None = None


class SyncStarted(BaseModel):
    sync_id: str


class SyncOut(SyncSummary):
    service: m.ServiceName
    progress: dict[str, Any]


class IntegrationSettings(m.Body):
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


@api.route(
    "POST",
    "/api/v1/integrations/{service}/reenable",
    summary="New credentials for an existing integration (same task ids)",
    tag="integrations",
    body=Reenable,
    response=IntegrationOut,
    errors=(403, 404),
)
async def reenable(ctx: Ctx) -> Any:
    service = _service(ctx)
    body: Reenable = ctx.body
    if service == "heyspace" and not (body.email and body.password):
        raise ValidationFailed(
            "email and password are required",
            [
                {"field": "email", "message": "required"},
                {"field": "password", "message": "required"},
            ],
        )
    if service == "pivotaltracker" and not body.api_token:
        raise ValidationFailed(
            "api_token is required", [{"field": "api_token", "message": "required"}]
        )
    if service == "asana":
        return await ctx.services.sync.asana.start(ctx.user, reenable=True)
    return await ctx.services.sync.enable(
        ctx.user, service, body.model_dump(exclude_none=True), reenable=True
    )


@api.route(
    "PATCH",
    "/api/v1/integrations/{service}",
    summary="Change integration settings",
    tag="integrations",
    body=IntegrationPatch,
    response=IntegrationOut,
    errors=(403, 404),
)
async def patch_integration(ctx: Ctx) -> Any:
    settings = ctx.body.settings.model_dump(exclude_none=True)
    return await ctx.services.sync.update_settings(ctx.user, _service(ctx), settings)


@api.route(
    "DELETE",
    "/api/v1/integrations/{service}",
    summary="Unlink: forget credentials, archive the tree, keep entries",
    tag="integrations",
    status=204,
    errors=(403, 404),
)
async def unlink(ctx: Ctx) -> None:
    await ctx.services.sync.unlink(ctx.user, _service(ctx))


@api.route(
    "POST",
    "/api/v1/integrations/{service}/sync",
    summary="Force synchronization (joins a running one)",
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


class AuthorizeOut(BaseModel):
    authorize_url: str


OAuthText = Annotated[str, StringConstraints(max_length=1000)]


class CallbackQuery(m.Query):
    # A browser lands here from Asana: parameters we do not know are ignored, never a
    # JSON error page.
    model_config = ConfigDict(extra="ignore")

    code: Annotated[str, StringConstraints(min_length=1, max_length=2000)] | None = None
    state: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    # RFC 6749 4.1.2.1: what the authorization server sends back when it refuses.
    error: Annotated[str, StringConstraints(max_length=200)] | None = None
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
    errors=(403,),
)
async def asana_invite(ctx: Ctx) -> Any:
    items = await ctx.services.sync.asana.invite(ctx.user, [str(e) for e in ctx.body.emails])
    return {"items": items, "next_cursor": None}
