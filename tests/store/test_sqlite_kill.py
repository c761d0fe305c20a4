"""An acknowledged SQLite write survives SIGKILL of the process, also when it was
committed in a batch with others (group commit) or answered with them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT

# Sixteen concurrent writers, each inserting a task and then renaming it, and printing
# every write once the store has answered it.
WRITERS = """
import asyncio, itertools, sys
from pathlib import Path
from server.store.specs import ALL
from server.store.sqlite import SQLiteBackend

async def main():
    db = SQLiteBackend(Path(sys.argv[1]))
    await db.open(ALL)
    print("open", flush=True)

    async def writer(w):
        for i in itertools.count():
            tid = f"w{w}-{i}"
            doc = {"_id": tid, "account_id": "a", "parent_id": None, "name": "new",
                   "imported": False, "archived": False, "removed": False}
            await db.insert("tasks", doc)
            print("insert", tid, flush=True)
            await db.update_one("tasks", {"_id": tid}, {"name": "renamed"})
            print("rename", tid, flush=True)

    await asyncio.gather(*(writer(w) for w in range(16)))

asyncio.run(main())
"""


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "kill.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITERS, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acknowledged: list[tuple[str, str]] = []
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout.readline().strip() == "open"
        while len(acknowledged) < 600 and time.monotonic() < deadline:
            kind, tid = proc.stdout.readline().split()
            acknowledged.append((kind, tid))
        os.kill(proc.pid, signal.SIGKILL)
        # What was printed before the kill was acknowledged too; a last line the kill cut
        # short (no newline: its print had not finished) was not.
        for line in proc.stdout:
            if line.endswith("\n") and line.strip():
                kind, tid = line.split()
                acknowledged.append((kind, tid))
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 600
    print(f"{len(acknowledged)} acknowledged writes checked")
    conn = sqlite3.connect(path)
    try:
        names = dict(conn.execute('SELECT _id, json_extract(doc, "$.name") FROM tasks'))
    finally:
        conn.close()
    for kind, tid in acknowledged:
        assert tid in names, f"acknowledged {kind} of {tid} was lost"
        if kind == "rename":
            assert names[tid] == "renamed", f"acknowledged rename of {tid} was lost"
