"""The store's report aggregation (``entry_totals``, ``entry_rows``) against a plain
Python computation of the same rules, on SQLite and on MongoDB over the wire; the indexes
it relies on, created on start for an existing database too."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from server.domain.clock import iso
from server.domain.localdays import build_grid, epoch_seconds
from server.store.base import Backend, CollectionSpec, EntryRange, GroupKey
from server.store.factory import open_backend
from server.store.specs import ALL, ENTRIES
from server.store.sqlite import SQLiteBackend
from tests.conftest import make_settings

KEY_SETS: list[tuple[GroupKey, ...]] = [
    (),
    ("task",),
    ("user",),
    ("day",),
    ("tag",),
    ("user", "day"),
    ("day", "tag"),
    ("task", "tag"),
    ("tag", "user"),
]


def seed(now: datetime) -> list[dict[str, Any]]:
    """Four users' non-overlapping entries around the spring change in Warsaw, with
    fractional seconds, long and midnight-crossing ones, repeated tags, pending entries,
    one running entry per user and entries of another account."""
    rnd = random.Random(7)
    docs: list[dict[str, Any]] = []
    for account in ("a", "b"):
        for u in range(4):
            t = datetime(2026, 3, 25, tzinfo=UTC) + timedelta(seconds=rnd.randint(0, 7200))
            for i in range(60):
                start = t + timedelta(seconds=rnd.randint(0, 30000), microseconds=300_000)
                end = start + timedelta(seconds=rnd.randint(1, 40000), microseconds=600_000)
                running = i == 59
                if running:
                    start = now - timedelta(seconds=500)
                docs.append(
                    {
                        "_id": f"{account}-{u}-{i:03d}",
                        "account_id": account,
                        "user_id": f"u{u}",
                        "task_id": rnd.choice(["t1", "t2", "t3", None]),
                        "start": iso(start),
                        "end": None if running else iso(end),
                        "running": running,
                        "tags": rnd.choice([[], ["x"], ["x", "y"], ["y", "y"]]),
                        "pending_service": None,
                        "pending_external_id": None,
                    }
                )
                t = end
        # Four local days at once (a timer left running over a weekend), across the
        # spring change.
        docs.append(
            {
                **docs[-1],
                "_id": f"{account}-long",
                "user_id": "u9",
                "start": "2026-03-27T17:20:00.250000Z",
                "end": "2026-03-31T08:05:09.750000Z",
                "running": False,
            }
        )
    return docs


def expected(
    docs: Sequence[dict[str, Any]], rng: EntryRange, keys: Sequence[GroupKey]
) -> dict[tuple[Any, ...], int]:
    grid = rng.grid
    out: dict[tuple[Any, ...], int] = {}
    for e in docs:
        if e["account_id"] != rng.account_id:
            continue
        if rng.user_ids is not None and e["user_id"] not in rng.user_ids:
            continue
        if rng.task_ids is not None and e["task_id"] not in rng.task_ids:
            continue
        if rng.tag is not None and rng.tag not in e["tags"]:
            continue
        if rng.own_user is not None and not (
            e["user_id"] == rng.own_user or e["task_id"] in rng.managed_tasks
        ):
            continue
        s = max(epoch_seconds(e["start"]), grid.lo)
        end = min(epoch_seconds(e["end"]) if e["end"] else rng.now, grid.hi)
        if end <= s:
            continue
        tags: list[Any] = list(dict.fromkeys(e["tags"])) or [None]
        for tag in tags if "tag" in keys else [None]:
            if "day" in keys:
                pieces = [
                    (k, min(end, grid.midnights[k + 1]) - max(s, grid.midnights[k]))
                    for k in range(grid.days)
                ]
                pieces = [(k, x) for k, x in pieces if x > 0]
            else:
                pieces = [(None, end - s)]
            for k, secs in pieces:
                values = {"task": e["task_id"], "user": e["user_id"], "tag": tag, "day": k}
                key = tuple(values[name] for name in keys)
                out[key] = out.get(key, 0) + secs
    if not keys:
        return {(): sum(out.values())}
    return out


async def test_totals_match_the_rules(db: Backend) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    docs = seed(now)
    await db.insert_many("entries", docs)
    grid = build_grid(date(2026, 3, 27), date(2026, 4, 20), ZoneInfo("Europe/Warsaw"))
    base = EntryRange("a", grid, now=int(now.timestamp()))
    ranges = [
        base,
        replace(base, user_ids=("u1", "u2")),
        replace(base, task_ids=("t1", "t3")),
        replace(base, tag="y"),
        replace(base, own_user="u0", managed_tasks=("t2",)),
        replace(base, own_user="u3"),
        replace(base, grid=build_grid(date(2026, 3, 29), date(2026, 3, 29), ZoneInfo("UTC"))),
        # Today, so that the running entries count up to ``now``.
        replace(base, grid=build_grid(now.date(), now.date(), ZoneInfo("Asia/Kolkata"))),
    ]
    for rng in ranges:
        for keys in KEY_SETS:
            got = dict(await db.entry_totals(rng, keys))
            want = expected(docs, rng, keys)
            assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}, (
                rng,
                keys,
            )
    running = ranges[-1]
    assert dict(await db.entry_totals(running, ()))[()] > 0


async def test_rows_in_start_order_in_batches(db: Backend) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    docs = seed(now)
    crossing = {**docs[0], "_id": "a-cross", "user_id": "u1", "task_id": "t2"}
    crossing.update(start="2026-03-26T20:00:00.000000Z", end="2026-03-27T01:00:00.000000Z")
    docs.append(crossing)
    await db.insert_many("entries", docs)
    grid = build_grid(date(2026, 3, 27), date(2026, 4, 3), ZoneInfo("Europe/Warsaw"))
    rng = EntryRange("a", grid, now=int(now.timestamp()), own_user="u1", managed_tasks=("t1",))
    batches = [batch async for batch in db.entry_rows(rng, batch=7)]
    assert batches and all(1 <= len(b) <= 7 for b in batches)
    rows = [doc for batch in batches for doc in batch]
    want = [
        d
        for d in sorted(docs, key=lambda d: (d["start"], d["_id"]))
        if d["account_id"] == "a"
        and (d["user_id"] == "u1" or d["task_id"] == "t1")
        and d["start"] < rng.hi_iso
        and (d["end"] is None or d["end"] > rng.lo_iso)
    ]
    assert [r["_id"] for r in rows] == [d["_id"] for d in want]
    # One that began before the range comes first.
    assert rows[0]["start"] < rng.lo_iso and "a-cross" in [r["_id"] for r in rows]
    assert rows[0] == next(d for d in docs if d["_id"] == rows[0]["_id"])


async def test_sqlite_reads_ranges_through_indexes(tmp_path: Path) -> None:
    db = SQLiteBackend(tmp_path / "x.db")
    await db.open(ALL)
    await db.insert_many("entries", seed(datetime.now(UTC)))
    await db.close()
    from server.store import sqlite_reports

    grid = build_grid(date(2026, 3, 27), date(2026, 4, 20), ZoneInfo("Europe/Warsaw"))
    rng = EntryRange("a", grid, now=0)
    conn = sqlite3.connect(tmp_path / "x.db")
    try:
        for keys in (("task",), ("user", "day")):
            sql, params = sqlite_reports.totals_sql(rng, keys)
            plan = " | ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert f"INDEX {sqlite_reports.START_INDEX}" in plan, plan
            assert "INDEX ix_entries_account_id_end_start_start_s_end_s_user_id_task_id" in plan, (
                plan
            )
            assert "SCAN entries" not in plan, plan
    finally:
        conn.close()


async def test_indexes_are_added_to_an_existing_database(database_url: str) -> None:
    # A database made before the report indexes existed gets them on the next start.
    older = [
        CollectionSpec(
            s.name,
            s.fields,
            tuple(i for i in s.indexes if "end" not in i.fields) if s is ENTRIES else s.indexes,
        )
        for s in ALL
    ]
    settings = make_settings(database_url)
    from server.store.factory import make_backend

    first = make_backend(settings)
    await first.open(older)
    await first.insert_many("entries", seed(datetime.now(UTC)))
    await first.close()
    second = await open_backend(settings)
    try:
        names = await _entry_indexes(second)
        assert "ix_account_id_start_user_id_task_id" in names or (
            "ix_entries_account_id_start_start_s_end_s_user_id_task_id" in names
        )
        grid = build_grid(date(2026, 3, 27), date(2026, 4, 20), ZoneInfo("Europe/Warsaw"))
        assert dict(await second.entry_totals(EntryRange("a", grid, now=0), ()))[()] > 0
    finally:
        await second.close()


async def _entry_indexes(db: Backend) -> set[str]:
    if isinstance(db, SQLiteBackend):
        conn = db._conn
        assert conn is not None
        rows = await db._run(
            lambda c: c.execute(
                "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='entries'"
            ).fetchall()
        )
        return {r[0] for r in rows}
    from server.store.mongo import MongoBackend

    assert isinstance(db, MongoBackend)
    cursor = await db._db["entries"].list_indexes()
    return {ix["name"] async for ix in cursor}
