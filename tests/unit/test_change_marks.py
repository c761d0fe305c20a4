"""The watermark and rotation helpers shared by the connectors' incremental checks."""

from __future__ import annotations

from server.integrations.changes import (
    advance,
    iso_ts,
    new_mark,
    parse_ts,
    pick_round,
    query_after,
    server_now,
)


def test_each_item_is_reported_once_per_modification() -> None:
    mark = new_mark("2026-01-01T10:00:00.000Z")
    assert query_after(mark, 2) == "2026-01-01T09:59:58.000Z"
    fresh, mark = advance(mark, [("a", "2026-01-01T10:00:05.000Z")], 2)
    assert fresh == {"a"} and mark["at"] == "2026-01-01T10:00:05.000Z"
    # The next query overlaps: "a" comes again unchanged and is not reported again.
    fresh, mark = advance(mark, [("a", "2026-01-01T10:00:05.000Z")], 2)
    assert fresh == set()
    fresh, mark = advance(mark, [("a", "2026-01-01T10:00:09.000Z")], 2)
    assert fresh == {"a"}


def test_seen_keeps_only_the_overlap_and_older_items_are_ignored() -> None:
    mark = new_mark("2026-01-01T10:00:00.000Z")
    _, mark = advance(
        mark, [("old", "2026-01-01T10:00:01.000Z"), ("new", "2026-01-01T10:00:30.000Z")], 2
    )
    assert set(mark["seen"]) == {"new"}
    # A server that ignored the filter lists an item from long before: not a change.
    fresh, _ = advance(mark, [("ancient", "2025-06-01T00:00:00.000Z")], 2)
    assert fresh == set()


def test_server_now_reads_the_date_header() -> None:
    assert server_now({"Date": "Tue, 01 Dec 2026 09:00:00 GMT"}) == "2026-12-01T09:00:00.000Z"
    assert parse_ts(server_now({})) is not None
    assert iso_ts(parse_ts("2026-12-01T09:00:00.123456Z")) == "2026-12-01T09:00:00.123Z"


def test_rotation_checks_the_hottest_half_and_reaches_every_id() -> None:
    ids = [f"p{i}" for i in range(10)]
    activity = {"p7": "2026-01-02T00:00:00.000Z"}
    cursor, covered, wraps = 0, set(), []
    for _ in range(5):
        chosen, cursor, wrapped = pick_round(ids, activity, cursor, 4)
        assert len(chosen) == 4 == len(set(chosen))
        assert "p7" in chosen  # the most recently active one, every time
        covered |= set(chosen)
        wraps.append(wrapped)
    assert covered == set(ids)
    assert True in wraps  # the rotation went round at least once
    assert pick_round(ids, activity, 3, 20) == (ids, 0, True)
    assert pick_round([], activity, 0, 4) == ([], 0, True)
