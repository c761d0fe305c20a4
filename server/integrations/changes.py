"""Pieces the connectors' incremental checks (``Connector.changes``) share.

A check asks a provider for the items modified after a *mark* (a timestamp on the
provider's clock: taken from its ``Date`` header or from the items' own modification
times, so our clock's skew never matters). It queries a little before the mark (an overlap,
for writes in the same second or a lagging search index) and remembers which items it has
already reported at which modification time, so an item inside the overlap is reported
once, not at every check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

EPOCH = "1970-01-01T00:00:00.000Z"


def parse_ts(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def iso_ts(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def server_now(headers: Mapping[str, str]) -> str:
    """The provider's clock from an answer's ``Date`` header (ours if it has none)."""
    value = headers.get("Date")
    if value:
        try:
            return iso_ts(parsedate_to_datetime(value))
        except (TypeError, ValueError):
            pass
    return iso_ts(datetime.now(UTC))


def query_after(mark: Mapping[str, Any], overlap_s: float) -> str:
    """The ``modified after`` value to send for a watermark."""
    return iso_ts(parse_ts(str(mark["at"])) - timedelta(seconds=overlap_s))


def new_mark(at: str) -> dict[str, Any]:
    return {"at": at, "seen": {}}


def advance(
    mark: Mapping[str, Any], found: Iterable[tuple[str, str]], overlap_s: float
) -> tuple[set[str], dict[str, Any]]:
    """Fold the ``(id, modified_at)`` pairs a query returned into a watermark.

    Returns the ids not reported before at that modification time, and the next
    watermark: its time is the newest modification seen; ``seen`` keeps only the items
    inside the next query's overlap, so the state stays small. Items older than the
    query asked for (a server ignoring the filter) are not reported."""
    at = parse_ts(str(mark["at"]))
    asked = at - timedelta(seconds=overlap_s)
    seen: dict[str, str] = dict(mark.get("seen") or {})
    fresh: set[str] = set()
    for item_id, modified in found:
        if parse_ts(modified) < asked:
            continue
        if seen.get(item_id) != modified:
            fresh.add(item_id)
        seen[item_id] = modified
        when = parse_ts(modified)
        if when > at:
            at = when
    floor = at - timedelta(seconds=overlap_s)
    kept = {i: m for i, m in seen.items() if parse_ts(m) >= floor}
    return fresh, {"at": iso_ts(at), "seen": kept}


def pick_round(
    ids: Sequence[str], activity: Mapping[str, str], cursor: int, n: int
) -> tuple[list[str], int, bool]:
    """Choose ``n`` of ``ids`` to check now: the most recently active half first (by the
    ISO time in ``activity``), the rest by rotating ``cursor`` through all of them, so every
    project is checked within ``len(ids) / (n / 2)`` rounds whatever the activity.
    Returns the chosen ids, the next cursor and whether the rotation went round (the
    moment to look for new projects)."""
    if n <= 0 or not ids:
        return [], cursor, not ids
    if n >= len(ids):
        return list(ids), 0, True
    hot_n = n // 2
    by_activity = sorted(ids, key=lambda i: activity.get(i, EPOCH), reverse=True)
    chosen: list[str] = by_activity[:hot_n]
    taken = set(chosen)
    cursor %= len(ids)
    steps = 0
    while len(chosen) < n and steps < len(ids):
        candidate = ids[(cursor + steps) % len(ids)]
        steps += 1
        if candidate not in taken:
            chosen.append(candidate)
            taken.add(candidate)
    return chosen, (cursor + steps) % len(ids), cursor + steps >= len(ids)
