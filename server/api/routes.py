"""Handlers for accounts, tasks, resolution, the timer, entries and live events."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from ..domain.errors import RateLimited, Unauthorized, ValidationFailed
from ..jsonutil import dumps_str
from ..keys import SETTINGS
from ..services.accounts import Invite, public_user
from . import models as m
from .core import (
    Api,
    Ctx,
    credential,
    decode_cursor,
    envelope,
    page_of,
    patch_changes,
    require_admin,
)

api = Api()
MAX_STREAMS_PER_USER = 20
TOKEN_RECHECK_S = 5.0


# -- auth and users -----------------------------------------------------------------


def _user(doc: dict[str, Any], invite: Invite | None = None) -> dict[str, Any]:
    out = public_user(doc)
    if invite is not None:
        out["invite_url"] = invite.url
        out["mail"] = invite.mail
    return out


@api.route(
    "POST",
    "/api/v1/auth/login",
    summary="Sign in with e-mail and password",
    tag="auth",
    body=m.LoginBody,
    response=m.LoginOut,
    auth=False,
    errors=(401, 429),
)
async def login(ctx: Ctx) -> Any:
    token, user = await ctx.services.accounts.login(ctx.body.email, ctx.body.password)
    return {"token": token, "user": _user(user)}


@api.route(
    "POST", "/api/v1/auth/logout", summary="Revoke the presented token", tag="auth", status=204
)
async def logout(ctx: Ctx) -> None:
    await ctx.services.accounts.logout(ctx.user)


@api.route("GET", "/api/v1/me", summary="The signed-in user", tag="auth", response=m.UserOut)
async def me(ctx: Ctx) -> Any:
    return _user(await ctx.services.accounts.get_user(ctx.user.account_id, ctx.user.user_id))


@api.route(
    "PATCH",
    "/api/v1/me",
    summary="Change your own name or time zone",
    tag="auth",
    body=m.MePatch,
    response=m.UserOut,
    errors=(400,),
)
async def patch_me(ctx: Ctx) -> Any:
    changes = patch_changes(ctx.body, ("name", "time_zone"))
    return _user(await ctx.services.accounts.update_me(ctx.user, changes))


@api.route(
    "GET",
    "/api/v1/users",
    summary="Users of the account",
    tag="users",
    query=m.ListQuery,
    response=m.list_of(m.UserOut),
    errors=(403,),
)
async def list_users(ctx: Ctx) -> Any:
    principal = require_admin(ctx)
    offset = decode_cursor(ctx.query.cursor)
    docs = await ctx.services.accounts.list_users(
        principal.account_id, skip=offset, limit=ctx.query.limit + 1
    )
    has_more = len(docs) > ctx.query.limit
    return envelope([_user(d) for d in docs[: ctx.query.limit]], offset, ctx.query.limit, has_more)


@api.route(
    "POST",
    "/api/v1/users",
    summary="Create a user (no password: an invitation)",
    tag="users",
    body=m.UserCreate,
    response=m.UserOut,
    status=201,
    errors=(403, 409),
)
async def create_user(ctx: Ctx) -> Any:
    b: m.UserCreate = ctx.body
    user, invite = await ctx.services.accounts.create_user(
        ctx.user, b.email, b.name, b.password, b.role
    )
    return _user(user, invite)


@api.route(
    "PATCH",
    "/api/v1/users/{id}",
    summary="Change a user's name, role or activity",
    tag="users",
    body=m.UserPatch,
    response=m.UserOut,
    errors=(403, 404, 409),
)
async def patch_user(ctx: Ctx) -> Any:
    changes = patch_changes(ctx.body)
    return _user(await ctx.services.accounts.update_user(ctx.user, ctx.match("id"), changes))


@api.route(
    "POST",
    "/api/v1/invitations/{token}/accept",
    summary="Accept an invitation",
    tag="users",
    body=m.AcceptInvitation,
    response=m.LoginOut,
    auth=False,
    errors=(404,),
)
async def accept_invitation(ctx: Ctx) -> Any:
    token, user = await ctx.services.accounts.accept_invitation(
        ctx.match("token"), ctx.body.password, ctx.body.name
    )
    return {"token": token, "user": _user(user)}


# -- tasks --------------------------------------------------------------------------


@api.route(
    "GET",
    "/api/v1/tasks",
    summary="Tasks the caller may see",
    tag="tasks",
    query=m.TaskQuery,
    response=m.list_of(m.TaskOut),
    errors=(404,),
)
async def list_tasks(ctx: Ctx) -> Any:
    q: m.TaskQuery = ctx.query
    offset = decode_cursor(q.cursor)
    items, has_more = await ctx.services.tasks.list_page(
        ctx.user,
        q=q.q,
        parent_id=q.parent_id,
        include_archived=q.include_archived,
        trackable=q.trackable,
        skip=offset,
        limit=q.limit,
    )
    return envelope(items, offset, q.limit, has_more)


@api.route(
    "GET", "/api/v1/tasks/{id}", summary="One task", tag="tasks", response=m.TaskOut, errors=(404,)
)
async def get_task(ctx: Ctx) -> Any:
    return await ctx.services.tasks.get(ctx.user, ctx.match("id"))


@api.route(
    "POST",
    "/api/v1/tasks",
    summary="Create a manual task",
    tag="tasks",
    body=m.TaskCreate,
    response=m.TaskOut,
    status=201,
    errors=(403, 404),
)
async def create_task(ctx: Ctx) -> Any:
    return await ctx.services.tasks.create(ctx.user, ctx.body.name, ctx.body.parent_id)


@api.route(
    "PATCH",
    "/api/v1/tasks/{id}",
    summary="Rename, move, archive or tag a task",
    tag="tasks",
    body=m.TaskPatch,
    response=m.TaskOut,
    errors=(403, 404, 409),
)
async def patch_task(ctx: Ctx) -> Any:
    changes = patch_changes(ctx.body)
    return await ctx.services.tasks.update(ctx.user, ctx.match("id"), changes)


@api.route(
    "DELETE",
    "/api/v1/tasks/{id}",
    summary="Delete a manual task without entries",
    tag="tasks",
    status=204,
    errors=(403, 404, 409),
)
async def delete_task(ctx: Ctx) -> None:
    await ctx.services.tasks.delete(ctx.user, ctx.match("id"))


@api.route(
    "GET",
    "/api/v1/tasks/{id}/members",
    summary="Who has which role on a task",
    tag="tasks",
    query=m.ListQuery,
    response=m.list_of(m.MemberOut),
    errors=(403, 404),
)
async def list_members(ctx: Ctx) -> Any:
    items = await ctx.services.tasks.members(ctx.user, ctx.match("id"))
    return page_of(items, ctx.query.cursor, ctx.query.limit)


@api.route(
    "PUT",
    "/api/v1/tasks/{id}/members/{user_id}",
    summary="Assign a role",
    tag="tasks",
    body=m.MemberPut,
    response=m.MemberOut,
    errors=(403, 404),
)
async def put_member(ctx: Ctx) -> Any:
    return await ctx.services.tasks.set_member(
        ctx.user, ctx.match("id"), ctx.match("user_id"), ctx.body.role
    )


@api.route(
    "DELETE",
    "/api/v1/tasks/{id}/members/{user_id}",
    summary="Unassign a user",
    tag="tasks",
    status=204,
    errors=(403, 404),
)
async def delete_member(ctx: Ctx) -> None:
    await ctx.services.tasks.remove_member(ctx.user, ctx.match("id"), ctx.match("user_id"))


@api.route(
    "POST",
    "/api/v1/resolve",
    summary="Resolve a page's item ids to tasks",
    tag="resolution",
    body=m.ResolveBody,
    response=m.ResolveOut,
)
async def resolve(ctx: Ctx) -> Any:
    results = await ctx.services.tasks.resolve(ctx.user, ctx.body.service, ctx.body.external_ids)
    return {"results": results}


@api.route(
    "GET",
    "/api/v1/match",
    summary="The task whose keyword or id the URL contains",
    tag="resolution",
    query=m.MatchQuery,
    response=m.MatchOut,
)
async def match(ctx: Ctx) -> Any:
    return {"task": await ctx.services.tasks.match(ctx.user, ctx.query.url)}


# -- timer and entries --------------------------------------------------------------


@api.route("GET", "/api/v1/timer", summary="The running timer", tag="timer", response=m.TimerOut)
async def get_timer(ctx: Ctx) -> Any:
    return {"running": await ctx.services.timer.running(ctx.user)}


@api.route(
    "POST",
    "/api/v1/timer/start",
    summary="Start a timer (stops the running one)",
    tag="timer",
    body=m.StartBody,
    response=m.StartOut,
    status=201,
    errors=(403, 404, 409),
    headers=(("Idempotency-Key", m.IDEMPOTENCY_KEY),),
)
async def start_timer(ctx: Ctx) -> Any:
    b: m.StartBody = ctx.body
    by_task = b.task_id is not None
    by_ref = b.service is not None or b.external_id is not None
    if by_task == by_ref or (by_ref and (b.service is None or b.external_id is None)):
        raise ValidationFailed(
            "give either task_id or service and external_id",
            [{"field": "task_id", "message": "either task_id or service + external_id"}],
        )
    return await ctx.services.timer.start(
        ctx.user,
        task_id=b.task_id,
        service=b.service,
        external_id=b.external_id,
        note=b.note,
        tags=b.tags,
        created_with=b.created_with,
        idempotency_key=_idempotency_key(ctx),
        at=b.at,
    )


def _idempotency_key(ctx: Ctx) -> str | None:
    key = ctx.request.headers.get("Idempotency-Key")
    if key is not None and not m.is_idempotency_key(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1-200 printable ASCII characters",
            [{"field": "Idempotency-Key", "message": "1-200 printable ASCII characters"}],
        )
    return key


@api.route(
    "POST",
    "/api/v1/timer/stop",
    summary="Stop the running timer (idempotent)",
    tag="timer",
    body=m.StopBody,
    response=m.StopOut,
    errors=(404, 409),
    headers=(("Idempotency-Key", m.IDEMPOTENCY_KEY),),
)
async def stop_timer(ctx: Ctx) -> Any:
    stopped = await ctx.services.timer.stop(
        ctx.user, ctx.body.entry_id, at=ctx.body.at, idempotency_key=_idempotency_key(ctx)
    )
    return {"stopped": stopped}


@api.route(
    "GET",
    "/api/v1/entries",
    summary="Time entries ordered by start",
    tag="entries",
    query=m.EntryQuery,
    response=m.list_of(m.EntryOut),
    errors=(403,),
)
async def list_entries(ctx: Ctx) -> Any:
    q: m.EntryQuery = ctx.query
    offset = decode_cursor(q.cursor)
    items = await ctx.services.timer.list_entries(
        ctx.user,
        start_from=q.from_,
        start_to=q.to,
        user_id=q.user_id,
        skip=offset,
        limit=q.limit + 1,
    )
    return envelope(items[: q.limit], offset, q.limit, len(items) > q.limit)


@api.route(
    "POST",
    "/api/v1/entries",
    summary="Add a manual entry",
    tag="entries",
    body=m.EntryCreate,
    response=m.EntryOut,
    status=201,
    errors=(403, 404, 409),
)
async def create_entry(ctx: Ctx) -> Any:
    b: m.EntryCreate = ctx.body
    return await ctx.services.timer.create_entry(
        ctx.user,
        task_id=b.task_id,
        start=b.start,
        end=b.end,
        note=b.note,
        tags=b.tags,
        created_with=b.created_with,
    )


@api.route(
    "PATCH",
    "/api/v1/entries/{id}",
    summary="Edit an entry",
    tag="entries",
    body=m.EntryPatch,
    response=m.EntryOut,
    errors=(403, 404, 409),
)
async def patch_entry(ctx: Ctx) -> Any:
    changes = patch_changes(ctx.body)
    return await ctx.services.timer.update_entry(ctx.user, ctx.match("id"), changes)


@api.route(
    "DELETE",
    "/api/v1/entries/{id}",
    summary="Delete an entry",
    tag="entries",
    status=204,
    errors=(404,),
)
async def delete_entry(ctx: Ctx) -> None:
    await ctx.services.timer.delete_entry(ctx.user, ctx.match("id"))


@api.route(
    "GET",
    "/api/v1/events",
    summary="Server-Sent Events: timer, entry, tasks",
    tag="timer",
    response="text/event-stream",
    errors=(429,),
)
async def events(ctx: Ctx) -> Any:
    request = ctx.request
    principal = ctx.user
    token, token_kind = credential(request) or ("", "api")
    if ctx.services.events.subscriber_count(principal.account_id, principal.user_id) >= (
        MAX_STREAMS_PER_USER
    ):
        raise RateLimited(
            f"at most {MAX_STREAMS_PER_USER} event streams per user", code="too_many_streams"
        )
    keepalive = request.app[SETTINGS].sse_keepalive_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    async with ctx.services.events.subscribe(principal.account_id, principal.user_id) as queue:
        await response.prepare(request)
        running = await ctx.services.timer.running(principal)
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        next_check = loop.time() + TOKEN_RECHECK_S
        # A client may go away at any write, the first one too: that ends the stream.
        with contextlib.suppress(ConnectionResetError):
            await response.write(_sse("timer", dumps_str({"running": running})))
            # Wake up every second to notice a closed connection promptly, so that a
            # vanished client does not keep its queue until the next keep-alive.
            while request.transport is not None and not request.transport.is_closing():
                try:
                    kind, payload = await asyncio.wait_for(queue.get(), 1.0)
                except TimeoutError:
                    if loop.time() >= next_check:
                        # A stream must end when its token is revoked or its user leaves.
                        next_check = loop.time() + TOKEN_RECHECK_S
                        try:
                            await ctx.services.accounts.authenticate(token, token_kind)
                        except Unauthorized:
                            break
                    if loop.time() - last_write >= keepalive:
                        await response.write(b": keep-alive\n\n")
                        last_write = loop.time()
                    continue
                await response.write(_sse(kind, payload))
                last_write = loop.time()
    return response


def _sse(kind: str, payload: str) -> bytes:
    return f"event: {kind}\ndata: {payload}\n\n".encode()


# -- health and the OpenAPI document ------------------------------------------------


@api.route("GET", "/health", summary="Liveness, including the database", tag="meta", auth=False)
async def health(ctx: Ctx) -> Any:
    await ctx.services.backend.ping()
    return {"status": "ok"}
