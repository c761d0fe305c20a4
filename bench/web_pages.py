"""Web page timings for a big account: time to first byte of the timesheet (``/``) and of
task searches for a user who sees 100,000 tasks, next to one who sees ten.

The account is seeded before the server starts, in this process, through the project's
own services (users, passwords, entries) and store adapter (the 100,000 tasks in bulk —
going through ``POST /api/v1/tasks`` one by one would only measure that endpoint). Then
``python -m server`` runs on a free loopback port on that database and every measured
request goes through HTTP: the users sign in through the sign-in form (session cookie),
open the timesheet and search the way the page's script does
(``GET /api/v1/tasks?q=…&trackable=true&limit=20``) and the way the page without scripts
does (``GET /?task-search=…``).

Requests are sequential (this is latency, not load). The first request of each kind after
start-up is reported apart (``cold``): it builds the account's task tree and the search
order, once per tree version.

    .venv/bin/python bench/web_pages.py                    # SQLite, 100,000 tasks
    .venv/bin/python bench/web_pages.py --backend mongo    # mongoeco wire server, 2,000 tasks
    .venv/bin/python bench/web_pages.py --tasks 20000 --repeat 50 --json web.json
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if not __package__:  # run as bench/web_pages.py rather than python -m bench.web_pages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench._common import (
    ADMIN_EMAIL,
    BenchError,
    bench_database,
    call,
    interrupt_on_signals,
    print_table,
    tasktimer_server,
    write_json,
)

PASSWORD = "bench-password-1"
BIG_EMAIL = "sees-everything@example.com"
SMALL_EMAIL = "sees-ten@example.com"
PROJECTS = 100
ENTRIES_PER_DAY = 4
STARTUP_TIMEOUT_S = 120


async def seed(database_url: str, secret: str, tasks: int) -> dict[str, str]:
    """The admin, a user with a role on every project (sees all tasks), a user with a role
    on one ten-task project, and a week of entries for each."""
    from server.domain import clock
    from server.services.container import build_services
    from server.services.ids import new_id
    from server.services.principal import Principal
    from server.services.tasks import manual_task_doc
    from server.settings import Settings
    from server.store.factory import open_backend

    settings = Settings(
        database_url=database_url,
        secret_key=secret,
        password_time_cost=1,
        password_memory_kib=1024,
        scheduler=False,
    )
    backend = await open_backend(settings)
    try:
        svc = build_services(settings, backend)
        admin_doc = await svc.accounts.create_account_with_admin(ADMIN_EMAIL, PASSWORD)
        admin = Principal.of_user(admin_doc)
        big_doc, _ = await svc.accounts.create_user(admin, BIG_EMAIL, "Big", PASSWORD, "user")
        small_doc, _ = await svc.accounts.create_user(admin, SMALL_EMAIL, "Small", PASSWORD, "user")
        account = admin.account_id
        now = clock.now_iso()

        def task(name: str, parent: str | None) -> dict[str, Any]:
            return manual_task_doc(new_id(), account, parent, name, now)

        docs: list[dict[str, Any]] = []
        members: list[dict[str, Any]] = []
        per_project = max(1, tasks // PROJECTS)
        for p in range(PROJECTS):
            root = task(f"Client {p:03d}", None)
            docs.append(root)
            members.append(_member(account, root["_id"], big_doc["_id"], new_id()))
            docs += [
                task(f"Task {p:03d}-{i:04d} design", root["_id"]) for i in range(per_project - 1)
            ]
        small_root = task("Small project", None)
        docs.append(small_root)
        docs += [task(f"Small task {i}", small_root["_id"]) for i in range(9)]
        for user in (big_doc, small_doc):
            members.append(_member(account, small_root["_id"], user["_id"], new_id()))
        # Modest batches: the mongoeco test server cancels very large inserts.
        for start in range(0, len(docs), 500):
            await backend.insert_many("tasks", docs[start : start + 500])
        await backend.insert_many("members", members)
        await svc.tasks.bump(account)

        # Entries on each of the last seven days for each user.
        small_ids = [d["_id"] for d in docs[-9:]]
        # Ends at the latest 90 minutes before now (entries may not end in the future).
        today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        for user in (big_doc, small_doc):
            principal = Principal.of_user(user)
            for day in range(7):
                base = today - timedelta(days=day)
                for n in range(ENTRIES_PER_DAY if day else 1):
                    start = base - timedelta(hours=n * 2)
                    await svc.timer.create_entry(
                        principal,
                        task_id=small_ids[(day + n) % len(small_ids)],
                        start=clock.iso(start),
                        end=clock.iso(start + timedelta(minutes=90)),
                        note=f"entry {n}",
                        tags=["bench"],
                        created_with="bench",
                    )
        return {"account": account, "tasks": str(len(docs))}
    finally:
        await backend.close()


def _member(account: str, task_id: str, user_id: str, member_id: str) -> dict[str, Any]:
    return {
        "_id": member_id,
        "account_id": account,
        "task_id": task_id,
        "user_id": user_id,
        "role": "regular",
        "removed": False,
        "origin": "manual",
    }


async def sign_in(base: str, email: str) -> aiohttp.ClientSession:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    await call(
        session,
        "POST",
        f"{base}/sign-in",
        303,
        body={"email": email, "password": PASSWORD},
        form=True,
        allow_redirects=False,
    )
    return session


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    """(time to first byte, total) in milliseconds; the answer must be 200."""
    started = time.perf_counter()
    async with session.get(url, allow_redirects=False) as resp:
        first = time.perf_counter()
        await resp.read()
        if resp.status != 200:
            raise BenchError(f"GET {url} answered {resp.status}")
    done = time.perf_counter()
    return (first - started) * 1000, (done - started) * 1000


async def measure(base: str, repeat: int, tasks: int) -> list[dict[str, Any]]:
    rare = f"task%20042-{max(0, tasks // PROJECTS - 2):04d}%20"
    cases = [
        ("timesheet /", "/"),
        ("search API, common term", "/api/v1/tasks?q=design&trackable=true&limit=20"),
        # One task matches: the last one of project 42.
        ("search API, rare term", f"/api/v1/tasks?q={rare}&trackable=true&limit=20"),
        ("search API, no match", "/api/v1/tasks?q=nothing-like-this&trackable=true&limit=20"),
        ("search page (no script)", "/?task-search=design"),
        ("tasks page /tasks", "/tasks"),
        ("tasks page search (no script)", "/tasks?task-search=design"),
    ]
    rows = []
    sessions = {
        who: await sign_in(base, email) for who, email in (("all", BIG_EMAIL), ("ten", SMALL_EMAIL))
    }
    try:
        for label, path in cases:
            for who, session in sessions.items():
                cold = await timed(session, base + path)
                samples = [await timed(session, base + path) for _ in range(repeat)]
                ttfb = sorted(s[0] for s in samples)
                rows.append(
                    {
                        "request": label,
                        "user sees": f"{tasks:,} tasks" if who == "all" else "10 tasks",
                        "cold_ttfb_ms": round(cold[0], 1),
                        "ttfb_median_ms": round(statistics.median(ttfb), 2),
                        "ttfb_p95_ms": round(ttfb[max(0, int(len(ttfb) * 0.95) - 1)], 2),
                        "total_median_ms": round(statistics.median(s[1] for s in samples), 2),
                        "n": repeat,
                    }
                )
    finally:
        for session in sessions.values():
            await session.close()
    return rows


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="tt-bench-web-") as tmp:
        workdir = Path(tmp)
        secret = secrets.token_urlsafe(32)
        with bench_database(args.backend, workdir, "web", STARTUP_TIMEOUT_S) as url:
            started = time.perf_counter()
            seeded = asyncio.run(seed(url, secret, args.tasks))
            print(
                f"  seeded {seeded['tasks']} tasks in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            with tasktimer_server(
                sys.executable,
                url,
                workdir,
                PASSWORD,
                STARTUP_TIMEOUT_S,
                {"TT_SECRET_KEY": secret},
            ) as server:
                return asyncio.run(measure(server.base, args.repeat, int(seeded["tasks"]) - 10))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "mongo"), default="sqlite")
    p.add_argument(
        "--tasks",
        type=int,
        help="tasks the big user sees (default 100,000; 2,000 with --backend mongo: the "
        "mongoeco test server is slow to load in bulk)",
    )
    p.add_argument("--repeat", type=int, default=30, help="measured requests per case")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.tasks is None:
        args.tasks = 2_000 if args.backend == "mongo" else 100_000
    if args.tasks < PROJECTS or args.repeat < 1:
        p.error(f"--tasks must be at least {PROJECTS} and --repeat at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_signals()
    print(
        f"Web page benchmark: backend {args.backend}, {args.tasks:,} tasks, {args.repeat} "
        "requests per case; about half a minute for 100,000 tasks on SQLite.",
        flush=True,
    )
    try:
        rows = run(args)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; child processes stopped", file=sys.stderr)
        return 130
    print()
    head = [
        "request",
        "user sees",
        "cold ttfb ms",
        "ttfb median ms",
        "ttfb p95 ms",
        "total median ms",
    ]
    print_table(
        head,
        [
            [
                r["request"],
                r["user sees"],
                f"{r['cold_ttfb_ms']:.1f}",
                f"{r['ttfb_median_ms']:.2f}",
                f"{r['ttfb_p95_ms']:.2f}",
                f"{r['total_median_ms']:.2f}",
            ]
            for r in rows
        ],
        {2, 3, 4, 5},
    )
    if args.json:
        write_json(args.json, {"backend": args.backend, "tasks": args.tasks, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
