"""The stored timestamp text: fixed width, UTC, microseconds, right across seconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from server.domain import clock


def at_ns(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    ns = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000 + 999
    monkeypatch.setattr(time, "time_ns", lambda: ns)


def test_now_iso_is_fixed_width_and_changes_with_the_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for moment in (
        datetime(2026, 12, 1, 9, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 12, 1, 10, 0, 0, 0, tzinfo=UTC),  # the cached second moves on
        datetime(2026, 12, 1, 10, 0, 0, 42, tzinfo=UTC),
        datetime(1999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),  # and back
    ):
        at_ns(monkeypatch, moment)
        assert clock.now_iso() == clock.iso(moment)
        assert len(clock.now_iso()) == 27


def test_now_iso_follows_the_real_clock() -> None:
    before = clock.iso(clock.now())
    text = clock.now_iso()
    after = clock.iso(clock.now())
    assert before <= text <= after
    assert clock.parse(text).tzinfo == UTC
