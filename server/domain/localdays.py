"""Local days of a time zone as UTC instants. No I/O.

A report covers the local dates ``first``..``last`` of one IANA zone. Its days are cut at
local midnight, so a daylight-saving day lasts 23 or 25 hours. Both databases receive the
same small description of the range instead of a per-day table:

- ``midnights``: the UTC instant (epoch seconds) of each local midnight, ``days + 1`` of
  them; day ``k`` is ``[midnights[k], midnights[k + 1])``.
- ``shifts``: the UTC offset as a piecewise constant function of the instant (a handful
  of pieces a year), so the local day of an instant ``t`` is
  ``(t + offset(t)) // 86400 - epoch_day0`` — one ``CASE`` in SQL.
- ``midnight_shifts``: the same idea for the other direction,
  ``midnights[k] = (epoch_day0 + k) * 86400 - c(k)`` with ``c`` piecewise constant in ``k``.

Every instant is a whole number of seconds: stored timestamps are cut to the second
before any arithmetic, so clipped pieces add up exactly to the totals.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAY_S = 86_400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@functools.lru_cache(maxsize=8192)
def _epoch_day(day: str) -> int:
    return date.fromisoformat(day).toordinal() - _EPOCH_ORDINAL


def epoch_seconds(iso: str) -> int:
    """The whole second of a stored fixed-width UTC timestamp (``YYYY-MM-DDTHH:MM:SS…``),
    exactly as the stores compute it (the first 19 characters). Exports call it twice a
    row, hence the arithmetic instead of a datetime."""
    return (
        _epoch_day(iso[:10]) * DAY_S
        + int(iso[11:13]) * 3600
        + int(iso[14:16]) * 60
        + int(iso[17:19])
    )


@functools.lru_cache(maxsize=8192)
def day_text(epoch_day: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since 1970-01-01)."""
    return date.fromordinal(epoch_day + _EPOCH_ORDINAL).isoformat()


def wall_text(local: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` of a local wall-clock time given as local epoch seconds."""
    days, rest = divmod(local, DAY_S)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{day_text(days)} {hours:02d}:{minutes:02d}:{seconds:02d}"


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_or_none(name: str) -> ZoneInfo | None:
    """The IANA zone of this name, or None (only names of the zone database: never a
    path, never a POSIX TZ string)."""
    if name not in _zone_names():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _offset(zone: ZoneInfo, instant: int) -> int:
    offset = datetime.fromtimestamp(instant, zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def _local_midnight(zone: ZoneInfo, day: date) -> int:
    # A midnight that does not exist (a zone that springs forward at 00:00) resolves, with
    # fold=0, to the instant the clock jumps: the first instant that shows this date.
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())


def _step(pieces: tuple[tuple[int, int], ...], x: int) -> int:
    """The value at ``x`` of a piecewise constant function given as ascending
    ``(since, value)`` pieces (the first piece's value also before its ``since``)."""
    current = pieces[0][1]
    for since, value in pieces:
        if x < since:
            break
        current = value
    return current


@dataclass(frozen=True, slots=True)
class DayGrid:
    first: date
    days: int
    epoch_day0: int
    midnights: tuple[int, ...]
    # (from_instant, offset_s), ascending; the first piece also covers earlier instants.
    shifts: tuple[tuple[int, int], ...]
    # (from_k, c), ascending; midnights[k] = (epoch_day0 + k) * DAY_S - c.
    midnight_shifts: tuple[tuple[int, int], ...]

    @property
    def lo(self) -> int:
        return self.midnights[0]

    @property
    def hi(self) -> int:
        return self.midnights[-1]

    def offset(self, instant: int) -> int:
        return _step(self.shifts, instant)

    def local(self, instant: int) -> int:
        """The wall-clock time of an instant of the range, as local epoch seconds."""
        return instant + self.offset(instant)

    def day_of(self, instant: int) -> int:
        """Index of the local day holding ``instant`` (the formula the stores use)."""
        return (instant + self.offset(instant)) // DAY_S - self.epoch_day0

    def midnight(self, k: int) -> int:
        return (self.epoch_day0 + k) * DAY_S - _step(self.midnight_shifts, k)

    def label(self, k: int) -> str:
        return (self.first + timedelta(days=k)).isoformat()


def _pieces(values: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for since, value in values:
        if not out or out[-1][1] != value:
            out.append((since, value))
    return tuple(out)


def build_grid(first: date, last: date, zone: ZoneInfo) -> DayGrid:
    days = (last - first).days + 1
    midnights = [_local_midnight(zone, first + timedelta(days=k)) for k in range(days + 1)]
    epoch_day0 = first.toordinal() - _EPOCH_ORDINAL
    midnight_shifts = _pieces([(k, (epoch_day0 + k) * DAY_S - m) for k, m in enumerate(midnights)])
    # Offsets sampled twice a day; where two samples differ, the change is found to the
    # second by bisection (zones change offset at most a few times a year).
    samples: list[int] = []
    for k in range(days):
        samples.append(midnights[k])
        samples.append((midnights[k] + midnights[k + 1]) // 2)
    samples.append(midnights[-1])
    shifts: list[tuple[int, int]] = [(samples[0], _offset(zone, samples[0]))]
    for a, b in itertools.pairwise(samples):
        before, after = _offset(zone, a), _offset(zone, b)
        if before == after:
            continue
        low, high = a, b  # offset(low) == before, offset(high) == after
        while high - low > 1:
            mid = (low + high) // 2
            if _offset(zone, mid) == before:
                low = mid
            else:
                high = mid
        shifts.append((high, after))
    return DayGrid(
        first=first,
        days=days,
        epoch_day0=epoch_day0,
        midnights=tuple(midnights),
        shifts=_pieces(shifts),
        midnight_shifts=midnight_shifts,
    )
