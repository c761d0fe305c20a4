"""The integrations page (admins): connect each tool, its status in words, sync history,
Asana workspaces and co-workers, the keywords option, Force synchronization, unlink and
re-enable. Every action is a plain form posting to this page's routes, which call the
same integration services as the API; the page's script only makes it quicker."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from ..domain import clock
from ..domain.errors import DomainError
from ..services.principal import Principal
from . import localtime as lt
from .core import form_texts, page, render, services, user_zone

routes = web.RouteTableDef()
HISTORY = 10
ASANA_READ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Tool:
    service: str
    label: str
    # The credentials form: (input name, label, input type, autocomplete).
    fields: tuple[tuple[str, str, str, str], ...]
    help: str


TOOLS = (
    Tool(
        "heyspace",
        "HeySpace",
        (
            ("email", "HeySpace e-mail", "email", "username"),
            ("password", "HeySpace password", "password", "current-password"),
        ),
        "Sign in with the HeySpace account whose spaces should be imported.",
    ),
    Tool(
        "asana",
        "Asana",
        (),
        "You will be sent to Asana to allow Tasktimer to read your workspaces, then back here.",
    ),
    Tool(
        "pivotaltracker",
        "Pivotal Tracker",
        (("api_token", "Pivotal Tracker API token", "password", "off"),),
        "Your API token is at the bottom of your Pivotal Tracker profile page.",
    ),
)
BY_SERVICE = {tool.service: tool for tool in TOOLS}
SYNCABLE = ("ok", "error", "syncing")
COUNT_WORDS = ("created", "updated", "archived", "removed", "unchanged")

# Notices after a successful action: fixed texts chosen by key (never free text from
# the query string).
NOTICES = {
    "enabled": "{label} is connected. The first synchronization has started.",
    "reenabled": "{label} is enabled again with the new login. A synchronization has started.",
    "connected": "{label} is connected. The first synchronization has started.",
    "unlinked": "{label} is unlinked. Its tasks are archived; time entries are kept.",
    "workspaces": "Workspace choice saved. A synchronization has started.",
    "settings": "{label} settings saved.",
    "sync": "Synchronization of {label} started.",
}


def _tool(request: web.Request) -> Tool:
    tool = BY_SERVICE.get(request.match_info["service"])
    if tool is None:
        raise web.HTTPNotFound()
    return tool


_HTTP_STATUS = re.compile(r"(?:\bHTTP |\()(\d{3})\b")


def error_in_words(label: str, error: str | None) -> str:
    """A provider error as a sentence; the technical text is shown beside it."""
    text = error or ""
    lowered = text.lower()
    match = _HTTP_STATUS.search(text)
    code = int(match.group(1)) if match else None
    if code == 429 or "rate limited" in lowered:
        return f"{label} limited how many requests we may send; the next synchronization waits"
    if code is not None and code >= 500:
        return f"{label} had a server error (HTTP {code})"
    if code == 401:
        return f"{label} refused the saved login"
    if code == 403:
        return (
            f"{label} refused access to some of the data (HTTP 403): check what the connected"
            " account may see"
        )
    if code == 404:
        return f"{label} no longer has something it listed before (HTTP 404)"
    if "timeout" in lowered or "timed out" in lowered:
        return f"{label} did not answer in time"
    if "connect" in lowered or "dns" in lowered:
        return f"{label} could not be reached"
    if "json" in lowered or "malformed" in lowered or "unreadable" in lowered:
        return f"{label} sent an answer that could not be read"
    if lowered == "internal error during the sync":
        return "Tasktimer hit an internal error (see the server log)"
    return text or "unknown error"


def status_text(tool: Tool, status: str, error: str | None, next_sync: str = "") -> str:
    """The status word of the API as a sentence a person understands."""
    label = tool.label
    next_sync = f"; next at {next_sync}" if next_sync else ""
    if status == "not_connected":
        return f"{label} is not connected."
    if status == "ok":
        return f"Connected. {label} is synchronized automatically{next_sync}."
    if status == "syncing":
        return f"Synchronizing with {label} now…"
    if status == "needs_reauth":
        return f"{label} refused the saved login — re-enable."
    if status == "owner_missing":
        return (
            f"The admin who connected {label} is no longer active, so nothing is synchronized"
            " — re-enable it with your own login."
        )
    if status == "unlinked":
        return (
            f"{label} is unlinked: its tasks are archived and the time on them is kept."
            " Re-enable to bring them back."
        )
    if status == "error":
        return (
            f"The last synchronization failed: {error_in_words(label, error)}."
            " It is tried again at the next synchronization."
        )
    return status


def asana_refusal(code: str, description: str, scopes: str) -> str:
    """What came back from Asana's authorization page (or our callback), in words."""
    said = f" Asana said: “{description}”." if description else ""
    if code == "forbidden_scopes":
        if scopes:
            hint = (
                "the Asana app is registered with full permissions — leave TT_ASANA_SCOPES"
                f" empty (it is “{scopes}”)"
            )
        else:
            hint = (
                "the Asana app is registered with granular scopes — set TT_ASANA_SCOPES"
                " to the scopes it was registered with"
            )
        return f"Asana refused the requested permissions (forbidden_scopes): {hint}.{said}"
    if code == "invalid_scope":
        return (
            "Asana refused the requested permissions (invalid_scope): check TT_ASANA_SCOPES"
            f" against the scopes of the Asana app.{said}"
        )
    if code == "access_denied":
        return f"Asana access was not granted (access_denied): press Enable to try again.{said}"
    if code == "oauth_state_invalid":
        return (
            "This Asana sign-in link is unknown, already used or expired — press Enable"
            " to start again."
        )
    if code == "asana_not_configured":
        return (
            "Asana is not configured on this server: set TT_ASANA_CLIENT_ID and"
            " TT_ASANA_CLIENT_SECRET."
        )
    return f"Asana did not connect ({code}).{said}"


