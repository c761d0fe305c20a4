"""The reports page: totals over a range of local dates, grouped, with a bar chart, the
table and the export links. The numbers come from the same service as
``GET /api/v1/reports/summary``; the export links point at the API's CSV / XLSX with the
same range and zone, so the page and the files agree second for second."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web

from ..domain.errors import DomainError
from ..services.principal import Principal
from ..services.reports import ReportParams, parse_group_by
from . import localtime as lt
from .core import page, render, services

routes = web.RouteTableDef()

GROUPS = (("task", "Task"), ("user", "User"), ("day", "Day"), ("tag", "Tag"))
PRESETS = (
    ("this-week", "This week"),
    ("last-week", "Last week"),
    ("this-month", "This month"),
    ("last-month", "Last month"),
    ("this-year", "This year"),
)
CHART_BARS = 12  # groups shown in a horizontal chart; the table has them all
CHART_W, CHART_H = 720, 220


def preset_range(preset: str, today: date) -> tuple[date, date] | None:
    if preset == "this-week":
        monday = lt.monday_of(today)
        return monday, monday + timedelta(days=6)
    if preset == "last-week":
        monday = lt.monday_of(today) - timedelta(days=7)
        return monday, monday + timedelta(days=6)
    first_of_month = today.replace(day=1)
    if preset == "this-month":
        following = (first_of_month + timedelta(days=32)).replace(day=1)
        return first_of_month, following - timedelta(days=1)
    if preset == "last-month":
        last = first_of_month - timedelta(days=1)
        return last.replace(day=1), last
    if preset == "this-year":
        return today.replace(month=1, day=1), today.replace(month=12, day=31)
    return None


def hms(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    title: str


def _axis_hours(top_s: int) -> int:
    """A round number of hours for the chart's scale."""
    hours = max(1, -(-top_s // 3600))
    for step in (1, 2, 4, 5, 8, 10, 20, 25, 40, 50, 100, 200, 500, 1000):
        if hours <= step:
            return step
    return hours


def day_chart(groups: list[dict[str, Any]], first: date, last: date) -> dict[str, Any]:
    """One column per day of the range (days without time too)."""
    by_day = {g["key"]: g["total_s"] for g in groups}
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    scale_h = _axis_hours(max(by_day.values(), default=0))
    top, bottom = 14, CHART_H - 30  # room for the top tick's label and the day labels
    plot_h = bottom - top
    slot = (CHART_W - 40) / len(days)
    bars = []
    for k, day in enumerate(days):
        seconds = by_day.get(day.isoformat(), 0)
        height = plot_h * seconds / (scale_h * 3600)
        label = (
            day.strftime("%a %d")
            if len(days) <= 14
            else (str(day.day) if day.day in (1, 15) else "")
        )
        bars.append(
            Bar(
                x=40 + k * slot + slot * 0.15,
                y=bottom - height,
                width=max(1.0, slot * 0.7),
                height=height,
                label=label,
                title=f"{day.isoformat()}: {hms(seconds)}",
            )
        )
    ticks = [(round(bottom - plot_h * f, 1), f"{scale_h * f:g} h") for f in (1.0, 0.5, 0.0)]
    return {"kind": "columns", "bars": bars, "ticks": ticks}


def group_chart(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Horizontal bars for the largest groups."""
    shown = groups[:CHART_BARS]
    scale_h = _axis_hours(max((g["total_s"] for g in shown), default=0))
    row = 22
    label_w = 230
    bars = [
        Bar(
            x=label_w,
            y=10 + i * row,
            width=(CHART_W - label_w - 70) * g["total_s"] / (scale_h * 3600),
            height=row - 6,
            label=g["label"] if len(g["label"]) <= 34 else g["label"][:33] + "…",
            title=f"{g['label']}: {hms(g['total_s'])}",
        )
        for i, g in enumerate(shown)
    ]
    return {
        "kind": "bars",
        "bars": bars,
        "scale_h": scale_h,
        "height": 20 + len(shown) * row,
        "label_w": label_w,
        "hidden": len(groups) - len(shown),
    }


@routes.get("/reports")
@page()
async def reports_page(request: web.Request, user: Principal) -> web.StreamResponse:
    svc = services(request)
    me = await svc.accounts.get_user(user.account_id, user.user_id)
    tz_name = me.get("time_zone") or "UTC"
    today = lt.today(lt.zone(tz_name))
    query = request.query
    group_by = query.get("group_by") or "task"
    user_id = query.get("user_id") or ""
    preset = query.get("preset")
    if preset:
        chosen = preset_range(preset, today)
        if chosen is not None:
            # A preset becomes explicit dates, so the address is a stable deep link.
            params = {"from": chosen[0].isoformat(), "to": chosen[1].isoformat()}
            params.update(group_by=group_by, **({"user_id": user_id} if user_id else {}))
            raise web.HTTPFound(f"/reports?{urlencode(params)}")
    alerts: list[str] = []
    default_first, default_last = preset_range("this-week", today) or (today, today)
    first = lt.parse_day(query.get("from")) if query.get("from") else default_first
    last = lt.parse_day(query.get("to")) if query.get("to") else default_last
    if first is None or last is None:
        alerts.append("Enter the dates as YYYY-MM-DD.")
    try:
        levels = parse_group_by(group_by)
    except ValueError:
        alerts.append("Group by task, user, day or tag.")
        levels = ("task",)
    if len(levels) != 1:
        alerts.append("Group by one of task, user, day or tag.")
        levels = levels[:1]
    people = await svc.reports.people(user)
    report: dict[str, Any] | None = None
    if not alerts and first is not None and last is not None:
        try:
            report = await svc.reports.summary(
                user,
                ReportParams(
                    first,
                    last,
                    tz_name,
                    levels,
                    user_ids=(user_id,) if user_id and people is not None else (),
                ),
            )
        except DomainError as exc:
            alerts.append(_message(exc))
    chart: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    if report is not None and first is not None and last is not None:
        total = report["total_s"]
        zone = lt.zone(tz_name)
        for g in report["groups"]:
            label = g["label"]
            if levels[0] == "day":
                day = date.fromisoformat(g["key"])
                hours = _day_hours(day, zone)
                label = f"{day.strftime('%a')} {g['key']}" + (
                    f" ({hours} h day)" if hours != 24 else ""
                )
            rows.append(
                {
                    "key": "" if g["key"] is None else g["key"],
                    "label": label,
                    "total_s": g["total_s"],
                    "duration": hms(g["total_s"]),
                    "share": f"{100 * g['total_s'] / total:.1f}" if total else "0",
                }
            )
        chart = (
            day_chart(report["groups"], first, last)
            if levels[0] == "day"
            else group_chart(report["groups"])
        )
    export = {
        "from": (first or default_first).isoformat(),
        "to": (last or default_last).isoformat(),
    }
    export["tz"] = tz_name
    if user_id and people is not None:
        export["user_id"] = user_id
    return render(
        request,
        "reports.html",
        {
            "title": "Reports",
            "alerts": alerts,
            "form": {
                "from": query.get("from") or default_first.isoformat(),
                "to": query.get("to") or default_last.isoformat(),
                "group_by": levels[0],
                "user_id": user_id,
            },
            "groups": GROUPS,
            "presets": [
                (key, label, f"/reports?{urlencode({'preset': key, 'group_by': levels[0]})}")
                for key, label in PRESETS
            ],
            "people": people,
            "tz": tz_name,
            # No zone yet: the page script adopts the browser's and reloads (app.js).
            "tz_unset": me.get("time_zone") is None,
            "report": report,
            "rows": rows,
            "total": hms(report["total_s"]) if report else "",
            "chart": chart,
            "chart_w": CHART_W,
            "chart_h": CHART_H,
            "csv_url": f"/api/v1/reports/entries.csv?{urlencode(export)}",
            "xlsx_url": f"/api/v1/reports/entries.xlsx?{urlencode(export)}",
            "group_label": dict(GROUPS)[levels[0]],
        },
        user=user,
        status=400 if alerts else 200,
    )


def _day_hours(day: date, zone: ZoneInfo) -> int:
    """How long a local day lasts: 23 or 25 hours on daylight-saving days."""
    length = lt.day_start(day + timedelta(days=1), zone) - lt.day_start(day, zone)
    return round(length.total_seconds() / 3600)


def _message(exc: DomainError) -> str:
    errors = exc.extra.get("errors") or []
    fields = {e.get("field") for e in errors}
    if "to" in fields and "before" in str(errors):
        return "The end date is before the start date."
    if "to" in fields:
        return "A report covers at most 366 days."
    return exc.detail[:1].upper() + exc.detail[1:] + "."
