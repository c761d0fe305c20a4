"""Sync import benchmark: first import, no-change re-sync and a 1 % change re-sync of big
task trees, from fake HeySpace, Pivotal Tracker and Asana servers into a real server.

Every case gets its own processes on free loopback ports and a fresh database: the fake
provider (``python -m tests.fakes.<tool>`` with a generated data set) and ``python -m
server`` (SQLite file in a temporary directory, or with ``--backend mongo`` a database on
the mongoeco wire server from ``tests/mongo_wire.py``). Everything goes through HTTP:
enabling the integration (Asana through its OAuth redirect flow), forcing syncs, polling the
sync record, and changing items upstream through the fake's ``/_control`` surface. The
server's peak RSS is read from ``/proc/<pid>/status`` (``VmHWM``, reset before each step
through ``/proc/<pid>/clear_refs``).

Cases (``--scale`` multiplies the item counts; ``--backend mongo`` defaults to 0.05):

* ``heyspace``: 1 workspace, 10 spaces, 40 lists, 10,000 cards;
* ``pivotal``: 1 project (4 state lists), 5,000 stories cycling through every state;
* ``asana``: 1 workspace, 20 projects, 60 sections, 5,000 tasks;
* ``asana-100k``: a 100,000-task Asana organisation: 200 projects, 600 sections, a subtask
  on every 10th task (every 4th of them also in its parent's project), every 25th task
  also in a second project, a premium workspace (search API). After its syncs, a
  ``500-id resolve`` step, and the ``incremental check`` steps: the server restarted on
  the same database with its scheduler and ``TT_SYNC_POLL_S=5``, measuring the provider
  requests of a no-change check and the delay from a task created upstream to the task
  being resolvable.

Asana's rate budget (150 requests a minute by default) is lifted for the loopback fake
(``TT_ASANA_RATE_PER_MIN=0``), so the timings are the server's own.

    .venv/bin/python bench/sync_import.py                       # SQLite, full size
    .venv/bin/python bench/sync_import.py --backend mongo       # mongoeco, 5 % size
    .venv/bin/python bench/sync_import.py --cases heyspace --json sync.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

if not __package__:  # run as bench/sync_import.py rather than python -m bench.sync_import
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench._common import (
    ADMIN_EMAIL,
    MONGO_PYTHON,
    BenchError,
    Server,
    call,
    interrupt_on_signals,
    mongo_wire,
    parse_ts,
    print_table,
    proc_memory,
    reset_peak,
    spawn,
    stop_process,
    tasktimer_server,
    wait_for_line,
    with_database,
    write_json,
)

STARTUP_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 60.0
POLL_S = 0.02
COUNT_KEYS = ("created", "updated", "archived", "removed", "unchanged")

# Targets (SQLite, full size; see bench/README.md).
TARGET_FIRST_IMPORT_S = 5.0
TARGET_RESYNC_S = 2.0
TARGET_PEAK_MB = 300.0
# The big Asana organisation: peak RSS of the whole process <= 120 MB + 1.3 KB per item,
# first import <= 60 s; an incremental check: <= 20 s from change to resolvable, and a
# no-change check <= 2 % of a full sync's requests.
TARGET_BIG_FIRST_IMPORT_S = 60.0
TARGET_BIG_BASE_MB = 120.0
TARGET_BIG_PER_ITEM_KB = 1.3
TARGET_POLL_DELAY_S = 20.0
TARGET_POLL_SHARE = 0.02
POLL_PERIOD_S = 5
RESOLVE_IDS = 500

# Fake provider logins, as their runners set them up.
HEYSPACE_LOGIN = ("admin@example.com", "secret")
PIVOTAL_TOKEN = "fake-pivotal-token"
ASANA_CLIENT = ("fake-client-id", "fake-client-secret")


class StepFailed(Exception):
    """A sync did not succeed; the remaining steps of the case are skipped."""


class Deadline(Exception):
    """The whole run took longer than --max-seconds."""


# -- processes -------------------------------------------------------------------------


@contextlib.contextmanager
def fake_provider(python: str, tool: str, args: list[str], workdir: Path) -> Iterator[str]:
    """Run ``python -m tests.fakes.<tool> --port 0 ...``; yield its base URL."""
    log_path = workdir / f"fake-{tool}.log"
    with open(log_path, "wb") as log:
        proc = spawn(
            [python, "-m", f"tests.fakes.{tool}", "--port", "0", *args],
            log,
            stdin=subprocess.DEVNULL,
        )
        try:
            found = wait_for_line(
                proc, log_path, r"listening on (http://\S+)", f"fake {tool}", STARTUP_TIMEOUT_S
            )
            yield found.group(1)
        finally:
            stop_process(proc, f"fake {tool}")


@contextlib.contextmanager
def py_spy(exe: str | None, pid: int, out: Path, workdir: Path) -> Iterator[None]:
    """Sample the server with ``py-spy record --pid`` (collapsed stacks) while in use."""
    if not exe:
        yield
        return
    cmd = [exe, "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
    cmd += ["--format", "raw", "--output", str(out)]
    with open(workdir / f"py-spy-{pid}.log", "wb") as log:
        proc = spawn(cmd, log, stdin=subprocess.DEVNULL)
        try:
            time.sleep(0.5)  # let it attach
            yield
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    stop_process(proc, "py-spy")
            print(f"  py-spy profile: {out} (exit {proc.returncode})", flush=True)


# -- HTTP --------------------------------------------------------------------------------


async def control(s: aiohttp.ClientSession, fake: str, method: str, **kwargs: Any) -> Any:
    answer = await call(s, "POST", f"{fake}/_control/{method}", 200, body=kwargs)
    return answer["result"]


# -- reading the fakes' data through their own APIs -------------------------------------


@dataclass
class Inventory:
    """What the fake shows its user: the node count the server must import, and the ids
    that the change step picks from."""

    nodes: int = 0
    leaves: int = 0  # cards / stories / tasks upstream
    items: list[str] = field(default_factory=list)  # the leaves a change may pick
    projects: list[str] = field(default_factory=list)
    project_of: dict[str, str] = field(default_factory=dict)  # Asana task -> project
    sections: dict[str, str] = field(default_factory=dict)  # Asana project -> a section
    workspace: str = ""


async def heyspace_inventory(s: aiohttp.ClientSession, fake: str) -> Inventory:
    api = f"{fake}/api"
    email, password = HEYSPACE_LOGIN
    form = {"grant_type": "password", "username": email, "password": password}
    token = await call(
        s, "POST", f"{api}/oauth/token", 200, body={**form, "scope": "heyspace"}, form=True
    )
    auth = token["access_token"]
    inv = Inventory()
    orgs = (await call(s, "GET", f"{api}/users/self/organizations", 200, auth))["response"]
    for org in orgs["organizations"]:
        inv.nodes += 1
        spaces = await call(s, "GET", f"{api}/organizations/{org['id']}/projects", 200, auth)
        for space in spaces["response"]["projects"]:
            inv.nodes += 1
            inv.projects.append(space["id"])
            lists = await call(s, "GET", f"{api}/projects/{space['id']}/lists", 200, auth)
            inv.nodes += len(lists["response"]["lists"])
            page = 1
            while True:
                url = f"{api}/projects/{space['id']}/tasks?page={page}&limit=100"
                body = (await call(s, "GET", url, 200, auth))["response"]
                inv.items += [t["id"] for t in body["tasks"]]
                if not body["hasMore"]:
                    break
                page += 1
    inv.leaves = len(inv.items)
    inv.nodes += inv.leaves
    return inv


async def pivotal_inventory(s: aiohttp.ClientSession, fake: str) -> Inventory:
    api = f"{fake}/services/v5"
    headers = {"X-TrackerToken": PIVOTAL_TOKEN}
    inv = Inventory()
    for project in await call(s, "GET", f"{api}/projects", 200, headers=headers):
        inv.nodes += 1 + 4  # the project and its four state-group lists
        inv.projects.append(str(project["id"]))
        offset = 0
        while True:
            url = f"{api}/projects/{project['id']}/stories?limit=500&offset={offset}"
            async with s.get(url, headers=headers) as resp:
                stories = await resp.json()
                total = int(resp.headers["X-Tracker-Pagination-Total"])
            inv.nodes += len(stories)
            inv.leaves += len(stories)
            # Accepted stories are imported as removed already; the change step uses others.
            inv.items += [str(x["id"]) for x in stories if x["current_state"] != "accepted"]
            offset += len(stories)
            if offset >= total or not stories:
                break
    return inv


async def asana_token(s: aiohttp.ClientSession, fake: str) -> str:
    """Our own authorization-code + PKCE grant at the fake, to read its data."""
    client_id, client_secret = ASANA_CLIENT
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect_uri = "http://127.0.0.1/bench-callback"
    query = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
        "state": "bench",
    }
    url = f"{fake}/-/oauth_authorize?{urlencode(query)}"
    async with s.get(url, allow_redirects=False) as resp:
        if resp.status != 302:
            raise BenchError(f"fake Asana authorize answered {resp.status}")
        code = parse_qs(urlsplit(resp.headers["Location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": client_secret,
        "code_verifier": verifier,
    }
    token = await call(s, "POST", f"{fake}/-/oauth_token", 200, body=form, form=True)
    return str(token["access_token"])


async def asana_inventory(s: aiohttp.ClientSession, fake: str) -> Inventory:
    api = f"{fake}/api/1.0"
    auth = await asana_token(s, fake)

    async def each(path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params = {**params, "limit": "100"}
        while True:
            page = await call(s, "GET", f"{api}{path}?{urlencode(params)}", 200, auth)
            found += page["data"]
            if not page.get("next_page"):
                return found
            params["offset"] = page["next_page"]["offset"]

    inv = Inventory()
    # Multi-homed tasks are listed in each of their projects but imported once (under the
    # first project listed); a subtask also listed in a project is imported once, under
    # its parent (counted with the parent's num_subtasks). One level of subtasks.
    seen: set[str] = set()
    listed_subtasks: set[str] = set()
    subtasks = 0
    for ws in await each("/workspaces", {}):
        inv.workspace = inv.workspace or ws["gid"]
        for archived in ("false", "true"):
            projects = await each("/projects", {"workspace": ws["gid"], "archived": archived})
            for project in projects:
                inv.projects.append(project["gid"])
                sections = await each(f"/projects/{project['gid']}/sections", {})
                if sections:
                    inv.sections[project["gid"]] = sections[0]["gid"]
                params = {"project": project["gid"], "opt_fields": "name,num_subtasks,parent"}
                tasks = await each("/tasks", params)
                inv.nodes += 1 + len(sections)
                for t in tasks:
                    if t.get("parent"):
                        listed_subtasks.add(t["gid"])
                        continue
                    if t["gid"] in seen:
                        inv.project_of.pop(t["gid"], None)  # multi-homed: not changed
                        continue
                    seen.add(t["gid"])
                    subtasks += int(t.get("num_subtasks") or 0)
                    if not t.get("num_subtasks"):
                        # Only tasks without subtasks are changed (a deleted parent takes
                        # its subtasks with it, which the expected counts leave out).
                        inv.project_of[t["gid"]] = project["gid"]
    inv.items = list(inv.project_of)
    inv.leaves = len(seen)
    inv.nodes += len(seen) + subtasks
    return inv


# -- upstream changes --------------------------------------------------------------------


@dataclass
class Change:
    what: str  # rename, complete, archive, delete, purge, accept, archive-project
    external_id: str
    method: str
    kwargs: dict[str, Any]
    counted_as: str  # updated | archived | removed
    afterwards: str  # active | archived | gone (as POST /resolve must show it)
    name: str | None = None


# One kind of change: (label, how it is made, counted as, what /resolve shows afterwards).
Kind = tuple[str, Callable[[str], tuple[str, dict[str, Any]]], str, str]

HEYSPACE_KINDS: list[Kind] = [
    ("rename", lambda i: ("rename", {"id": i, "name": f"Renamed {i}"}), "updated", "active"),
    ("complete", lambda i: ("complete_card", {"card_id": i}), "updated", "active"),
    ("archive", lambda i: ("archive", {"id": i}), "archived", "archived"),
    ("delete", lambda i: ("delete_card", {"card_id": i}), "archived", "archived"),
    ("purge", lambda i: ("purge", {"id": i}), "archived", "archived"),
]
PIVOTAL_KINDS: list[Kind] = [
    (
        "rename",
        lambda i: ("rename_story", {"story_id": int(i), "name": f"Renamed {i}"}),
        "updated",
        "active",
    ),
    (
        "accept",
        lambda i: ("set_story_state", {"story_id": int(i), "state": "accepted"}),
        "removed",
        "gone",
    ),
    ("delete", lambda i: ("delete_story", {"story_id": int(i)}), "removed", "gone"),
]
ASANA_KINDS: list[Kind] = [
    ("rename", lambda i: ("rename", {"gid": i, "name": f"Renamed {i}"}), "updated", "active"),
    ("complete", lambda i: ("complete_task", {"task": i}), "archived", "archived"),
    ("delete", lambda i: ("delete", {"gid": i}), "archived", "archived"),
]


def plan_changes(inv: Inventory, kinds: list[Kind], fraction: float) -> list[Change]:
    """``fraction`` of the items (at least one of each kind), evenly spread, distinct."""
    n = min(len(inv.items), max(len(kinds), round(inv.leaves * fraction)))
    step = max(1, len(inv.items) // max(1, n))
    chosen = inv.items[::step][:n]
    changes: list[Change] = []
    for i, external_id in enumerate(chosen):
        label, make, counted_as, afterwards = kinds[i % len(kinds)]
        method, kwargs = make(external_id)
        changes.append(
            Change(label, external_id, method, kwargs, counted_as, afterwards, kwargs.get("name"))
        )
    return changes


def asana_changes(inv: Inventory, fraction: float) -> list[Change]:
    """Tasks renamed, completed and deleted, plus one project archived. Its tasks keep
    their own state but resolve as archived (an archived ancestor archives the subtree)."""
    changes = plan_changes(inv, ASANA_KINDS, fraction)
    project = inv.projects[-1]
    for c in changes:
        if inv.project_of.get(c.external_id) == project:
            c.afterwards = "archived"
    archive = Change(
        "archive-project",
        project,
        "archive_project",
        {"project": project},
        "archived",
        "archived",
    )
    return [*changes[:-1], archive] if len(changes) > len(ASANA_KINDS) else [*changes, archive]


# -- the cases ---------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    service: str
    fake: str  # tests.fakes.<fake>
    fake_args: list[str]
    items: int
    inventory: Callable[[aiohttp.ClientSession, str], Awaitable[Inventory]]
    changes: Callable[[Inventory, float], list[Change]]
    big: bool = False  # memory formula, 500-id resolve and incremental-check steps


def cases(scale: float, big_scale: float = 1.0) -> list[Case]:
    cards, stories, tasks = (max(1, round(n * scale)) for n in (10_000, 5_000, 5_000))
    big = max(1, round(100_000 * big_scale))
    big_projects = max(1, round(200 * min(1.0, big_scale * 4)))
    return [
        Case(
            "heyspace",
            "heyspace",
            "heyspace",
            ["--cards", str(cards), "--spaces", "10"],
            cards,
            heyspace_inventory,
            lambda inv, f: plan_changes(inv, HEYSPACE_KINDS, f),
        ),
        Case(
            "pivotal",
            "pivotaltracker",
            "pivotal",
            ["--projects", "1", "--stories", str(stories), "--token", PIVOTAL_TOKEN],
            stories,
            pivotal_inventory,
            lambda inv, f: plan_changes(inv, PIVOTAL_KINDS, f),
        ),
        Case(
            "asana",
            "asana",
            "asana",
            ["--projects", "20", "--tasks", str(tasks)],
            tasks,
            asana_inventory,
            asana_changes,
        ),
        Case(
            "asana-100k",
            "asana",
            "asana",
            [
                "--projects",
                str(big_projects),
                "--tasks",
                str(big),
                "--subtask-every",
                "10",
                "--multi-home-every",
                "25",
                "--multi-home-subtask-every",
                "4",
                "--premium",
            ],
            big,
            asana_inventory,
            asana_changes,
            big=True,
        ),
    ]


@dataclass
class Step:
    case: str
    step: str
    items: int
    nodes: int
    seconds: float = float("nan")
    server_seconds: float | None = None  # finished_at - started_at of the sync record
    requests: int | None = None  # provider requests of the sync (or of one check)
    counts: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)
    state: str = "not run"
    error: str | None = None
    peak_mb: float = float("nan")  # VmHWM during this step (reset before it)
    rss_mb: float = float("nan")  # VmRSS right after it
    peak_is_per_step: bool = True
    checks: list[str] = field(default_factory=list)  # failed correctness checks
    target: str = ""
    target_met: bool | None = None

    @property
    def correct(self) -> bool:
        return self.state == "succeeded" and not self.checks


async def wait_sync(
    s: aiohttp.ClientSession, base: str, token: str, service: str, sync_id: str, limit_s: float
) -> dict[str, Any]:
    url = f"{base}/api/v1/integrations/{service}/syncs/{sync_id}"
    deadline = time.monotonic() + limit_s
    while True:
        sync = await call(s, "GET", url, 200, token)
        if sync["state"] in ("succeeded", "failed"):
            return dict(sync)
        if time.monotonic() > deadline:
            raise StepFailed(f"sync {sync_id} still {sync['state']} after {limit_s:.0f} s")
        await asyncio.sleep(POLL_S)


async def enable(s: aiohttp.ClientSession, base: str, token: str, case: Case, fake: str) -> str:
    """Enable the integration as an admin would; return the id of the sync it started."""
    api = f"{base}/api/v1/integrations"
    if case.service == "heyspace":
        email, password = HEYSPACE_LOGIN
        await call(s, "POST", f"{api}/heyspace", 201, token, {"email": email, "password": password})
    elif case.service == "pivotaltracker":
        await call(s, "POST", f"{api}/pivotaltracker", 201, token, {"api_token": PIVOTAL_TOKEN})
    else:
        start = await call(s, "POST", f"{api}/asana", 200, token)
        async with s.get(start["authorize_url"], allow_redirects=False) as resp:
            if resp.status != 302:
                raise BenchError(f"fake Asana authorize answered {resp.status}")
            callback = resp.headers["Location"]
        if not callback.startswith(base):
            raise BenchError(f"Asana redirected to {callback[:100]}, not to the server")
        await call(s, "GET", callback, 200)
    listing = await call(s, "GET", f"{api}/{case.service}/syncs?limit=1", 200, token)
    if not listing["items"]:
        raise BenchError(f"enabling {case.service} started no sync")
    return str(listing["items"][0]["id"])


async def force(s: aiohttp.ClientSession, base: str, token: str, service: str) -> str:
    answer = await call(s, "POST", f"{base}/api/v1/integrations/{service}/sync", 202, token)
    return str(answer["sync_id"])


async def measured(
    s: aiohttp.ClientSession,
    server: Server,
    token: str,
    step: Step,
    service: str,
    start: Callable[[], Awaitable[str]],
    limit_s: float,
) -> None:
    step.peak_is_per_step = reset_peak(server.pid)
    t0 = time.perf_counter()
    sync_id = await start()
    sync = await wait_sync(s, server.base, token, service, sync_id, limit_s)
    step.seconds = time.perf_counter() - t0
    step.__dict__.update(proc_memory(server.pid))
    step.state, step.error, step.counts = sync["state"], sync.get("error"), sync["counts"]
    step.requests = step.counts.get("requests")
    if sync.get("started_at") and sync.get("finished_at"):
        elapsed = parse_ts(sync["finished_at"]) - parse_ts(sync["started_at"])
        step.server_seconds = elapsed.total_seconds()
    for key in COUNT_KEYS:
        if step.counts.get(key) != step.expected.get(key):
            step.checks.append(f"{key}: {step.counts.get(key)} (expected {step.expected[key]})")
    if step.state != "succeeded":
        raise StepFailed(f"{step.case} {step.step}: sync {step.state}: {step.error}")


async def check_resolution(
    s: aiohttp.ClientSession, base: str, token: str, service: str, changes: list[Change]
) -> list[str]:
    """What the extension would see for every changed item."""
    problems: list[str] = []
    for i in range(0, len(changes), 500):
        chunk = changes[i : i + 500]
        body = {"service": service, "external_ids": [c.external_id for c in chunk]}
        results = (await call(s, "POST", f"{base}/api/v1/resolve", 200, token, body))["results"]
        for c in chunk:
            got = results.get(c.external_id)
            if c.afterwards == "gone":
                ok = got is None
            elif got is None:
                ok = False
            else:
                ok = got["archived"] == (c.afterwards == "archived") and (
                    c.name is None or got["name"] == c.name
                )
            if not ok:
                problems.append(f"{c.what} {c.external_id}: resolves to {got}")
    return problems


async def login_token(s: aiohttp.ClientSession, server: Server, admin_password: str) -> str:
    login = await call(
        s,
        "POST",
        f"{server.base}/api/v1/auth/login",
        200,
        body={"email": ADMIN_EMAIL, "password": admin_password},
    )
    return str(login["token"])


async def resolve_step(
    s: aiohttp.ClientSession, server: Server, token: str, case: Case, inv: Inventory
) -> Step:
    """One ``POST /resolve`` of 500 ids (what a big Asana page asks), on a tree that may
    not be built yet: the peak includes building it."""
    ids = inv.items[:: max(1, len(inv.items) // RESOLVE_IDS)][:RESOLVE_IDS]
    step = Step(case.name, f"{len(ids)}-id resolve", case.items, inv.nodes)
    step.peak_is_per_step = reset_peak(server.pid)
    t0 = time.perf_counter()
    body = {"service": case.service, "external_ids": ids}
    results = (await call(s, "POST", f"{server.base}/api/v1/resolve", 200, token, body))["results"]
    step.seconds = time.perf_counter() - t0
    step.__dict__.update(proc_memory(server.pid))
    missing = [i for i in ids if results.get(i) is None]
    if missing:
        step.checks.append(f"{len(missing)} of {len(ids)} ids not resolved, e.g. {missing[0]}")
    step.state = "succeeded"
    return step


async def run_case(
    case: Case, fake: str, server: Server, admin_password: str, args: argparse.Namespace
) -> tuple[list[Step], Inventory]:
    limit_s = args.step_timeout
    conn = aiohttp.TCPConnector(limit=8)
    client_timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    steps: list[Step] = []
    async with aiohttp.ClientSession(connector=conn, timeout=client_timeout) as s:
        token = await login_token(s, server, admin_password)
        inv = await case.inventory(s, fake)
        idle = Step(case.name, "idle (after login)", case.items, inv.nodes, state="succeeded")
        idle.__dict__.update(proc_memory(server.pid))
        idle.peak_is_per_step = False
        steps.append(idle)
        total = inv.nodes
        zero = dict.fromkeys(COUNT_KEYS, 0)
        first = Step(
            case.name, "first import", case.items, total, expected={**zero, "created": total}
        )
        nochange = Step(
            case.name, "no-change re-sync", case.items, total, expected={**zero, "unchanged": total}
        )
        changes = case.changes(inv, args.change_fraction)
        expected = {**zero, "unchanged": total - len(changes)}
        for c in changes:
            expected[c.counted_as] += 1
        changed = Step(
            case.name,
            f"re-sync, {len(changes)} changed",
            case.items,
            total,
            expected=expected,
        )
        steps += [first, nochange, changed]
        try:
            await measured(
                s,
                server,
                token,
                first,
                case.service,
                lambda: enable(s, server.base, token, case, fake),
                limit_s,
            )
            await measured(
                s,
                server,
                token,
                nochange,
                case.service,
                lambda: force(s, server.base, token, case.service),
                limit_s,
            )
            if case.big:
                steps.insert(3, await resolve_step(s, server, token, case, inv))
            for c in changes:  # not timed: this is the provider's side
                await control(s, fake, c.method, **c.kwargs)
            await measured(
                s,
                server,
                token,
                changed,
                case.service,
                lambda: force(s, server.base, token, case.service),
                limit_s,
            )
            changed.checks += await check_resolution(s, server.base, token, case.service, changes)
            listing = await call(s, "GET", f"{server.base}/api/v1/integrations", 200, token)
            status = {i["service"]: i["status"] for i in listing["items"]}.get(case.service)
            if status != "ok":
                changed.checks.append(f"integration status {status!r}, not 'ok'")
        except StepFailed as exc:
            print(f"  {exc}", file=sys.stderr)
    return steps, inv


async def last_poll(s: aiohttp.ClientSession, server: Server, token: str, service: str) -> Any:
    listing = await call(s, "GET", f"{server.base}/api/v1/integrations", 200, token)
    return {i["service"]: i for i in listing["items"]}[service].get("last_poll")


async def next_poll(
    s: aiohttp.ClientSession, server: Server, token: str, service: str, after: Any, limit_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        poll = await last_poll(s, server, token, service)
        if poll and poll != after:
            return dict(poll)
        await asyncio.sleep(0.1)
    raise StepFailed(f"no incremental check within {limit_s:.0f} s")


async def run_polls(
    case: Case, fake: str, server: Server, admin_password: str, inv: Inventory, full_requests: int
) -> list[Step]:
    """The server runs with its scheduler and ``TT_SYNC_POLL_S``: requests of no-change
    checks, then the delay from a task created upstream to the task being resolvable."""
    limit_s = POLL_PERIOD_S * 6.0
    steps: list[Step] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
        token = await login_token(s, server, admin_password)
        quiet = Step(case.name, "incremental check, no change", case.items, inv.nodes)
        changed = Step(case.name, "incremental check, new task", case.items, inv.nodes)
        steps += [quiet, changed]
        quiet.expected = {"requests_at_most": max(1, int(full_requests * TARGET_POLL_SHARE))}
        try:
            quiet.peak_is_per_step = reset_peak(server.pid)
            poll = await next_poll(s, server, token, case.service, None, limit_s)
            polls = []
            t0 = time.perf_counter()
            for _ in range(3):
                poll = await next_poll(s, server, token, case.service, poll, limit_s)
                polls.append(poll)
            quiet.seconds = (time.perf_counter() - t0) / len(polls)  # time between checks
            quiet.__dict__.update(proc_memory(server.pid))
            quiet.requests = max(int(p.get("requests") or 0) for p in polls)
            quiet.counts = {"created": 0, "updated": 0, "requests": quiet.requests}
            quiet.state = "succeeded"
            for p in polls:
                if p.get("error") or p.get("created") or p.get("updated"):
                    quiet.checks.append(f"a no-change check reported {p}")
            project = inv.projects[len(inv.projects) // 2]
            changed.peak_is_per_step = reset_peak(server.pid)
            t0 = time.perf_counter()
            gid = await control(
                s,
                fake,
                "add_task",
                project=project,
                name="Created upstream",
                section=inv.sections.get(project),
            )
            body = {"service": case.service, "external_ids": [str(gid)]}
            while True:
                answer = await call(s, "POST", f"{server.base}/api/v1/resolve", 200, token, body)
                if answer["results"].get(str(gid)):
                    break
                if time.perf_counter() - t0 > limit_s * 2:
                    raise StepFailed(f"the new task was not resolvable after {limit_s * 2:.0f} s")
                await asyncio.sleep(0.2)
            changed.seconds = time.perf_counter() - t0
            changed.__dict__.update(proc_memory(server.pid))
            found = await last_poll(s, server, token, case.service)
            changed.requests = int(found.get("requests") or 0)
            changed.counts = {k: int(found.get(k) or 0) for k in ("created", "updated")}
            changed.counts["requests"] = changed.requests
            changed.state = "succeeded"
        except StepFailed as exc:
            print(f"  {exc}", file=sys.stderr)
    return steps


def big_peak_mb(items: int) -> float:
    return TARGET_BIG_BASE_MB + TARGET_BIG_PER_ITEM_KB * items / 1000


def apply_targets(steps: list[Step], enforce: bool, big_cases: set[str]) -> None:
    for st in steps:
        big = st.case in big_cases
        peak_mb = big_peak_mb(st.items) if big else TARGET_PEAK_MB
        limit_s: float | None = None
        requests_at_most: int | None = None
        if st.step == "first import":
            limit_s = (
                TARGET_BIG_FIRST_IMPORT_S
                if big
                else TARGET_FIRST_IMPORT_S * max(1.0, st.items / 10_000)
            )
        elif st.step == "no-change re-sync" and not big:
            limit_s = TARGET_RESYNC_S
        elif st.step == "incremental check, new task":
            limit_s = TARGET_POLL_DELAY_S
        elif st.step == "incremental check, no change":
            requests_at_most = st.expected.get("requests_at_most")
        parts = [f"<={limit_s:g} s"] if limit_s else []
        if requests_at_most is not None:
            parts.append(f"<={requests_at_most} requests")
        parts.append(f"<={peak_mb:g} MB")
        st.target = ", ".join(parts)
        if not enforce:
            st.target = "n/a (correctness only)"
            continue
        met = st.peak_mb <= peak_mb
        if limit_s is not None:
            met = met and st.seconds <= limit_s
        if requests_at_most is not None:
            met = met and st.requests is not None and st.requests <= requests_at_most
        st.target_met = met


# -- running and reporting ---------------------------------------------------------------


def run_all(args: argparse.Namespace) -> list[Step]:
    admin_password = secrets.token_urlsafe(16)
    steps: list[Step] = []
    chosen = [c for c in cases(args.scale, args.big_scale) if c.name in args.cases]
    with tempfile.TemporaryDirectory(prefix="tt-sync-bench-") as tmp, contextlib.ExitStack() as st:
        workdir = Path(tmp)
        mongo_uri = (
            st.enter_context(mongo_wire(args.mongo_python, workdir, STARTUP_TIMEOUT_S))
            if args.backend == "mongo"
            else None
        )
        for case in chosen:
            print(f"[{case.name}] starting the fake provider and the server ...", flush=True)
            with contextlib.ExitStack() as procs:
                fake = procs.enter_context(
                    fake_provider(args.python, case.fake, case.fake_args, workdir)
                )
                if mongo_uri:
                    db_url = with_database(mongo_uri, f"bench_sync_{case.name}")
                else:
                    db_url = f"sqlite:///{workdir / f'bench-{case.name}.db'}"
                urls = {
                    "TT_HEYSPACE_API_URL": f"{fake}/api",
                    "TT_PIVOTAL_API_URL": f"{fake}/services/v5",
                    "TT_ASANA_API_URL": f"{fake}/api/1.0",
                    "TT_ASANA_OAUTH_URL": f"{fake}/-",
                    "TT_ASANA_CLIENT_ID": ASANA_CLIENT[0],
                    "TT_ASANA_CLIENT_SECRET": ASANA_CLIENT[1],
                    # The loopback fake has no rate limit; the timings are the server's.
                    "TT_ASANA_RATE_PER_MIN": "0",
                    # One key for both servers of a case: the restarted one must read the
                    # credentials the first one stored.
                    "TT_SECRET_KEY": secrets.token_urlsafe(32),
                }
                with contextlib.ExitStack() as running:
                    server = running.enter_context(
                        tasktimer_server(
                            args.python, db_url, workdir, admin_password, STARTUP_TIMEOUT_S, urls
                        )
                    )
                    if args.py_spy:
                        args.profile_dir.mkdir(parents=True, exist_ok=True)
                        out = args.profile_dir / f"sync-{args.backend}-{case.name}.txt"
                        running.enter_context(
                            py_spy(args.py_spy, server.pid, out.resolve(), workdir)
                        )
                    case_steps, inv = asyncio.run(
                        run_case(case, fake, server, admin_password, args)
                    )
                full = next((st for st in case_steps if st.step == "first import"), None)
                if case.big and full is not None and full.correct:
                    # The same database, now with the scheduler and its incremental checks.
                    print(f"[{case.name}] restarting the server with TT_SYNC_POLL_S=5 ...")
                    polling = {
                        **urls,
                        "TT_SCHEDULER": "true",
                        "TT_SYNC_POLL_S": str(POLL_PERIOD_S),
                        "TT_SYNC_INTERVAL_S": "86400",
                    }
                    with tasktimer_server(
                        args.python, db_url, workdir, admin_password, STARTUP_TIMEOUT_S, polling
                    ) as server:
                        case_steps += asyncio.run(
                            run_polls(case, fake, server, admin_password, inv, full.requests or 0)
                        )
                for step in case_steps[1:]:
                    print(
                        f"[{case.name}] {step.step}: {step.state}, {step.seconds:.2f} s, "
                        f"{step.counts}",
                        flush=True,
                    )
                steps += case_steps
    return steps


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def print_steps(steps: list[Step]) -> None:
    head = ["case", "step", "seconds", "created", "updated", "archived", "removed"]
    head += ["unchanged", "requests", "peak MB", "RSS MB", "target", "met", "correct"]
    rows: list[list[str]] = []
    for st in steps:
        counts = [str(st.counts.get(k, "-")) for k in COUNT_KEYS]
        met = {None: "-", True: "yes", False: "NO"}[st.target_met]
        idle = st.step.startswith("idle")
        rows.append(
            [
                st.case,
                st.step,
                fmt(st.seconds),
                *(["-"] * 5 if idle else counts),
                "-" if st.requests is None else str(st.requests),
                fmt(st.peak_mb, 1) + ("" if st.peak_is_per_step else "*"),
                fmt(st.rss_mb, 1),
                "" if idle else st.target,
                "" if idle else met,
                "" if idle else ("yes" if st.correct else "NO"),
            ]
        )
    print_table(head, rows, right={2, 3, 4, 5, 6, 7, 8, 9, 10})
    print(
        "peak MB: VmHWM of the server process during that step (reset before it); "
        "* = since the process started"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=("sqlite", "mongo"), default="sqlite")
    p.add_argument(
        "--scale",
        type=float,
        help="multiplies the item counts (default 1 for sqlite, 0.05 for mongo)",
    )
    p.add_argument(
        "--cases",
        default="heyspace,pivotal,asana,asana-100k",
        type=lambda v: [c.strip() for c in v.split(",") if c.strip()],
        help="comma separated subset of heyspace,pivotal,asana,asana-100k",
    )
    p.add_argument(
        "--big-scale",
        type=float,
        help="multiplies the asana-100k sizes (default 1 for sqlite, 0.005 for mongo: "
        "the mongoeco emulator is far too slow for a big organisation)",
    )
    p.add_argument(
        "--change-fraction",
        type=float,
        default=0.01,
        help="share of the items changed upstream before the last re-sync",
    )
    p.add_argument("--step-timeout", type=float, default=300.0, help="seconds per sync")
    p.add_argument("--max-seconds", type=int, default=1800, help="abort the whole run after")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    p.add_argument("--python", default=sys.executable, help="interpreter for the server/fakes")
    p.add_argument(
        "--mongo-python",
        default=MONGO_PYTHON,
        help="Python >= 3.13 with mongoeco, for tests/mongo_wire.py",
    )
    p.add_argument(
        "--py-spy",
        metavar="EXE",
        help="profile the server with this py-spy executable (slows the server down)",
    )
    p.add_argument(
        "--profile-dir",
        type=Path,
        default=Path("."),
        help="where --py-spy writes sync-<backend>-<case>.txt (collapsed stacks)",
    )
    args = p.parse_args(argv)
    if args.scale is None:
        args.scale = 0.05 if args.backend == "mongo" else 1.0
    if args.big_scale is None:
        args.big_scale = 0.005 if args.backend == "mongo" else 1.0
    unknown = set(args.cases) - {"heyspace", "pivotal", "asana", "asana-100k"}
    if unknown or not args.cases:
        p.error(f"unknown cases: {sorted(unknown)}")
    if not (0 < args.scale <= 10) or not (0 < args.change_fraction < 1):
        p.error("--scale must be in (0, 10] and --change-fraction in (0, 1)")
    if not 0 < args.big_scale <= 2:
        p.error("--big-scale must be in (0, 2]")
    return args


def _out_of_time(signum: int, frame: object) -> None:
    raise Deadline


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_signals()
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(args.max_seconds)
    full = args.backend == "sqlite" and args.scale >= 1.0 and args.big_scale >= 1.0
    print(
        f"Sync import benchmark: backend {args.backend}, scale {args.scale:g}, cases "
        f"{','.join(args.cases)}, {os.cpu_count()} CPUs; usually under a minute per case "
        f"at full size, aborted after {args.max_seconds} s.",
        flush=True,
    )
    try:
        steps = run_all(args)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except Deadline:
        print(f"aborted after {args.max_seconds} s; child processes stopped", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; child processes stopped", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)
    big_cases = {c.name for c in cases(args.scale, args.big_scale) if c.big}
    apply_targets([s for s in steps if not s.step.startswith("idle")], full, big_cases)
    print()
    print_steps(steps)
    problems = [(st, c) for st in steps for c in st.checks]
    failed = [st for st in steps if not st.step.startswith("idle") and not st.correct]
    for st in failed:
        print(f"FAILED [{st.case}] {st.step}: state {st.state}, error {st.error}")
    for st, check in problems[:20]:
        print(f"check failed [{st.case}] {st.step}: {check}")
    if not failed:
        print("correctness: every sync succeeded with the expected counts and resolution")
    if args.json:
        write_json(
            args.json,
            {
                "backend": args.backend,
                "scale": args.scale,
                "targets": {
                    "enforced": full,
                    "first_import_s_per_10000_items": TARGET_FIRST_IMPORT_S,
                    "no_change_resync_s": TARGET_RESYNC_S,
                    "peak_rss_mb": TARGET_PEAK_MB,
                    "big": {
                        "first_import_s": TARGET_BIG_FIRST_IMPORT_S,
                        "peak_rss_mb": f"{TARGET_BIG_BASE_MB:g} + "
                        f"{TARGET_BIG_PER_ITEM_KB:g} KB per item",
                        "poll_delay_s": TARGET_POLL_DELAY_S,
                        "no_change_poll_share_of_full_sync_requests": TARGET_POLL_SHARE,
                    },
                },
                "results": [{**asdict(st), "correct": st.correct} for st in steps],
            },
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
