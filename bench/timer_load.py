"""Timer start/stop load benchmark, compared with ``GET /health`` on the same server.

By default it starts its own server (``python -m server``) on a free loopback port with a
fresh temporary database -- SQLite, or with ``--backend mongo`` the mongoeco MongoDB wire
server from ``tests/mongo_wire.py`` -- and stops everything it started when it is done,
interrupted or failing. With ``--url`` it targets a server that already runs on loopback
(then ``--admin-email`` and ``--admin-password`` are needed).

Setup goes through the HTTP API only: admin login, N users with passwords, one manual
parent task with two children, every user ``regular`` on the parent, one token per user.
For each concurrency level C, C clients (distinct users, one keep-alive session each)
first hit ``GET /health`` for the duration, then loop start (alternating the two child
tasks) + stop for the duration; each phase is preceded by a short warm-up. At the end it
checks through the API that every user has at most one running timer and that their
entries do not overlap.

``--driver wrk`` generates the same load with ``wrk`` (one thread and one connection per
client, ``bench/timer_wrk.lua``) instead of the Python client, which competes less with
the server for CPU. Both drivers print the same table, with the server's CPU time per
request and the load average of the machine.

    .venv/bin/python bench/timer_load.py                  # SQLite, 1/8/32 clients, 5 s
    .venv/bin/python bench/timer_load.py --backend both --json out.json
    .venv/bin/python bench/timer_load.py --driver wrk --clients 32
    .venv/bin/python bench/timer_load.py --url http://127.0.0.1:8080 \\
        --admin-email admin@example.com --admin-password secret123
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if not __package__:  # run as bench/timer_load.py rather than python -m bench.timer_load
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench._common import (
    ADMIN_EMAIL,
    MONGO_PYTHON,
    BenchError,
    call,
    interrupt_on_signals,
    mongo_wire,
    parse_ts,
    print_table,
    tasktimer_server,
    with_database,
    write_json,
)

USER_PASSWORD = "bench-password-123"
STARTUP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0
MAX_ERROR_SAMPLES = 5
WRK_SCRIPT = Path(__file__).resolve().parent / "timer_wrk.lua"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        addresses = {ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, None)}
    if not all(a.is_loopback for a in addresses):
        raise BenchError(f"--url must point to a loopback address, not {host!r}")


# -- HTTP helpers ----------------------------------------------------------------------


@dataclass
class Setup:
    tokens: list[str]
    user_ids: list[str]
    children: list[str]


async def setup(base: str, admin_email: str, admin_password: str, users: int) -> Setup:
    api = f"{base}/api/v1"
    tag = f"{int(time.time())}-{secrets.token_hex(3)}"
    async with aiohttp.ClientSession() as s:
        await call(s, "GET", f"{base}/health", 200)
        login = await call(
            s,
            "POST",
            f"{api}/auth/login",
            200,
            body={"email": admin_email, "password": admin_password},
        )
        admin = login["token"]
        parent = await call(s, "POST", f"{api}/tasks", 201, admin, {"name": f"Bench {tag}"})
        children = [
            (
                await call(
                    s, "POST", f"{api}/tasks", 201, admin, {"name": n, "parent_id": parent["id"]}
                )
            )["id"]
            for n in ("Bench child A", "Bench child B")
        ]
        sem = asyncio.Semaphore(8)

        async def one_user(i: int) -> tuple[str, str]:
            email = f"bench-{tag}-{i}@example.com"
            async with sem:
                user = await call(
                    s,
                    "POST",
                    f"{api}/users",
                    201,
                    admin,
                    {
                        "email": email,
                        "name": f"Bench {i}",
                        "password": USER_PASSWORD,
                        "role": "user",
                    },
                )
                await call(
                    s,
                    "PUT",
                    f"{api}/tasks/{parent['id']}/members/{user['id']}",
                    200,
                    admin,
                    {"role": "regular"},
                )
                tok = await call(
                    s,
                    "POST",
                    f"{api}/auth/login",
                    200,
                    body={"email": email, "password": USER_PASSWORD},
                )
            return user["id"], tok["token"]

        made = await asyncio.gather(*(one_user(i) for i in range(users)))
    return Setup(tokens=[t for _, t in made], user_ids=[u for u, _ in made], children=children)


# -- load ------------------------------------------------------------------------------


@dataclass
class Tally:
    pairs: int = 0
    requests: int = 0
    errors: int = 0
    start_ms: list[float] = field(default_factory=list)
    stop_ms: list[float] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(what[:300])


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def post_json(
    s: aiohttp.ClientSession, url: str, token: str, body: dict[str, Any]
) -> tuple[int, Any, float]:
    t0 = time.perf_counter()
    async with s.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        raw = await resp.read()
    ms = (time.perf_counter() - t0) * 1000
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = raw[:200].decode(errors="replace")
    return resp.status, data, ms


async def timer_client(
    s: aiohttp.ClientSession,
    base: str,
    token: str,
    children: list[str],
    deadline: float,
    tally: Tally,
    started: list[int],
    slot: int,
) -> None:
    start_url = f"{base}/api/v1/timer/start"
    stop_url = f"{base}/api/v1/timer/stop"
    n = 0
    while time.monotonic() < deadline:
        task_id = children[n % 2]
        n += 1
        ok = True
        running: dict[str, Any] = {}
        try:
            status, data, ms = await post_json(s, start_url, token, {"task_id": task_id})
            tally.requests += 1
            tally.start_ms.append(ms)
            if status != 201:
                ok = False
                tally.error(f"start -> {status}: {data}")
            else:
                started[slot] += 1
                running = data.get("running") or {}
                if running.get("task_id") != task_id or running.get("end") is not None:
                    ok = False
                    tally.error(f"start -> unexpected running entry: {data}")
                elif data.get("stopped") is not None:
                    ok = False
                    tally.error(f"start stopped a timer that should not run: {data}")
            # Always stop, so that the user is left without a running timer.
            status, data, ms = await post_json(s, stop_url, token, {})
            tally.requests += 1
            tally.stop_ms.append(ms)
            if status != 200:
                ok = False
                tally.error(f"stop -> {status}: {data}")
            elif ok and ((data.get("stopped") or {}).get("id") != running.get("id")):
                ok = False
                tally.error(f"stop -> did not stop the started entry: {data}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok = False
            tally.error(f"{type(exc).__name__}: {exc}")
        if ok:
            tally.pairs += 1


async def health_client(s: aiohttp.ClientSession, base: str, deadline: float, tally: Tally) -> None:
    url = f"{base}/health"
    while time.monotonic() < deadline:
        try:
            async with s.get(url) as resp:
                await resp.read()
                tally.requests += 1
                if resp.status != 200:
                    tally.error(f"health -> {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.error(f"{type(exc).__name__}: {exc}")


async def run_phase(
    sessions: list[aiohttp.ClientSession],
    seconds: float,
    make: Callable[[aiohttp.ClientSession, float, Tally], Awaitable[None]],
) -> tuple[Tally, float]:
    tally = Tally()
    t0 = time.monotonic()
    deadline = t0 + seconds
    await asyncio.gather(*(make(s, deadline, tally) for s in sessions))
    return tally, time.monotonic() - t0


def server_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of the server process so far (all its threads)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def client_cpu_s() -> float:
    """CPU seconds of the load generator: this process (the aiohttp driver) and the
    child processes it has waited for (wrk)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def load_average() -> float:
    return os.getloadavg()[0]


