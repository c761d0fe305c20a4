"""The timesheet (``/`` when signed in): running timer, start by search, the week by the
user's local days, manual entries, Force synchronization."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from ..domain import clock
from ..domain.errors import DomainError
from ..services.principal import Principal
from . import localtime as lt
from .core import current_user, form_texts, page, render, safe_next, services, user_zone
from .session import sign_in_page

routes = web.RouteTableDef()
SEARCH_LIMIT = 20
PATH_SEPARATOR = " \u203a "  # the reports' task label joins a path the same way
ENTRY_PAGE = 500
# Force synchronization is possible while an integration is in one of these states.
SYNCABLE = ("ok", "syncing", "error")


def task_label(entry: dict[str, Any]) -> str:
    if entry.get("task_path"):
        return PATH_SEPARATOR.join(entry["task_path"])
    ref = entry.get("pending_ref")
    if ref:
        return f"{ref['service']} item {ref['external_id']} (not imported yet)"
    return "No task"


def week_label(monday: date) -> str:
    sunday = monday + timedelta(days=6)
    return f"{monday.strftime('%-d %b')} \u2013 {sunday.strftime('%-d %b %Y')}"


def parse_tags(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


async def _week_entries(
    user: Principal,
    start: datetime,
    end: datetime,
    running: dict[str, Any] | None,
    request: web.Request,
) -> list[dict[str, Any]]:
    """Entries that touch [start, end): those starting in it, those of the day before
    that reach into it, and the running one (an entry longer than a day that started
    earlier still is not listed: the week asks for one indexed range of starts)."""
    timer = services(request).timer
    found: list[dict[str, Any]] = []
    skip = 0
    while True:
        chunk = await timer.list_entries(
            user,
            start_from=clock.iso(start - timedelta(days=1)),
            start_to=clock.iso(end),
            user_id=None,
            skip=skip,
            limit=ENTRY_PAGE,
        )
        found.extend(chunk)
        if len(chunk) < ENTRY_PAGE:
            break
        skip += ENTRY_PAGE
    if running is not None and all(e["id"] != running["id"] for e in found):
        if running["start"] < clock.iso(end):
            found.insert(0, running)
    since = clock.iso(start)
    return [e for e in found if e["start"] >= since or e.get("end") is None or e["end"] > since]


def _entry_view(entry: dict[str, Any], tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    start = lt.local(entry["start"], tz)
    end = lt.local(entry["end"], tz) if entry.get("end") else now.astimezone(tz)
    # Elapsed seconds in UTC: two datetimes of one zone subtract as wall-clock times.
    span = lt.Span(start.astimezone(UTC), end.astimezone(UTC))
    elapsed = int((span.end - span.start).total_seconds())
    return {
        "id": entry["id"],
        "task_id": entry.get("task_id") or "",
        "task": task_label(entry),
        "date": start.date().isoformat(),
        "start": start.strftime("%H:%M"),
        "end": "" if entry.get("end") is None else end.strftime("%H:%M"),
        "end_date": end.date().isoformat(),
        "running": entry.get("end") is None,
        "start_iso": entry["start"],
        "end_iso": entry.get("end") or "",
        "duration_s": elapsed,
        "duration": lt.duration_text(elapsed),
        "note": entry.get("note") or "",
        "tags": entry.get("tags") or [],
        "span": span,
    }


async def timesheet(
    request: web.Request,
    user: Principal,
    *,
    alerts: list[str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    svc = services(request)
    me = await svc.accounts.get_user(user.account_id, user.user_id)
    tz = lt.zone(me.get("time_zone"))
    now = clock.now()
    asked = lt.parse_day(request.query.get("week") or (form or {}).get("week"))
    monday = lt.monday_of(asked or lt.today(tz))
    week_start, week_end = lt.day_start(monday, tz), lt.day_start(monday + timedelta(days=7), tz)

    running = await svc.timer.running(user)
    entries = [
        _entry_view(e, tz, now)
        for e in await _week_entries(user, week_start, week_end, running, request)
    ]
    days = []
    for offset in range(7):
        day = monday + timedelta(days=offset)
        lo, hi = lt.day_start(day, tz), lt.day_start(day + timedelta(days=1), tz)
        listed = [
            e
            for e in entries
            if e["date"] == day.isoformat() or (offset == 0 and e["span"].start < lo)
        ]
        total_s = sum(e["span"].overlap_s(lo, hi) for e in entries)
        # The part of an entry listed on the day it began (it ran past midnight).
        carried_s = total_s - sum(e["span"].overlap_s(lo, hi) for e in listed)
        days.append(
            {
                "date": day.isoformat(),
                "label": day.strftime("%A %-d %B"),
                "is_today": day == lt.today(tz),
                "entries": listed,
                "total_s": total_s,
                "carried": lt.duration_text(carried_s) if carried_s else "",
                "has_running": any(
                    e["running"] and e["span"].start < hi and e["span"].end >= lo for e in entries
                ),
            }
        )
    for d in days:
        d["total"] = lt.duration_text(d["total_s"])
    week_total = sum(d["total_s"] for d in days)

    integrations = await svc.sync.list_integrations(user) if svc.integrations else []
    syncable = [i["service"] for i in integrations if i["status"] in SYNCABLE]

    query = request.query.get("task-search", "").strip()
    results: list[dict[str, Any]] = []
    if query:
        results, _ = await svc.tasks.list_page(
            user,
            q=query,
            parent_id=None,
            include_archived=False,
            trackable=True,
            limit=SEARCH_LIMIT,
        )

    editing = None
    edit_id = request.query.get("edit")
    if form is not None:
        editing = form
    elif edit_id:
        match = next((e for e in entries if e["id"] == edit_id and not e["running"]), None)
        if match is not None:
            editing = {
                "entry_id": match["id"],
                "task-id": match["task_id"],
                "task": match["task"],
                "date": match["date"],
                "start": match["start"],
                "end": match["end"],
                "next_day": "1" if match["end_date"] != match["date"] else "",
                "orig_start": match["start_iso"],
                "orig_end": match["end_iso"],
                "note": match["note"],
                "tags": ", ".join(match["tags"]),
            }
    if editing is None:
        today = lt.today(tz)
        in_week = monday <= today < monday + timedelta(days=7)
        editing = {"date": (today if in_week else monday).isoformat()}

    return render(
        request,
        "timesheet.html",
        {
            "title": "Timesheet",
            "tz": str(tz.key),
            "tz_unset": me.get("time_zone") is None,
            "running": running and _entry_view(running, tz, now),
            "running_label": running and task_label(running),
            "week": {
                "start": monday.isoformat(),
                "label": week_label(monday),
                "prev": (monday - timedelta(days=7)).isoformat(),
                "next": (monday + timedelta(days=7)).isoformat(),
                "is_current": monday == lt.monday_of(lt.today(tz)),
            },
            "days": days,
            "week_total_s": week_total,
            "week_total": lt.duration_text(week_total),
            "syncable": syncable,
            "query": query,
            "results": results,
            "form": editing,
            "alerts": alerts or [],
        },
        user=user,
        status=status,
    )


def _back(week: str | None) -> str:
    day = lt.parse_day(week)
    return "/?" + urlencode({"week": day.isoformat()}) if day else "/"


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    user = await current_user(request)
    if user is None:
        return sign_in_page(request, next_path=safe_next(request.query.get("next")))
    return await timesheet(request, user)


def _entry_error(exc: DomainError, start: str, end: str) -> str:
    if exc.code == "entry_overlap":
        return "This entry overlaps another of your entries. Change its start or end."
    fields = {e.get("field") for e in exc.extra.get("errors", [])}
    if "end" in fields and "future" in exc.detail:
        return "An entry cannot end in the future."
    if "end" in fields:
        return f"The end ({end}) must be after the start ({start})."
    if exc.code == "task_not_trackable":
        return "You may not track time on this task."
    return exc.detail


def _unchanged(original: str, day: date, hh_mm: str, tz: ZoneInfo) -> str | None:
    """``original`` (an entry's stored ISO time) when it shows as ``day`` ``hh_mm``."""
    try:
        moment = lt.local(original, tz)
    except ValueError:
        return None
    if moment.date() == day and moment.strftime("%H:%M") == hh_mm:
        return original
    return None


@routes.post("/entries")
@page()
async def save_entry(request: web.Request, user: Principal) -> web.StreamResponse:
    form = await request.post()
    values = form_texts(
        form,
        (
            "entry_id",
            "task-id",
            "task",
            "date",
            "start",
            "end",
            "next_day",
            "orig_start",
            "orig_end",
            "note",
            "tags",
            "week",
        ),
    )
    timer = services(request).timer
    entry_id = values["entry_id"] or None
    try:
        if "delete" in form and entry_id:
            await timer.delete_entry(user, entry_id)
            raise web.HTTPSeeOther(_back(values["week"] or values["date"]))
        tz = await user_zone(request, user)
        day = lt.parse_day(values["date"])
        start = lt.at_local(day, values["start"], tz) if day else None
        # "Ends the next day": an entry across midnight (22:30 to 01:30).
        end_day = day + timedelta(days=1) if day and values["next_day"] else day
        end = lt.at_local(end_day, values["end"], tz) if end_day else None
        if entry_id and day and end_day:
            # HH:MM cannot tell the two passes through an autumn hour apart: an unchanged
            # field keeps the entry's stored instant.
            start = _unchanged(values["orig_start"], day, values["start"], tz) or start
            end = _unchanged(values["orig_end"], end_day, values["end"], tz) or end
        if day is None or start is None or end is None:
            return await timesheet(
                request,
                user,
                alerts=["Give the date (YYYY-MM-DD) and the start and end (HH:MM)."],
                form=values,
                status=400,
            )
        note = values["note"][:2000]
        tags = parse_tags(values["tags"])
        task_id = values["task-id"] or None
        if entry_id:
            changes: dict[str, Any] = {"start": start, "end": end, "note": note, "tags": tags}
            if task_id:
                changes["task_id"] = task_id
            await timer.update_entry(user, entry_id, changes)
        else:
            await timer.create_entry(
                user,
                task_id=task_id,
                start=start,
                end=end,
                note=note,
                tags=tags,
                created_with="web",
            )
    except DomainError as exc:
        return await timesheet(
            request,
            user,
            alerts=[_entry_error(exc, values["start"], values["end"])],
            form=values,
            status=exc.status,
        )
    raise web.HTTPSeeOther(_back(values["date"]))


@routes.post("/timer/start")
@page()
async def start_timer(request: web.Request, user: Principal) -> web.StreamResponse:
    form = await request.post()
    try:
        await services(request).timer.start(
            user,
            task_id=str(form.get("task_id") or "") or None,
            service=None,
            external_id=None,
            note=str(form.get("note") or "")[:2000],
            tags=parse_tags(str(form.get("tags") or "")),
            created_with="web",
            idempotency_key=None,
        )
    except DomainError as exc:
        return await timesheet(request, user, alerts=[exc.detail], status=exc.status)
    raise web.HTTPSeeOther("/")


@routes.post("/timer/stop")
@page()
async def stop_timer(request: web.Request, user: Principal) -> web.StreamResponse:
    await services(request).timer.stop(user, None)
    raise web.HTTPSeeOther("/")


@routes.post("/sync")
@page()
async def force_sync(request: web.Request, user: Principal) -> web.StreamResponse:
    svc = services(request)
    problems = []
    for integration in await svc.sync.list_integrations(user):
        if integration["status"] in SYNCABLE:
            try:
                await svc.sync.force_sync(user, integration["service"])
            except DomainError as exc:
                problems.append(exc.detail)
    if problems:
        return await timesheet(request, user, alerts=problems, status=409)
    raise web.HTTPSeeOther("/")
