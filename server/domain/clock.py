"""Timestamps are stored as fixed-width ISO 8601 UTC strings so that both databases
order them correctly as plain strings."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

MIN_YEAR, MAX_YEAR = 1970, 9998


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    # Formatted by hand: strftime("%Y") does not pad years below 1000 on every platform,
    # and a fixed width is what keeps string order equal to time order.
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond:06d}Z"
    )


class _SecondText:
    """The text of the current second, made once per second: ``now_iso`` runs several
    times per timer request, and formatting a datetime costs more than the request's
    other clock work together."""

    second = -1
    text = ""


def now_iso() -> str:
    micros = time.time_ns() // 1000
    second, fraction = divmod(micros, 1_000_000)
    cache = _SecondText
    if second != cache.second:
        cache.text = iso(datetime.fromtimestamp(second, UTC))[:19]
        cache.second = second
    return f"{cache.text}.{fraction:06d}Z"


def parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def later_iso(seconds: float) -> str:
    return iso(now() + timedelta(seconds=seconds))


def seconds_between(start: str, end: str) -> int:
    return max(0, int((parse(end) - parse(start)).total_seconds()))
