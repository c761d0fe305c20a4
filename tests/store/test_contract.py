"""The store contract: every test here runs on SQLite and on MongoDB over the wire."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from server.store.base import Backend, DuplicateKey
from server.store.specs import ALL
from server.store.sqlite import SQLiteBackend


def task(i: int, **extra: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "_id": f"t{i:03d}",
        "account_id": "a1",
        "parent_id": None,
        "name": f"Task {i}",
        "imported": False,
        "archived": False,
        "removed": False,
    }
    doc.update(extra)
    return doc


async def test_insert_find_roundtrip_keeps_nested_values(db: Backend) -> None:
    doc = task(1, keywords=["a", "b"], meta={"x": [1, 2]})
    await db.insert("tasks", doc)
    assert await db.find_one("tasks", {"_id": "t001"}) == doc
    assert await db.find_one("tasks", {"_id": "nope"}) is None


async def test_primary_key_is_unique(db: Backend) -> None:
    await db.insert("tasks", task(1))
    with pytest.raises(DuplicateKey):
        await db.insert("tasks", task(1))


async def test_filters_sort_skip_limit(db: Backend) -> None:
    await db.insert_many(
        "tasks",
        [task(i, parent_id="p" if i % 2 else None, archived=i > 3) for i in range(1, 7)],
    )
    ids = lambda docs: [d["_id"] for d in docs]  # noqa: E731
    assert ids(await db.find("tasks", {"parent_id": None}, sort=[("_id", 1)])) == [
        "t002",
        "t004",
        "t006",
    ]
    assert ids(await db.find("tasks", {"parent_id": {"$ne": None}}, sort=[("_id", 1)])) == [
        "t001",
        "t003",
        "t005",
    ]
    assert ids(
        await db.find("tasks", {"_id": {"$in": ["t002", "t005", "zz"]}}, sort=[("_id", -1)])
    ) == ["t005", "t002"]
    assert ids(
        await db.find("tasks", {"_id": {"$nin": ["t001"]}, "archived": False}, sort=[("_id", 1)])
    ) == ["t002", "t003"]
    assert ids(
        await db.find("tasks", {"_id": {"$gte": "t002", "$lt": "t005"}}, sort=[("_id", 1)])
    ) == ["t002", "t003", "t004"]
    assert ids(await db.find("tasks", {}, sort=[("_id", 1)], skip=2, limit=2)) == ["t003", "t004"]
    assert await db.find("tasks", {"_id": {"$in": []}}) == []
    assert await db.count("tasks", {"archived": True}) == 3
    assert await db.count("tasks", {"parent_id": {"$ne": "p"}}) == 3


async def test_partial_unique_index_only_covers_matching_documents(db: Backend) -> None:
    running = {"account_id": "a1", "user_id": "u1", "start": "2026", "running": True}
    await db.insert("entries", {"_id": "e1", **running})
    with pytest.raises(DuplicateKey):
        await db.insert("entries", {"_id": "e2", **running})
    # Stopped entries of the same user are not limited.
    await db.insert("entries", {"_id": "e3", **running, "running": False})
    await db.insert("entries", {"_id": "e4", **running, "running": False})
    # Another user may run a timer at the same time.
    await db.insert("entries", {"_id": "e5", **running, "user_id": "u2"})
    # Imported tasks are unique per external id; manual ones are not keyed at all.
    src = {"imported": True, "source_service": "asana", "source_external_id": "42"}
    await db.insert("tasks", task(1, **src))
    with pytest.raises(DuplicateKey):
        await db.insert("tasks", task(2, **src))
    await db.insert("tasks", task(3, **src, account_id="a2"))


async def test_update_one_is_conditional_and_returns_before_or_after(db: Backend) -> None:
    await db.insert(
        "entries", {"_id": "e1", "account_id": "a", "user_id": "u", "start": "1", "running": True}
    )
    before = await db.update_one(
        "entries",
        {"_id": "e1", "running": True},
        {"running": False, "end": "2"},
        return_doc="before",
    )
    assert before is not None and before["running"] is True
    assert await db.update_one("entries", {"_id": "e1", "running": True}, {"end": "3"}) is None
    after = await db.find_one("entries", {"_id": "e1"})
    assert after is not None and after["end"] == "2" and after["running"] is False
    # The declared column follows the document: the running index is free again.
    await db.insert(
        "entries", {"_id": "e2", "account_id": "a", "user_id": "u", "start": "4", "running": True}
    )


async def test_update_one_increments_and_detects_unique_violations(db: Backend) -> None:
    await db.insert("accounts", {"_id": "a1", "name": "A", "tree_version": 0})
    for _ in range(3):
        await db.update_one("accounts", {"_id": "a1"}, inc={"tree_version": 1})
    account = await db.find_one("accounts", {"_id": "a1"})
    assert account is not None and account["tree_version"] == 3
    await db.insert("entries", {"_id": "e1", "account_id": "a", "user_id": "u", "running": True})
    await db.insert("entries", {"_id": "e2", "account_id": "a", "user_id": "u", "running": False})
    with pytest.raises(DuplicateKey):
        await db.update_one("entries", {"_id": "e2"}, {"running": True})


async def test_concurrent_conditional_updates_have_one_winner(db: Backend) -> None:
    await db.insert("syncs", {"_id": "s1", "account_id": "a", "state": "queued"})
    results = await asyncio.gather(
        *(
            db.update_one("syncs", {"_id": "s1", "state": "queued"}, {"state": f"p{i}"})
            for i in range(8)
        )
    )
    assert sum(r is not None for r in results) == 1


async def test_update_many_bulk_set_and_delete(db: Backend) -> None:
    await db.insert_many("tasks", [task(i) for i in range(1, 6)])
    assert (
        await db.update_many("tasks", {"_id": {"$in": ["t001", "t002"]}}, {"archived": True}) == 2
    )
    await db.bulk_set(
        "tasks", [("t003", {"name": "Three", "removed": True}), ("t004", {"name": "Four"})]
    )
    docs = {d["_id"]: d for d in await db.find("tasks", {})}
    assert docs["t001"]["archived"] and docs["t002"]["archived"]
    assert docs["t003"]["name"] == "Three" and docs["t003"]["removed"] is True
    assert await db.count("tasks", {"removed": True}) == 1
    assert docs["t004"]["name"] == "Four" and docs["t005"]["name"] == "Task 5"
    assert await db.delete_many("tasks", {"archived": True}) == 2
    assert await db.count("tasks", {}) == 3


async def test_meta_values(db: Backend) -> None:
    assert await db.meta_get("missing") is None
    await db.meta_set("k", {"a": 1})
    await db.meta_set("k", {"a": 2})
    assert await db.meta_get("k") == {"a": 2}


async def test_unknown_fields_are_programming_errors_on_sqlite(tmp_path: Path) -> None:
    backend = SQLiteBackend(tmp_path / "x.db")
    await backend.open(ALL)
    try:
        with pytest.raises(ValueError):
            await backend.find("tasks", {"not_a_column": 1})
    finally:
        await backend.close()


async def test_sqlite_plans_the_running_entry_lookup_on_the_partial_index(
    tmp_path: Path,
) -> None:
    """Every timer start and stop looks up the running entry: the statement must use the
    partial unique index as prepared, not be re-planned at each execution."""
    backend = SQLiteBackend(tmp_path / "plan.db")
    await backend.open(ALL)
    try:
        flt = {"account_id": "a", "user_id": "u", "running": True}
        sql, params = backend._select("entries", flt, None, 1)
        assert len(params) == 2  # the boolean is part of the statement's text
        plan = await backend._run(
            lambda conn: conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        )
        assert "ix_entries_account_id_user_id_p_running" in " ".join(str(r) for r in plan)
        await backend.insert("entries", {"_id": "e1", **flt, "start": "1"})
        await backend.insert("entries", {"_id": "e2", **flt, "running": False, "start": "0"})
        assert [d["_id"] for d in await backend.find("entries", flt)] == ["e1"]
        assert [d["_id"] for d in await backend.find("entries", {"running": False})] == ["e2"]
    finally:
        await backend.close()


async def test_sqlite_batch_with_a_failing_job_keeps_the_others_once(tmp_path: Path) -> None:
    """A batch runs without savepoints until a job fails; then it is rolled back and run
    again job by job: the others' writes are kept exactly once, the failing one's not."""
    backend = SQLiteBackend(tmp_path / "batch.db")
    await backend.open(ALL)
    try:
        await backend.insert("tasks", task(0))
        sql = backend._insert_sql("tasks")

        def insert(i: int, **extra: object) -> Callable[[sqlite3.Connection], object]:
            row = backend._row("tasks", task(i, **extra))
            return lambda conn: conn.execute(sql, row).rowcount

        def failing(conn: sqlite3.Connection) -> None:
            conn.execute(sql, backend._row("tasks", task(4)))  # undone with the failure
            conn.execute(sql, backend._row("tasks", task(0)))

        jobs = [insert(1), failing, insert(2), insert(3, name="three")]
        outcomes = await backend._worker.run(lambda: backend._run_batch(jobs), transactional=False)
        assert [error is None for _, error in outcomes] == [True, False, True, True]
        assert isinstance(outcomes[1][1], DuplicateKey)
        ids = sorted(d["_id"] for d in await backend.find("tasks", {}))
        assert ids == ["t000", "t001", "t002", "t003"]
        # and without a failure, one transaction for all
        outcomes = await backend._worker.run(
            lambda: backend._run_batch([insert(5), insert(6)]), transactional=False
        )
        assert outcomes == [(1, None), (1, None)]
        assert await backend.count("tasks", {}) == 6
    finally:
        await backend.close()


async def test_sqlite_reopen_keeps_data_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "keep.db"
    first = SQLiteBackend(path)
    await first.open(ALL)
    await first.insert("tasks", task(1))
    await first.close()
    second = SQLiteBackend(path)
    await second.open(ALL)
    try:
        assert await second.find_one("tasks", {"_id": "t001"}) is not None
        assert await second.meta_get("schema_version") == 1
    finally:
        await second.close()


async def test_update_one_and_insert(db: Backend, backend_name: str) -> None:
    base = {"account_id": "a", "user_id": "u"}
    await db.insert("entries", {"_id": "e1", **base, "start": "1", "running": True})
    before = await db.update_one_and_insert(
        "entries",
        {**base, "running": True},
        {"running": False, "end": "2"},
        {"_id": "e2", **base, "start": "2", "running": True},
    )
    assert before is not None and before["_id"] == "e1" and before["running"] is True
    running = await db.find("entries", {**base, "running": True})
    assert [e["_id"] for e in running] == ["e2"]
    # Nothing to update: the insert still happens.
    assert (
        await db.update_one_and_insert(
            "entries", {**base, "start": "none"}, {"end": "x"}, {"_id": "e3", **base, "start": "3"}
        )
        is None
    )
    assert await db.find_one("entries", {"_id": "e3"}) is not None
    # A failing insert raises; on SQLite the update is undone with it.
    with pytest.raises(DuplicateKey):
        await db.update_one_and_insert(
            "entries", {"_id": "e3"}, {"end": "changed"}, {"_id": "e2", **base, "start": "4"}
        )
    if backend_name == "sqlite":
        e3 = await db.find_one("entries", {"_id": "e3"})
        assert e3 is not None and "end" not in e3


async def test_concurrent_writes_fail_alone(db: Backend) -> None:
    """Writes that arrive together (one SQLite transaction) succeed or fail one by one."""
    await db.insert("tasks", task(1))
    results = await asyncio.gather(
        db.insert("tasks", task(2)),
        db.insert("tasks", task(1)),
        db.update_one_and_insert("tasks", {"_id": "t002"}, {"name": "changed"}, task(1)),
        db.insert("tasks", task(3)),
        return_exceptions=True,
    )
    assert results[0] is None and results[3] is None
    assert isinstance(results[1], DuplicateKey) and isinstance(results[2], DuplicateKey)
    assert {d["_id"] for d in await db.find("tasks", {})} == {"t001", "t002", "t003"}


async def test_sum_durations_groups_whole_seconds_and_counts_open_ends_to_until(
    db: Backend,
) -> None:
    def entry(
        i: int, task_id: str, start: str, end: str | None, user: str = "u1"
    ) -> dict[str, object]:
        return {
            "_id": f"e{i:03d}",
            "account_id": "a1",
            "user_id": user,
            "task_id": task_id,
            "start": start,
            "end": end,
            "running": end is None,
        }

    await db.insert_many(
        "entries",
        [
            # 90.9 s: whole seconds per entry, truncated like an entry's duration_s.
            entry(1, "t1", "2026-03-01T10:00:00.100000Z", "2026-03-01T10:01:31.000000Z"),
            # Across midnight and a month end: 2 h exactly.
            entry(2, "t1", "2026-02-28T23:00:00.000000Z", "2026-03-01T01:00:00.000000Z"),
            # Sub-millisecond digits decide: 0.999999 s is 0, 1.000001 s is 1.
            entry(3, "t2", "2026-03-01T10:00:00.000001Z", "2026-03-01T10:00:01.000000Z"),
            entry(4, "t2", "2026-03-01T11:00:00.000000Z", "2026-03-01T11:00:01.000001Z"),
            # Open: counts up to `until` (5 min).
            entry(5, "t3", "2026-03-01T11:55:00.000000Z", None),
            # Filtered out by user.
            entry(6, "t1", "2026-03-01T09:00:00.000000Z", "2026-03-01T10:00:00.000000Z", "u2"),
        ],
    )
    totals = await db.sum_durations(
        "entries",
        {"account_id": "a1", "user_id": "u1", "task_id": {"$in": ["t1", "t2", "t3", "t9"]}},
        group_by="task_id",
        until="2026-03-01T12:00:00.000000Z",
    )
    assert totals == {"t1": 90 + 7200, "t2": 1, "t3": 300}
    assert (
        await db.sum_durations(
            "entries",
            {"account_id": "nobody"},
            group_by="task_id",
            until="2026-03-01T12:00:00.000000Z",
        )
        == {}
    )