@dataclass
class Row:
    backend: str
    driver: str
    clients: int
    seconds: float
    pairs: int
    pairs_per_s: float
    timer_req_per_s: float
    health_req_per_s: float
    ratio_pct: float
    p50_ms: float
    p99_ms: float
    start_p99_ms: float
    stop_p99_ms: float
    max_ms: float
    cpu_ms_per_req: float
    client_cpu_ms_per_req: float
    load_avg: float
    errors: int
    health_errors: int
    error_samples: list[str]


@dataclass
class Level:
    """What one concurrency level measures against one server."""

    base: str
    backend: str
    st: Setup
    clients: int
    seconds: float
    warmup: float
    server_pid: int | None
    # successful starts per user, and how many more entries than that a user may have
    # (wrk stops without reading the answers that are in flight at its end)
    started: list[int]
    slack: list[int]


async def measure_level(lv: Level) -> Row:
    base, st, clients, seconds, warmup, started = (
        lv.base,
        lv.st,
        lv.clients,
        lv.seconds,
        lv.warmup,
        lv.started,
    )
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=1, force_close=False), timeout=timeout
                )
            )
            for _ in range(clients)
        ]

        def health(s: aiohttp.ClientSession, deadline: float, t: Tally) -> Awaitable[None]:
            return health_client(s, base, deadline, t)

        def timer(s: aiohttp.ClientSession, deadline: float, t: Tally) -> Awaitable[None]:
            i = sessions.index(s)
            return timer_client(s, base, st.tokens[i], st.children, deadline, t, started, i)

        await run_phase(sessions, warmup, health)
        h, h_elapsed = await run_phase(sessions, seconds, health)
        await run_phase(sessions, warmup, timer)
        cpu0, client0 = server_cpu_s(lv.server_pid), client_cpu_s()
        t, t_elapsed = await run_phase(sessions, seconds, timer)
        cpu = server_cpu_s(lv.server_pid) - cpu0
        client = client_cpu_s() - client0
        load = load_average()

    latencies = t.start_ms + t.stop_ms
    health_rps = h.requests / h_elapsed
    timer_rps = t.requests / t_elapsed
    return Row(
        backend=lv.backend,
        driver="aiohttp",
        clients=clients,
        seconds=round(t_elapsed, 3),
        pairs=t.pairs,
        pairs_per_s=t.pairs / t_elapsed,
        timer_req_per_s=timer_rps,
        health_req_per_s=health_rps,
        ratio_pct=100 * timer_rps / health_rps if health_rps else float("nan"),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        start_p99_ms=percentile(t.start_ms, 99),
        stop_p99_ms=percentile(t.stop_ms, 99),
        max_ms=max(latencies, default=float("nan")),
        cpu_ms_per_req=1000 * cpu / t.requests if t.requests else float("nan"),
        client_cpu_ms_per_req=1000 * client / t.requests if t.requests else float("nan"),
        load_avg=load,
        errors=t.errors,
        health_errors=h.errors,
        error_samples=t.samples + h.samples,
    )


