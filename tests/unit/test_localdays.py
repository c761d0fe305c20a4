"""Local days as UTC instants: the small piecewise description the stores use agrees
with zoneinfo for every zone, on daylight-saving days and on skipped days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, available_timezones

from server.domain.localdays import build_grid, epoch_seconds, zone_or_none


def test_warsaw_daylight_saving_days() -> None:
    grid = build_grid(date(2026, 3, 28), date(2026, 10, 26), ZoneInfo("Europe/Warsaw"))
    lengths = {grid.label(k): grid.midnights[k + 1] - grid.midnights[k] for k in range(grid.days)}
    assert lengths["2026-03-28"] == 86400
    assert lengths["2026-03-29"] == 23 * 3600
    assert lengths["2026-10-25"] == 25 * 3600
    assert set(lengths.values()) == {86400, 23 * 3600, 25 * 3600}
    assert grid.lo == int(datetime(2026, 3, 27, 23, tzinfo=UTC).timestamp())
    # 02:30 UTC on the spring day is 04:30 local, still 2026-03-29; 23:30 UTC is 01:30
    # of the next local day.
    assert grid.label(grid.day_of(int(datetime(2026, 3, 29, 2, 30, tzinfo=UTC).timestamp()))) == (
        "2026-03-29"
    )
    assert grid.label(grid.day_of(int(datetime(2026, 3, 29, 23, 30, tzinfo=UTC).timestamp()))) == (
        "2026-03-30"
    )
    # Three pieces each: before, between and after the two changes.
    assert [offset for _, offset in grid.shifts] == [3600, 7200, 3600]
    assert [c for _, c in grid.midnight_shifts] == [3600, 7200, 3600]


def test_every_zone_agrees_with_zoneinfo() -> None:
    for name in sorted(available_timezones()):
        zone = ZoneInfo(name)
        grid = build_grid(date(2026, 1, 1), date(2026, 12, 31), zone)
        for k in range(grid.days):
            start, end = grid.midnights[k], grid.midnights[k + 1]
            assert grid.midnight(k) == start, (name, k)
            if end > start:
                assert grid.day_of(start) == k and grid.day_of(end - 1) == k, (name, k)
                middle = (start + end) // 2
                assert grid.label(grid.day_of(middle)) == (
                    datetime.fromtimestamp(middle, zone).date().isoformat()
                ), (name, k)


def test_a_skipped_day_has_no_seconds() -> None:
    # Samoa skipped 2011-12-30 when it moved across the date line.
    grid = build_grid(date(2011, 12, 29), date(2011, 12, 31), ZoneInfo("Pacific/Apia"))
    assert grid.midnights[2] == grid.midnights[1]


def test_zone_names_and_whole_seconds() -> None:
    assert zone_or_none("Europe/Warsaw") == ZoneInfo("Europe/Warsaw")
    for bad in ("Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "EST5EDT,M3.2.0"):
        assert zone_or_none(bad) is None
    assert epoch_seconds("2026-03-29T01:00:00.999999Z") == epoch_seconds("2026-03-29T01:00:00Z")
    assert epoch_seconds("2026-03-29T01:00:00.000000Z") == 1774746000
