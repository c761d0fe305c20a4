"""Timestamps are stored as fixed-width ISO 8601 UTC strings so that both databases
order them correctly as plain strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(FORMAT)


def now_iso() -> str:
    return iso(now())


def parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def later_iso(seconds: float) -> str:
    return iso(now() + timedelta(seconds=seconds))


def seconds_between(start: str, end: str) -> int:
    return max(0, int((parse(end) - parse(start)).total_seconds()))