# -- the wrk driver --------------------------------------------------------------------


@dataclass
class WrkRun:
    seconds: float
    requests: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    ok: list[int]  # per thread: starts (timer) or answers (health) as expected
    errors: int
    samples: list[str]


def run_wrk(
    wrk: str, base: str, mode: str, clients: int, seconds: float, env: dict[str, str]
) -> WrkRun:
    """One wrk run of ``timer_wrk.lua``; one thread per connection, so each thread is a
    user whose requests follow each other."""
    duration = max(1, round(seconds))  # wrk takes whole seconds
    cmd = [
        wrk,
        f"-t{clients}",
        f"-c{clients}",
        f"-d{duration}s",
        f"--timeout={int(REQUEST_TIMEOUT_S)}s",
        "-s",
        str(WRK_SCRIPT),
        base,
    ]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, **env, "TT_WRK_MODE": mode},
            timeout=duration + REQUEST_TIMEOUT_S + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {duration + 60} s") from None
    found = re.search(r"^TT_WRK (\{.*\})$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not found:
        raise BenchError(f"wrk failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-1000:]}")
    data = json.loads(found.group(1))
    threads = data["threads"]
    samples = [t["sample"] for t in threads if t["sample"]][:MAX_ERROR_SAMPLES]
    return WrkRun(
        seconds=data["duration_us"] / 1e6,
        requests=data["requests"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        ok=[t["starts"] if mode == "timer" else t["stops"] for t in threads],
        errors=sum(t["failures"] for t in threads) + data["socket_errors"],
        samples=samples,
    )


async def stop_timers(base: str, tokens: list[str]) -> None:
    """Leave every user without a running timer, so that each wrk thread's first start
    stops nothing."""
    async with aiohttp.ClientSession() as s:
        for token in tokens:
            await call(s, "POST", f"{base}/api/v1/timer/stop", 200, token, {})


async def measure_level_wrk(lv: Level, wrk: str, workdir: Path) -> Row:
    clients = lv.clients
    tokens = lv.st.tokens[:clients]
    token_file = workdir / "wrk-tokens.txt"
    token_file.touch(mode=0o600)
    token_file.write_text("".join(f"{t}\n" for t in tokens))
    env = {"TT_WRK_TOKENS_FILE": str(token_file), "TT_WRK_TASKS": ",".join(lv.st.children)}

    def wrk_run(mode: str, seconds: float) -> Awaitable[WrkRun]:
        return asyncio.to_thread(run_wrk, wrk, lv.base, mode, clients, seconds, env)

    def count(run: WrkRun) -> None:
        for i, n in enumerate(run.ok):
            lv.started[i] += n
            lv.slack[i] += 1  # at most one start in flight per thread when wrk stops

    if lv.warmup > 0:
        await wrk_run("health", lv.warmup)
    h = await wrk_run("health", lv.seconds)
    await stop_timers(lv.base, tokens)
    if lv.warmup > 0:
        count(await wrk_run("timer", lv.warmup))
        await stop_timers(lv.base, tokens)
    cpu0, client0 = server_cpu_s(lv.server_pid), client_cpu_s()
    t = await wrk_run("timer", lv.seconds)
    cpu = server_cpu_s(lv.server_pid) - cpu0
    client = client_cpu_s() - client0
    load = load_average()
    count(t)
    await stop_timers(lv.base, tokens)
    token_file.unlink()

    timer_rps = t.requests / t.seconds
    health_rps = h.requests / h.seconds
    nan = float("nan")
    return Row(
        backend=lv.backend,
        driver="wrk",
        clients=clients,
        seconds=round(t.seconds, 3),
        pairs=sum(t.ok),
        pairs_per_s=sum(t.ok) / t.seconds,
        timer_req_per_s=timer_rps,
        health_req_per_s=health_rps,
        ratio_pct=100 * timer_rps / health_rps if health_rps else nan,
        p50_ms=t.p50_ms,
        p99_ms=t.p99_ms,
        start_p99_ms=nan,  # wrk keeps one histogram for the whole run
        stop_p99_ms=nan,
        max_ms=t.max_ms,
        cpu_ms_per_req=1000 * cpu / t.requests if t.requests else nan,
        client_cpu_ms_per_req=1000 * client / t.requests if t.requests else nan,
        load_avg=load,
        errors=t.errors,
        health_errors=h.errors,
        error_samples=t.samples + h.samples,
    )


# -- invariant -------------------------------------------------------------------------


async def verify(
    base: str, st: Setup, started: list[int], slack: list[int]
) -> tuple[bool, list[str]]:
    """At most one running timer per user, no overlapping entries, one entry per start
    (up to ``slack`` more: starts whose answers wrk did not wait for)."""
    problems: list[str] = []
    total = 0
    async with aiohttp.ClientSession() as s:
        for i, token in enumerate(st.tokens):
            entries: list[dict[str, Any]] = []
            cursor: str | None = None
            while True:
                url = f"{base}/api/v1/entries?limit=500" + (f"&cursor={cursor}" if cursor else "")
                page = await call(s, "GET", url, 200, token)
                entries.extend(page["items"])
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            timer = await call(s, "GET", f"{base}/api/v1/timer", 200, token)
            total += len(entries)
            who = f"user {i} ({st.user_ids[i]})"
            running = [e for e in entries if e.get("end") is None]
            if len(running) > 1:
                problems.append(f"{who}: {len(running)} running entries")
            if timer.get("running") is not None:
                problems.append(f"{who}: a timer still runs after every stop")
            if not started[i] <= len(entries) <= started[i] + slack[i]:
                problems.append(f"{who}: {len(entries)} entries for {started[i]} successful starts")
            spans = sorted(
                (parse_ts(e["start"]), parse_ts(e["end"]) if e.get("end") else None, e["id"])
                for e in entries
            )
            for (a_start, a_end, a_id), (b_start, _, b_id) in itertools.pairwise(spans):
                if a_end is None or a_end > b_start:
                    problems.append(
                        f"{who}: entry {a_id} ({a_start.isoformat()}..{a_end}) overlaps "
                        f"{b_id} starting {b_start.isoformat()}"
                    )
                    break
            if [e["start"] for e in entries] != sorted(e["start"] for e in entries):
                problems.append(f"{who}: GET /entries is not ordered by start")
    summary = f"{len(st.tokens)} users, {total} entries checked"
    return not problems, [summary, *problems]


# -- driver ----------------------------------------------------------------------------


async def bench_server(
    base: str,
    backend: str,
    admin_email: str,
    admin_password: str,
    args: argparse.Namespace,
    server_pid: int | None = None,
) -> tuple[list[Row], dict[str, Any]]:
    levels: list[int] = args.clients
    t0 = time.monotonic()
    st = await setup(base, admin_email, admin_password, max(levels))
    print(f"  setup: {len(st.tokens)} users, 3 tasks in {time.monotonic() - t0:.1f} s")
    started = [0] * len(st.tokens)
    slack = [0] * len(st.tokens)
    drivers = ["aiohttp", "wrk"] if args.driver == "both" else [args.driver]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tt-bench-wrk-") as tmp:
        for c in levels:
            for driver in drivers:
                lv = Level(
                    base, backend, st, c, args.seconds, args.warmup, server_pid, started, slack
                )
                if driver == "wrk":
                    row = await measure_level_wrk(lv, args.wrk, Path(tmp))
                else:
                    row = await measure_level(lv)
                print(
                    f"  {c:>3} clients ({driver}): {row.pairs_per_s:8.1f} pairs/s, health"
                    f" {row.health_req_per_s:8.1f} req/s, p99 {row.p99_ms:.1f} ms,"
                    f" errors {row.errors}, load {row.load_avg:.2f}"
                )
                rows.append(row)
    ok, notes = await verify(base, st, started, slack)
    print(f"  invariant ({backend}): {'OK' if ok else 'VIOLATED'} - " + "; ".join(notes[:10]))
    return rows, {"backend": backend, "ok": ok, "notes": notes}


def run_backend(backend: str, args: argparse.Namespace) -> tuple[list[Row], dict[str, Any]]:
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="tt-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        if backend == "sqlite":
            database_url = f"sqlite:///{workdir / 'bench.db'}"
        else:
            uri = stack.enter_context(mongo_wire(args.mongo_python, workdir, STARTUP_TIMEOUT_S))
            database_url = with_database(uri, f"bench_{secrets.token_hex(4)}")
        t0 = time.monotonic()
        server = stack.enter_context(
            tasktimer_server(args.python, database_url, workdir, password, STARTUP_TIMEOUT_S)
        )
        print(f"[{backend}] server {server.base} ready in {time.monotonic() - t0:.1f} s")
        return asyncio.run(
            bench_server(server.base, backend, ADMIN_EMAIL, password, args, server.pid)
        )


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def print_rows(rows: list[Row]) -> None:
    head = [
        "backend",
        "driver",
        "clients",
        "pairs/s",
        "timer req/s",
        "health req/s",
        "ratio %",
        "p50 ms",
        "p99 ms",
        "cpu ms/req",
        "client cpu",
        "load",
        "errors",
    ]
    body = [
        [
            r.backend,
            r.driver,
            str(r.clients),
            fmt(r.pairs_per_s),
            fmt(r.timer_req_per_s),
            fmt(r.health_req_per_s),
            fmt(r.ratio_pct),
            fmt(r.p50_ms, 2),
            fmt(r.p99_ms, 2),
            fmt(r.cpu_ms_per_req, 3),
            fmt(r.client_cpu_ms_per_req, 3),
            fmt(r.load_avg, 2),
            str(r.errors + r.health_errors),
        ]
        for r in rows
    ]
    print_table(head, body, right=set(range(2, len(head))))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "mongo", "both"), default="sqlite")
    p.add_argument("--url", help="benchmark this running server (loopback only) instead")
    p.add_argument("--admin-email", help="admin e-mail for --url")
    p.add_argument("--admin-password", help="admin password for --url")
    p.add_argument(
        "--clients",
        type=lambda v: [int(x) for x in v.split(",") if x.strip()],
        default=[1, 8, 32],
        help="comma separated concurrency levels (default 1,8,32)",
    )
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per phase")
    p.add_argument(
        "--driver",
        choices=("aiohttp", "wrk", "both"),
        default="aiohttp",
        help="load generator: the Python client (default), wrk, or both one after the other",
    )
    p.add_argument("--wrk", default="wrk", help="the wrk executable for --driver wrk")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--python", default=sys.executable, help="interpreter for python -m server")
    p.add_argument(
        "--mongo-python",
        default=MONGO_PYTHON,
        help="Python 3.13 with mongoeco, for tests/mongo_wire.py",
    )
    args = p.parse_args(argv)
    if not args.clients or min(args.clients) < 1:
        p.error("--clients needs positive integers")
    if args.seconds <= 0 or args.warmup < 0:
        p.error("--seconds must be > 0 and --warmup >= 0")
    if args.url and not (args.admin_email and args.admin_password):
        p.error("--url needs --admin-email and --admin-password")
    if args.driver != "aiohttp" and shutil.which(args.wrk) is None:
        p.error(f"--driver {args.driver} needs wrk ({args.wrk!r} not found; apt-get install wrk)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_signals()
    backends = ["sqlite", "mongo"] if args.backend == "both" else [args.backend]
    if args.url:
        backends = ["url"]
    drivers = 2 if args.driver == "both" else 1
    per_backend = drivers * len(args.clients) * 2 * (args.seconds + args.warmup) + 15
    print(
        f"Timer load benchmark: clients {args.clients}, {args.seconds:g} s per phase "
        f"(+{args.warmup:g} s warm-up); the whole run takes about "
        f"{per_backend * len(backends):.0f} s.",
        flush=True,
    )
    rows: list[Row] = []
    checks: list[dict[str, Any]] = []
    try:
        for backend in backends:
            if args.url:
                require_loopback(args.url)
                r, c = asyncio.run(
                    bench_server(
                        args.url.rstrip("/"), "url", args.admin_email, args.admin_password, args
                    )
                )
            else:
                r, c = run_backend(backend, args)
            rows += r
            checks.append(c)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; child processes stopped", file=sys.stderr)
        return 130
    print()
    print_rows(rows)
    for c in checks:
        print(f"invariant [{c['backend']}]: {'OK' if c['ok'] else 'VIOLATED'} ({c['notes'][0]})")
        for note in c["notes"][1:]:
            print(f"  - {note}")
    for r in rows:
        for sample in r.error_samples:
            print(f"error sample [{r.backend}/{r.clients}]: {sample}")
    if args.json:
        write_json(
            args.json,
            {
                "seconds": args.seconds,
                "warmup": args.warmup,
                "results": [asdict(r) for r in rows],
                "invariant": checks,
            },
        )
    failed = any(not c["ok"] for c in checks) or any(r.errors or r.health_errors for r in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
