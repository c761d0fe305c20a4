"""Reports benchmark: a year of a team's time, summarised and exported by a real server.

The data is written straight into a fresh database through the store (the same
documents the services write; users through the account service), then ``python -m
server`` is started on it on a free loopback port. Everything measured goes through HTTP:

* ``GET /api/v1/reports/summary`` over the year (``tz=Europe/Warsaw``), ``group_by=task``
  and ``group_by=user,day``: p50 / p90 / max of ``--repeat`` sequential requests;
* ``GET /api/v1/reports/entries.csv`` and ``.xlsx`` for the year: time to the first and to
  the last byte, size, and the server's RSS growth while they stream (``VmHWM`` reset
  through ``/proc/<pid>/clear_refs`` before each download, minus ``VmRSS`` before it);
  the rows are checked to add up to the summary's ``total_s``;

The web app's page timings for a user who sees 100,000 tasks are ``bench/web_pages.py``.

    .venv/bin/python bench/reports.py                      # SQLite, 100,000 entries
    .venv/bin/python bench/reports.py --backend mongo      # mongoeco, 5,000 entries
    .venv/bin/python bench/reports.py --entries 20000 --json reports.json
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import random
import re
import secrets
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

if not __package__:  # run as bench/reports.py rather than python -m bench.reports
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench._common import (
    ADMIN_EMAIL,
    MONGO_PYTHON,
    BenchError,
    Server,
    bench_database,
    call,
    interrupt_on_signals,
    print_table,
    proc_memory,
    reset_peak,
    tasktimer_server,
    write_json,
)
from server.domain.clock import iso
from server.services.container import build_services
from server.services.principal import Principal
from server.services.tasks import manual_task_doc
from server.settings import Settings
from server.store.factory import open_backend

STARTUP_TIMEOUT_S = 120.0
SEED_BATCH = 1000  # documents per insert_many (the mongoeco emulator is slow with big ones)
REQUEST_TIMEOUT_S = 300.0
ZONE = "Europe/Warsaw"
USER_PASSWORD = "bench-user-password"
TAGS: list[list[str]] = [[], ["billable"], ["billable", "meeting"], ["internal"], ["review"]]

# Targets (SQLite, full size; see bench/README.md).
TARGET_SUMMARY_P50_MS = 100.0
TARGET_CSV_S = 3.0
TARGET_XLSX_S = 5.0
TARGET_RSS_GROWTH_MB = 30.0
FULL_SIZE = {"entries": 100_000, "users": 50, "tasks": 5_000}
MONGO_SIZE = {"entries": 5_000, "users": 10, "tasks": 1_000}


@dataclass
class Sizes:
    entries: int
    users: int
    tasks: int


@dataclass
class Seeded:
    account_id: str
    first: date
    last: date
    user_emails: list[str]
    seconds: float


@dataclass
class Row:
    name: str
    value: str
    target: str = ""
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# -- seeding ---------------------------------------------------------------------------


async def seed(database_url: str, sizes: Sizes, admin_password: str, rnd: random.Random) -> Seeded:
    """A fresh database: the admin, ``users`` users, a tree of ``tasks`` tasks (100
    projects under one root) with every user regular on the root, and ``entries``
    non-overlapping entries spread over the last 365 local days, each user's on 40 tasks."""
    started = time.perf_counter()
    settings = Settings(
        database_url=database_url,
        secret_key=secrets.token_urlsafe(32),
        # Cheap hashes for the seeded users only (the server verifies each hash with the
        # parameters stored in it).
        password_time_cost=1,
        password_memory_kib=1024,
        scheduler=False,
    )
    backend = await open_backend(settings)
    try:
        services = build_services(settings, backend)
        admin_doc = await services.accounts.create_account_with_admin(ADMIN_EMAIL, admin_password)
        admin = Principal.of_user(admin_doc)
        account_id = admin.account_id
        users = []
        for i in range(sizes.users):
            doc, _ = await services.accounts.create_user(
                admin, f"bench-user-{i:03d}@example.com", f"User {i:03d}", USER_PASSWORD, "user"
            )
            users.append(doc)
        now = datetime.now(UTC)
        stamp = iso(now)
        root = "t-root"
        projects = [f"t-p{p:03d}" for p in range(100)]
        per_project = max(10, -(-(sizes.tasks - 101) // 100))
        tasks: list[dict[str, Any]] = [manual_task_doc(root, account_id, None, "Bench", stamp)]
        for i, project in enumerate(projects):
            tasks.append(manual_task_doc(project, account_id, root, f"Project {i:03d}", stamp))
        leaves: list[str] = []
        for i, project in enumerate(projects):
            for j in range(per_project):
                leaf = f"t-{i:03d}-{j:05d}"
                leaves.append(leaf)
                tasks.append(
                    manual_task_doc(leaf, account_id, project, f"Task {i:03d}-{j:05d}", stamp)
                )
        for start in range(0, len(tasks), SEED_BATCH):
            await backend.insert_many("tasks", tasks[start : start + SEED_BATCH])
        await services.tasks.bump(account_id)
        for user in users:
            await services.tasks.set_member(admin, root, user["_id"], "regular")
        zone = ZoneInfo(ZONE)
        last = now.astimezone(zone).date()
        first = last - timedelta(days=364)
        begin = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
        span = (now - timedelta(hours=1) - begin).total_seconds()
        # Each user works on 40 tasks of the year (2,000 distinct tasks for 50 users).
        active = rnd.sample(leaves, min(len(leaves), sizes.users * 40))
        per_user = sizes.entries // sizes.users
        slot = span / per_user
        batch: list[dict[str, Any]] = []
        n = 0
        for u, user in enumerate(users):
            mine = active[u * 40 : (u + 1) * 40] or active
            for k in range(per_user):
                # One entry per slot: non-overlapping, some across local midnight.
                offset = rnd.uniform(0, slot * 0.5)
                length = rnd.uniform(slot * 0.05, slot * 0.45)
                start = begin + timedelta(seconds=k * slot + offset)
                end = start + timedelta(seconds=length)
                pending = rnd.random() < 0.01
                batch.append(
                    {
                        "_id": f"e-{u:03d}-{k:06d}",
                        "account_id": account_id,
                        "user_id": user["_id"],
                        "task_id": None if pending else rnd.choice(mine),
                        "pending_service": "asana" if pending else None,
                        "pending_external_id": str(9_000_000 + n) if pending else None,
                        "start": iso(start),
                        "end": iso(end),
                        "running": False,
                        "note": rnd.choice(["", "", "call with client", "=SUM(A1)", "review"]),
                        "tags": rnd.choice(TAGS),
                        "created_with": "bench",
                        "created_at": iso(end),
                    }
                )
                n += 1
                if len(batch) >= SEED_BATCH:
                    await backend.insert_many("entries", batch)
                    batch = []
        if batch:
            await backend.insert_many("entries", batch)
    finally:
        await backend.close()
    return Seeded(
        account_id=account_id,
        first=first,
        last=last,
        user_emails=[u["email"] for u in users],
        seconds=time.perf_counter() - started,
    )


# -- measuring -------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed(repeat: int, request: Callable[[], Awaitable[Any]]) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await request()
        times.append((time.perf_counter() - t0) * 1000)
    return times


@dataclass
class Download:
    first_byte_s: float
    total_s: float
    body: bytes
    rss_growth_mb: float
    peak_measured: bool


async def download(s: aiohttp.ClientSession, server: Server, url: str, token: str) -> Download:
    """One streamed download; the server's RSS before it and its peak during it."""
    before = proc_memory(server.pid)["rss_mb"]
    exact = reset_peak(server.pid)
    sampled = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal sampled
        while not done.is_set():
            sampled = max(sampled, proc_memory(server.pid)["rss_mb"])
            await asyncio.sleep(0.01)

    sampler = asyncio.create_task(sample())
    chunks: list[bytes] = []
    t0 = time.perf_counter()
    first = 0.0
    try:
        async with s.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            if resp.status != 200:
                raise BenchError(f"GET {url} answered {resp.status}: {(await resp.text())[:300]}")
            async for chunk in resp.content.iter_chunked(256 * 1024):
                if not first:
                    first = time.perf_counter() - t0
                chunks.append(chunk)
        total = time.perf_counter() - t0
    finally:
        done.set()
        await sampler
    peak = proc_memory(server.pid)["peak_mb"] if exact else sampled
    return Download(first, total, b"".join(chunks), max(0.0, peak - before), exact)


def csv_seconds(body: bytes) -> tuple[int, int]:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
    total = 0
    for row in rows[1:]:
        h, m, sec = (int(x) for x in row[4].split(":"))
        total += h * 3600 + m * 60 + sec
    return len(rows) - 1, total


_DURATION_CELL = re.compile(rb'<c r="E\d+" s="\d+"><v>([^<]+)</v>')


def xlsx_seconds(body: bytes) -> tuple[int, int]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml")
    values = [float(v) for v in _DURATION_CELL.findall(sheet)]
    return len(values), sum(round(v * 86400) for v in values)


async def measure(server: Server, seeded: Seeded, admin_password: str, args: Any) -> list[Row]:
    rows: list[Row] = []
    base = server.base
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(
        timeout=timeout, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as s:
        login = await call(
            s,
            "POST",
            f"{base}/api/v1/auth/login",
            200,
            body={"email": ADMIN_EMAIL, "password": admin_password},
        )
        token = login["token"]
        year = {"from": seeded.first.isoformat(), "to": seeded.last.isoformat(), "tz": ZONE}

        def report(path: str, **extra: str) -> str:
            return f"{base}/api/v1/reports/{path}?{urlencode({**year, **extra})}"

        # Warm-up: caches (task tree, users, day grid) and lazily created threads.
        await call(s, "GET", report("summary"), 200, token)
        week = {"from": seeded.last.isoformat(), "to": seeded.last.isoformat(), "tz": ZONE}
        for kind in ("csv", "xlsx"):
            await download(
                s, server, f"{base}/api/v1/reports/entries.{kind}?{urlencode(week)}", token
            )
        totals: dict[str, int] = {}
        for group_by in ("task", "user,day"):
            summary: dict[str, Any] = {}

            async def one(group_by: str = group_by, into: dict[str, Any] = summary) -> None:
                into.update(await call(s, "GET", report("summary", group_by=group_by), 200, token))

            times = await timed(args.repeat, one)
            totals[group_by] = summary["total_s"]
            p50 = statistics.median(times)
            rows.append(
                Row(
                    f"summary year group_by={group_by}",
                    f"p50 {p50:.1f} ms, p90 {percentile(times, 0.9):.1f} ms, "
                    f"max {max(times):.1f} ms ({len(summary['groups'])} groups)",
                    f"p50 <= {TARGET_SUMMARY_P50_MS:.0f} ms",
                    p50 <= TARGET_SUMMARY_P50_MS,
                    {"p50_ms": p50, "times_ms": times},
                )
            )
        if totals["task"] != totals["user,day"]:
            raise BenchError(f"summary totals differ between groupings: {totals}")
        for kind, target, count in (
            ("csv", TARGET_CSV_S, csv_seconds),
            ("xlsx", TARGET_XLSX_S, xlsx_seconds),
        ):
            got = await download(s, server, report(f"entries.{kind}"), token)
            n_rows, seconds = count(got.body)
            if seconds != totals["task"]:
                raise BenchError(
                    f"{kind}: the rows add up to {seconds} s, the summary to {totals['task']} s"
                )
            rows.append(
                Row(
                    f"{kind.upper()} year export",
                    f"{got.total_s:.2f} s (first byte {got.first_byte_s:.2f} s), "
                    f"{len(got.body) / 1e6:.1f} MB, {n_rows} rows = summary total",
                    f"<= {target:.0f} s",
                    got.total_s <= target,
                    {"seconds": got.total_s, "first_byte_s": got.first_byte_s, "rows": n_rows},
                )
            )
            rows.append(
                Row(
                    f"{kind.upper()} server RSS growth",
                    f"{got.rss_growth_mb:.1f} MB"
                    + ("" if got.peak_measured else " (sampled every 10 ms)"),
                    f"<= {TARGET_RSS_GROWTH_MB:.0f} MB",
                    got.rss_growth_mb <= TARGET_RSS_GROWTH_MB,
                    {"rss_growth_mb": got.rss_growth_mb},
                )
            )
    return rows


# -- the run ---------------------------------------------------------------------------


async def run(args: Any, database_url: str, workdir: Path) -> tuple[Seeded, list[Row]]:
    admin_password = secrets.token_urlsafe(16)
    sizes = Sizes(args.entries, args.users, args.tasks)
    print(
        f"seeding {sizes.entries:,} entries of {sizes.users} users on {sizes.tasks:,} tasks "
        f"({args.backend}) ..."
    )
    seeded = await seed(database_url, sizes, admin_password, random.Random(args.seed))
    print(f"seeded in {seeded.seconds:.1f} s; starting the server")
    with tasktimer_server(
        sys.executable, database_url, workdir, admin_password, STARTUP_TIMEOUT_S
    ) as server:
        rows = await measure(server, seeded, admin_password, args)
    return seeded, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "mongo"), default="sqlite")
    parser.add_argument("--entries", type=int, help="default 100,000 (mongo: 5,000)")
    parser.add_argument("--users", type=int, help="default 50 (mongo: 10)")
    parser.add_argument("--tasks", type=int, help="default 5,000 (mongo: 1,000)")
    parser.add_argument("--repeat", type=int, help="requests per timing (20; mongo: 5)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--mongo-python", default=MONGO_PYTHON)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    defaults = MONGO_SIZE if args.backend == "mongo" else FULL_SIZE
    if args.repeat is None:
        args.repeat = 5 if args.backend == "mongo" else 20
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    full = args.backend == "sqlite" and all(getattr(args, k) == v for k, v in FULL_SIZE.items())
    print(
        "about a minute on 2 cores for SQLite at full size, most of it seeding; "
        "the mongo run (a few minutes) is dominated by the emulator"
    )
    interrupt_on_signals()
    try:
        with tempfile.TemporaryDirectory(prefix="tt-bench-reports-") as tmp:
            workdir = Path(tmp)
            with bench_database(
                args.backend, workdir, "tt_bench_reports", STARTUP_TIMEOUT_S, args.mongo_python
            ) as url:
                seeded, rows = asyncio.run(run(args, url, workdir))
    except BenchError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 2
    print()
    print(
        f"{args.backend}: {args.entries:,} entries, {args.users} users, {args.tasks:,} tasks, "
        f"{seeded.first} .. {seeded.last} ({ZONE}); targets "
        + ("apply" if full else "not evaluated (not the SQLite full size)")
    )
    table = []
    for row in rows:
        verdict = "" if row.met is None or not full else ("ok" if row.met else "MISSED")
        table.append([row.name, row.value, row.target if full else "", verdict])
    print_table(["measurement", "result", "target", ""], table, right=set())
    if args.json:
        write_json(
            args.json,
            {
                "backend": args.backend,
                "sizes": {"entries": args.entries, "users": args.users, "tasks": args.tasks},
                "range": [seeded.first.isoformat(), seeded.last.isoformat(), ZONE],
                "seed_s": seeded.seconds,
                "results": [
                    {"name": r.name, "result": r.value, "target": r.target, "met": r.met, **r.extra}
                    for r in rows
                ],
            },
        )
    return 1 if full and any(r.met is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
