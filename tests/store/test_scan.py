"""Backend.scan: streamed, projected reads (the sync's per-item index and the task tree),
on SQLite and on MongoDB over the wire."""

from __future__ import annotations

from server.store.base import Backend
from tests.store.test_contract import task


async def test_scan_streams_projected_rows_in_batches(db: Backend) -> None:
    docs = [task(i, keywords=["k"] if i % 2 else [], sync_hash=f"{i:x}") for i in range(7)]
    docs[3].pop("sync_hash")
    await db.insert_many("tasks", [*docs, task(99, account_id="other")])
    batches = [
        rows
        async for rows in db.scan(
            "tasks", {"account_id": "a1"}, ("name", "keywords", "sync_hash", "archived"), batch=3
        )
    ]
    assert [len(b) for b in batches] == [3, 3, 1]
    rows = sorted(row for b in batches for row in b)
    assert rows[1] == ("t001", "Task 1", ["k"], "1", False)
    assert rows[3] == ("t003", "Task 3", ["k"], None, False)  # missing field -> None
    assert [r[0] for r in rows] == [f"t{i:03d}" for i in range(7)]


async def test_scan_of_nothing_yields_nothing(db: Backend) -> None:
    assert [rows async for rows in db.scan("tasks", {"account_id": "none"}, ("name",))] == []