def _when(moment: str | None, tz: ZoneInfo, short: bool = False) -> str:
    if not moment:
        return ""
    local = lt.local(moment, tz)
    if short:
        same_day = local.date() == datetime.now(tz).date()
        return local.strftime("%H:%M:%S" if same_day else "%d %b, %H:%M")
    return local.strftime("%a %d %b %Y, %H:%M")


def _duration(sync: dict[str, Any]) -> str:
    start, end = sync.get("started_at"), sync.get("finished_at")
    if not (start and end):
        return ""
    seconds = (clock.parse(end) - clock.parse(start)).total_seconds()
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _counts(sync: dict[str, Any]) -> list[tuple[str, int]]:
    counts = sync.get("counts") or {}
    return [(word, int(counts.get(word) or 0)) for word in COUNT_WORDS]


def _sync_view(
    sync: dict[str, Any], tz: ZoneInfo, label: str, short: bool = False
) -> dict[str, Any]:
    return {
        "id": sync["id"],
        "state": sync["state"],
        "started_at": sync.get("started_at") or "",
        "started": _when(sync.get("started_at"), tz, short),
        "duration": _duration(sync),
        "counts": _counts(sync),
        "requests": (sync.get("counts") or {}).get("requests"),
        "error": sync.get("error") or "",
        "error_words": error_in_words(label, sync.get("error")) if sync.get("error") else "",
        # Items the provider listed but would not let us read: kept as they were.
        "unreadable": [
            str(item.get("name") or item.get("external_id") or "")
            for item in sync.get("unreadable") or []
        ],
    }


def _poll_view(poll: dict[str, Any] | None, tz: ZoneInfo) -> dict[str, Any] | None:
    """The light check for new and changed items between full syncs, when there is one."""
    if not poll or not poll.get("at"):
        return None
    return {
        "at": poll["at"],
        "when": _when(poll["at"], tz, short=True),
        "created": int(poll.get("created") or 0),
        "updated": int(poll.get("updated") or 0),
        "error": poll.get("error") or "",
    }


async def _asana_details(request: web.Request, user: Principal) -> dict[str, Any]:
    """Workspaces and co-workers, read live from Asana (the provider's answer, or why not)."""
    flow = services(request).sync.asana
    problems: list[str] = []

    async def read(call: Awaitable[list[Any]]) -> list[Any] | None:
        try:
            return await call
        except DomainError as exc:
            problems.append(exc.detail)
            return None

    try:
        # The page waits for Asana only so long: a slow provider must not hang it.
        async with asyncio.timeout(ASANA_READ_TIMEOUT_S):
            workspaces, coworkers = await asyncio.gather(
                read(flow.workspaces(user)), read(flow.coworkers(user))
            )
    except TimeoutError:
        return {
            "workspaces": None,
            "coworkers": None,
            "problem": "Asana did not answer in time; reload the page to try again",
        }
    return {
        "workspaces": workspaces,
        "coworkers": coworkers,
        "problem": "; ".join(dict.fromkeys(problems)),
    }


