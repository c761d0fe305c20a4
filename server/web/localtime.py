"""The user's local days and clock times: pages show local time, the API stays UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..domain import clock


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def today(tz: ZoneInfo) -> date:
    return datetime.now(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight of ``day`` as an aware UTC datetime (a DST day may have 23 or 25 h)."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def local(moment: str, tz: ZoneInfo) -> datetime:
    return clock.parse(moment).astimezone(tz)


def hhmm(moment: str | None, tz: ZoneInfo) -> str:
    return local(moment, tz).strftime("%H:%M") if moment else ""


def at_local(day: date, hh_mm: str, tz: ZoneInfo) -> str | None:
    """``YYYY-MM-DD`` + ``HH:MM`` in ``tz`` -> ISO UTC, or None when malformed."""
    try:
        hours, minutes = hh_mm.split(":")[:2]
        moment = datetime.combine(day, time(int(hours), int(minutes)), tz)
    except ValueError:
        return None
    return clock.iso(moment)


def duration_text(seconds: int) -> str:
    hours, rest = divmod(max(0, seconds), 3600)
    return f"{hours}:{rest // 60:02d}"


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime

    def overlap_s(self, start: datetime, end: datetime) -> int:
        lo, hi = max(self.start, start), min(self.end, end)
        return max(0, int((hi - lo).total_seconds()))
