"""Crash safety: timer and manual-entry traffic, SIGKILL of the server at random moments.

Each cycle starts ``python -m server`` on the same database (SQLite file, or MongoDB over
the wire with ``--backend mongo``), lets several users start and stop timers (each with an
``Idempotency-Key``) and add manual entries, and kills the server with SIGKILL at a
random moment while requests are in flight. After the restart, every start or stop whose
answer was lost is retried with the same key - it must return what was done or do it,
never 409. At the end, through the API:

* every acknowledged write is present (entries with the acknowledged start / end),
* no acknowledged stop was reverted (a stopped entry keeps its acknowledged end),
* at most one running entry per user, no overlapping entries of one user,
* no answer was a 5xx.

    .venv/bin/python -m bench.crash_safety --cycles 50
    .venv/bin/python -m bench.crash_safety --backend mongo --cycles 10

tests/api/test_crash_safety.py runs a short version on both stores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if not __package__:  # run as bench/crash_safety.py rather than python -m bench.crash_safety
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

import aiohttp

from bench._common import (
    ADMIN_EMAIL,
    MONGO_PYTHON,
    BenchError,
    call,
    interrupt_on_signals,
    mongo_wire,
    print_table,
    tasktimer_server,
    with_database,
)

PASSWORD = "crash-user-password"


@dataclass
class Pending:
    """A start or stop whose answer was lost, to be retried with the same key."""

    user: int
    kind: str  # "start" | "stop"
    body: dict[str, Any]
    key: str


@dataclass
class Ledger:
    """What the server acknowledged, and what went wrong on the way."""

    requests: int = 0
    acknowledged: int = 0
    # entry id -> (user, start, end or None): end None means "acknowledged as running".
    entries: dict[str, tuple[int, str, str | None]] = field(default_factory=dict)
    stops: dict[str, str] = field(default_factory=dict)  # entry id -> acknowledged end
    lost_answers: int = 0
    retried: int = 0
    retry_conflicts: int = 0
    server_errors: list[str] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)

    def ack_entry(self, user: int, entry: dict[str, Any]) -> None:
        self.entries.setdefault(entry["id"], (user, entry["start"], entry["end"]))
        if entry["end"] is not None:
            self.stops.setdefault(entry["id"], entry["end"])


@dataclass
class Result:
    backend: str
    cycles: int
    users: int
    requests: int
    acknowledged: int
    lost_answers: int
    retried: int
    retry_conflicts: int
    missing: int
    reverted_stops: int
    changed_entries: int
    double_running: int
    overlaps: int
    server_errors: int
    seconds: float
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class Traffic:
    def __init__(self, ledger: Ledger, tokens: list[str], task_ids: list[str], seed: int):
        self.ledger = ledger
        self.tokens = tokens
        self.task_ids = task_ids
        self.rng = random.Random(seed)
        # Manual entries go to a private, ever later slot per user in 2025 (no overlap
        # with timer entries, which run now).
        self.slots = [0] * len(tokens)

    async def send(
        self,
        s: aiohttp.ClientSession,
        base: str,
        user: int,
        path: str,
        body: dict[str, Any],
        key: str | None,
    ) -> tuple[int, Any] | None:
        """One request; (status, answer) or None when the answer was lost."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        if key:
            headers["Idempotency-Key"] = key
        self.ledger.requests += 1
        try:
            async with s.post(f"{base}{path}", json=body, headers=headers) as resp:
                data = await resp.json(content_type=None)
                if resp.status >= 500:
                    self.ledger.server_errors.append(f"{path} {resp.status} {data}")
                return resp.status, data
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return None

    def record(self, user: int, kind: str, status: int, data: Any) -> None:
        ledger = self.ledger
        if kind == "start" and status == 201:
            ledger.acknowledged += 1
            ledger.ack_entry(user, data["running"])
            if data.get("stopped"):
                ledger.ack_entry(user, data["stopped"])
        elif kind == "stop" and status == 200:
            ledger.acknowledged += 1
            if data.get("stopped"):
                ledger.ack_entry(user, data["stopped"])
        elif kind == "entry" and status == 201:
            ledger.acknowledged += 1
            ledger.ack_entry(user, data)

    async def user_loop(
        self, s: aiohttp.ClientSession, base: str, user: int, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            roll = self.rng.random()
            key: str | None = None
            if roll < 0.5:
                kind, path, key = "start", "/api/v1/timer/start", secrets.token_hex(8)
                body: dict[str, Any] = {"task_id": self.rng.choice(self.task_ids)}
            elif roll < 0.85:
                kind, path, key = "stop", "/api/v1/timer/stop", secrets.token_hex(8)
                body = {}
            else:
                kind, path = "entry", "/api/v1/entries"
                self.slots[user] += 1
                minute = self.slots[user]
                start = 1735689600 + user * 10_000_000 + minute * 120  # 2025-01-01 onwards
                body = {
                    "task_id": self.rng.choice(self.task_ids),
                    "start": _iso(start),
                    "end": _iso(start + 60),
                }
            answer = await self.send(s, base, user, path, body, key)
            if answer is None:
                self.ledger.lost_answers += 1
                if key is not None:
                    self.ledger.pending.append(Pending(user, kind, body, key))
                return  # the server is gone: this user waits for the next cycle
            self.record(user, kind, *answer)

    async def retry_pending(self, s: aiohttp.ClientSession, base: str) -> None:
        pending, self.ledger.pending = self.ledger.pending, []
        for item in pending:
            path = "/api/v1/timer/start" if item.kind == "start" else "/api/v1/timer/stop"
            answer = await self.send(s, base, item.user, path, item.body, item.key)
            if answer is None:
                self.ledger.pending.append(item)
                continue
            status, data = answer
            self.ledger.retried += 1
            if status == 409:
                self.ledger.retry_conflicts += 1
            self.record(item.user, item.kind, status, data)


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@contextlib.contextmanager
def database(backend: str, workdir: Path, url: str | None) -> Iterator[str]:
    if url:
        yield url
    elif backend == "sqlite":
        yield f"sqlite:///{workdir / 'crash.db'}"
    else:
        with mongo_wire(MONGO_PYTHON, workdir, 60) as uri:
            yield with_database(uri, f"crash_{secrets.token_hex(4)}")


async def setup(s: aiohttp.ClientSession, base: str, password: str, users: int) -> Any:
    admin = (
        await call(
            s,
            "POST",
            f"{base}/api/v1/auth/login",
            200,
            body={"email": ADMIN_EMAIL, "password": password},
        )
    )["token"]
    project = await call(s, "POST", f"{base}/api/v1/tasks", 201, admin, {"name": "Crash"})
    task_ids = []
    for name in ("A", "B"):
        task = await call(
            s,
            "POST",
            f"{base}/api/v1/tasks",
            201,
            admin,
            {"name": name, "parent_id": project["id"]},
        )
        task_ids.append(task["id"])
    tokens, user_ids = [], []
    for i in range(users):
        user = await call(
            s,
            "POST",
            f"{base}/api/v1/users",
            201,
            admin,
            {"email": f"crash{i}@example.com", "name": f"U{i}", "password": PASSWORD},
        )
        await call(
            s,
            "PUT",
            f"{base}/api/v1/tasks/{project['id']}/members/{user['id']}",
            200,
            admin,
            {"role": "regular"},
        )
        login = await call(
            s,
            "POST",
            f"{base}/api/v1/auth/login",
            200,
            body={"email": f"crash{i}@example.com", "password": PASSWORD},
        )
        tokens.append(login["token"])
        user_ids.append(user["id"])
    return admin, tokens, user_ids, task_ids


async def entries_of(s: aiohttp.ClientSession, base: str, admin: str, user_id: str) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        url = f"{base}/api/v1/entries?user_id={user_id}&limit=500"
        page = await call(s, "GET", url + (f"&cursor={cursor}" if cursor else ""), 200, admin)
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def verify(
    s: aiohttp.ClientSession, base: str, admin: str, user_ids: list[str], ledger: Ledger
) -> dict[str, Any]:
    stored: dict[str, Any] = {}
    running = overlaps = 0
    problems: list[str] = []
    for user_id in user_ids:
        items = sorted(await entries_of(s, base, admin, user_id), key=lambda e: e["start"])
        stored.update({e["id"]: e for e in items})
        running_now = [e for e in items if e["end"] is None]
        if len(running_now) > 1:
            running += 1
            problems.append(f"user {user_id}: {len(running_now)} running entries")
        for a, b in itertools.pairwise(items):
            if (a["end"] or "9999") > b["start"]:
                overlaps += 1
                problems.append(f"overlap {a['id']} / {b['id']}")
    missing = [eid for eid in ledger.entries if eid not in stored]
    reverted = [
        eid for eid, end in ledger.stops.items() if eid in stored and stored[eid]["end"] != end
    ]
    changed = [
        eid
        for eid, (_, start, _) in ledger.entries.items()
        if eid in stored and stored[eid]["start"] != start
    ]
    problems += [f"acknowledged entry {e} is missing" for e in missing]
    problems += [f"acknowledged stop of {e} was reverted or changed" for e in reverted]
    problems += [f"acknowledged start of {e} changed" for e in changed]
    return {
        "missing": len(missing),
        "reverted": len(reverted),
        "changed": len(changed),
        "running": running,
        "overlaps": overlaps,
        "problems": problems,
    }


async def run(
    backend: str,
    cycles: int,
    users: int,
    *,
    seed: int = 1,
    database_url: str | None = None,
    max_uptime_s: float = 1.5,
    python: str = sys.executable,
) -> Result:
    rng = random.Random(seed)
    ledger = Ledger()
    password = secrets.token_urlsafe(12)
    started = time.monotonic()
    env = {
        "TT_PASSWORD_TIME_COST": "1",
        "TT_PASSWORD_MEMORY_KIB": "1024",
        "TT_SECRET_KEY": secrets.token_urlsafe(32),
    }
    with tempfile.TemporaryDirectory(prefix="tt-crash-") as tmp:
        workdir = Path(tmp)
        with database(backend, workdir, database_url) as url:
            timeout = aiohttp.ClientTimeout(total=20)
            async with aiohttp.ClientSession(timeout=timeout) as s:
                with tasktimer_server(python, url, workdir, password, 60, extra_env=env) as srv:
                    admin, tokens, user_ids, task_ids = await setup(s, srv.base, password, users)
                traffic = Traffic(ledger, tokens, task_ids, seed)
                for _ in range(cycles):
                    with tasktimer_server(python, url, workdir, password, 60, extra_env=env) as srv:
                        await traffic.retry_pending(s, srv.base)
                        stop = asyncio.Event()
                        loops = [
                            asyncio.create_task(traffic.user_loop(s, srv.base, u, stop))
                            for u in range(users)
                        ]
                        await asyncio.sleep(rng.uniform(0.05, max_uptime_s))
                        os.kill(srv.pid, signal.SIGKILL)
                        stop.set()
                        await asyncio.gather(*loops)
                with tasktimer_server(python, url, workdir, password, 60, extra_env=env) as srv:
                    await traffic.retry_pending(s, srv.base)
                    checked = await verify(s, srv.base, admin, user_ids, ledger)
    problems = list(checked["problems"])
    problems += ledger.server_errors
    if ledger.retry_conflicts:
        problems.append(f"{ledger.retry_conflicts} retries after a crash answered 409")
    return Result(
        backend=backend,
        cycles=cycles,
        users=users,
        requests=ledger.requests,
        acknowledged=ledger.acknowledged,
        lost_answers=ledger.lost_answers,
        retried=ledger.retried,
        retry_conflicts=ledger.retry_conflicts,
        missing=checked["missing"],
        reverted_stops=checked["reverted"],
        changed_entries=checked["changed"],
        double_running=checked["running"],
        overlaps=checked["overlaps"],
        server_errors=len(ledger.server_errors),
        seconds=time.monotonic() - started,
        problems=problems,
    )


def print_results(results: list[Result]) -> None:
    head = [
        "backend",
        "cycles",
        "users",
        "requests",
        "acknowledged",
        "lost answers",
        "retried",
        "409 on retry",
        "missing",
        "stops reverted",
        "starts changed",
        ">1 running",
        "overlaps",
        "5xx",
        "seconds",
    ]
    rows = [
        [
            r.backend,
            str(r.cycles),
            str(r.users),
            str(r.requests),
            str(r.acknowledged),
            str(r.lost_answers),
            str(r.retried),
            str(r.retry_conflicts),
            str(r.missing),
            str(r.reverted_stops),
            str(r.changed_entries),
            str(r.double_running),
            str(r.overlaps),
            str(r.server_errors),
            f"{r.seconds:.0f}",
        ]
        for r in results
    ]
    print_table(head, rows, set(range(1, len(head))))
    for r in results:
        for problem in r.problems[:20]:
            print(f"  {r.backend}: {problem}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "mongo"), default="sqlite")
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--max-uptime",
        type=float,
        default=1.5,
        help="longest time a server lives before it is killed (seconds)",
    )
    p.add_argument("--python", default=sys.executable, help="interpreter for python -m server")
    args = p.parse_args(argv)
    interrupt_on_signals()
    print(
        f"{args.cycles} SIGKILL cycles on {args.backend}, {args.users} users "
        f"(about {args.cycles * 3} s)",
        flush=True,
    )
    try:
        result = asyncio.run(
            run(
                args.backend,
                args.cycles,
                args.users,
                seed=args.seed,
                max_uptime_s=args.max_uptime,
                python=args.python,
            )
        )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_results([result])
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