async def integrations_view(
    request: web.Request,
    user: Principal,
    *,
    alerts: list[str] | None = None,
    notice: str = "",
    open_form: str = "",
    confirm: str = "",
    invited: list[dict[str, Any]] | None = None,
    kept: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    svc = services(request)
    tz = await user_zone(request, user)
    existing = {i["service"]: i for i in await svc.sync.list_integrations(user)}
    alerts = list(alerts or [])
    query = request.query
    if not notice and query.get("done") in NOTICES and query.get("service") in BY_SERVICE:
        notice = NOTICES[query["done"]].format(label=BY_SERVICE[query["service"]].label)
    if not notice and query.get("connected") == "asana":
        notice = NOTICES["connected"].format(label="Asana")
    if query.get("asana_error"):
        alerts.append(
            asana_refusal(
                query["asana_error"][:100],
                query.get("asana_error_description", "")[:300],
                str(getattr(svc.settings, "asana_scopes", "") or ""),
            )
        )
    open_form = open_form or query.get("open", "")
    if "unlink" in query and not confirm:
        confirm = query.get("open", "")
    cards = []
    for tool in TOOLS:
        integration = existing.get(tool.service)
        state = integration["status"] if integration else "not_connected"
        card: dict[str, Any] = {
            "tool": tool,
            "status": state,
            "status_text": status_text(
                tool,
                state,
                integration.get("error") if integration else None,
                _when(integration.get("next_sync_at"), tz, short=True) if integration else "",
            ),
            "exists": integration is not None,
            "connected": state not in ("not_connected", "unlinked"),
            "syncable": state in SYNCABLE,
            "settings": (integration or {}).get("settings") or {},
            "last_sync": None,
            "last_poll": None,
            "history": [],
            "open_form": open_form == tool.service,
            "confirm_unlink": confirm == tool.service,
            "asana": None,
            "asana_slot": False,
        }
        if integration is not None:
            card["last_poll"] = _poll_view(integration.get("last_poll"), tz)
            if integration.get("last_sync"):
                card["last_sync"] = _sync_view(integration["last_sync"], tz, tool.label)
            syncs = await svc.sync.list_syncs(user, tool.service, skip=0, limit=HISTORY)
            card["history"] = [_sync_view(s, tz, tool.label, short=True) for s in syncs]
            if tool.service == "asana" and state in SYNCABLE:
                card["asana_slot"] = True
                # The page's live refresh reads statuses only: reading Asana on each
                # refresh would spend the rate budget the sync needs.
                if query.get("view") != "cards":
                    card["asana"] = await _asana_details(request, user)
        cards.append(card)
    return render(
        request,
        "integrations.html",
        {
            "title": "Integrations",
            "cards": cards,
            "alerts": alerts,
            "notice": notice,
            "invited": invited or [],
            # What the admin typed into a refused form, secrets excepted.
            "kept": kept or {},
            "tz": tz.key,
            "now": datetime.now(tz).strftime("%H:%M"),
        },
        user=user,
        status=status,
    )


async def _kept(request: web.Request, tool: Tool) -> dict[str, str]:
    if request.method != "POST" or request.content_type not in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        return {}
    form = await request.post()
    return {
        name: str(form.get(name) or "")[:320]
        for name, _, kind, _ in tool.fields
        if kind != "password"
    }


def _done(kind: str, service: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/integrations?{urlencode({'done': kind, 'service': service})}")


def _enable_error(tool: Tool, exc: DomainError) -> str:
    if exc.code == "validation_error" and tool.service == "heyspace":
        return "HeySpace refused this e-mail and password. Check them and try again."
    if exc.code == "validation_error" and tool.service == "pivotaltracker":
        return "Pivotal Tracker refused this API token. Copy it again from your profile page."
    if exc.code == "integration_exists":
        return f"{tool.label} is already connected."
    if exc.code == "asana_not_configured":
        return asana_refusal("asana_not_configured", "", "")
    return exc.detail


@routes.get("/integrations")
@page(admin=True)
async def integrations_page(request: web.Request, user: Principal) -> web.StreamResponse:
    return await integrations_view(request, user)


async def _connect(request: web.Request, user: Principal, *, reenable: bool) -> web.StreamResponse:
    tool = _tool(request)
    sync = services(request).sync
    try:
        if tool.service == "asana":
            started = await sync.asana.start(user, reenable=reenable)
            # Off to Asana's consent page; its callback brings the browser back here.
            raise web.HTTPSeeOther(started["authorize_url"])
        form = await request.post()
        payload = form_texts(form, (name for name, *_ in tool.fields))
        if tool.service == "heyspace":
            # Passwords may begin or end with spaces.
            payload["password"] = str(form.get("password") or "")
        missing = [label for name, label, *_ in tool.fields if not payload[name]]
        if missing:
            return await integrations_view(
                request,
                user,
                alerts=[f"Fill in: {', '.join(missing)}."],
                open_form=tool.service,
                status=400,
            )
        await sync.enable(user, tool.service, payload, reenable=reenable)
    except DomainError as exc:
        return await integrations_view(
            request,
            user,
            alerts=[_enable_error(tool, exc)],
            open_form=tool.service,
            kept=await _kept(request, tool),
            status=exc.status,
        )
    raise _done("reenabled" if reenable else "enabled", tool.service)


@routes.post("/integrations/{service}/enable")
@page(admin=True)
async def enable(request: web.Request, user: Principal) -> web.StreamResponse:
    return await _connect(request, user, reenable=False)


@routes.post("/integrations/{service}/reenable")
@page(admin=True)
async def reenable(request: web.Request, user: Principal) -> web.StreamResponse:
    return await _connect(request, user, reenable=True)


async def _action(
    request: web.Request, user: Principal, tool: Tool, action: Awaitable[Any], done: str
) -> web.StreamResponse:
    try:
        await action
    except DomainError as exc:
        return await integrations_view(request, user, alerts=[exc.detail], status=exc.status)
    raise _done(done, tool.service)


@routes.post("/integrations/{service}/sync")
@page(admin=True)
async def force_sync(request: web.Request, user: Principal) -> web.StreamResponse:
    tool = _tool(request)
    return await _action(
        request, user, tool, services(request).sync.force_sync(user, tool.service), "sync"
    )


@routes.post("/integrations/{service}/unlink")
@page(admin=True)
async def unlink(request: web.Request, user: Principal) -> web.StreamResponse:
    tool = _tool(request)
    return await _action(
        request, user, tool, services(request).sync.unlink(user, tool.service), "unlinked"
    )


@routes.post("/integrations/{service}/settings")
@page(admin=True)
async def save_settings(request: web.Request, user: Principal) -> web.StreamResponse:
    tool = _tool(request)
    form = await request.post()
    settings = {"keywords_from_ids": bool(form.get("keywords_from_ids"))}
    return await _action(
        request,
        user,
        tool,
        services(request).sync.update_settings(user, tool.service, settings),
        "settings",
    )


@routes.post("/integrations/asana/workspaces")
@page(admin=True)
async def save_workspaces(request: web.Request, user: Principal) -> web.StreamResponse:
    form = await request.post()
    chosen = [str(v) for v in form.getall("workspace", [])]
    return await _action(
        request,
        user,
        BY_SERVICE["asana"],
        services(request).sync.asana.select_workspaces(user, chosen),
        "workspaces",
    )


@routes.post("/integrations/asana/invite")
@page(admin=True)
async def invite_coworkers(request: web.Request, user: Principal) -> web.StreamResponse:
    form = await request.post()
    emails = [str(v) for v in form.getall("coworker", [])]
    if not emails:
        return await integrations_view(
            request, user, alerts=["Tick the co-workers to invite first."], status=400
        )
    try:
        results = await services(request).sync.asana.invite(user, emails)
    except DomainError as exc:
        return await integrations_view(request, user, alerts=[exc.detail], status=exc.status)
    invited = [r for r in results if r["status"] == "invited"]
    mailed = sum(1 for r in invited if r.get("mail") == "sent")
    parts = [f"{len(invited)} co-worker{'s' if len(invited) != 1 else ''} invited"]
    if mailed:
        parts.append(f"{mailed} by e-mail")
    already = len(results) - len(invited)
    if already:
        parts.append(f"{already} already in the team")
    # Links of invitations that were not mailed are shown once, in this answer only.
    return await integrations_view(
        request,
        user,
        notice="; ".join(parts) + ".",
        invited=[r for r in invited if r.get("mail") != "sent"],
    )
