"""The fakes' HTTP control surface and their command-line runner."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.integrations.heyspace import HeySpaceConnector, heyspace_login
from server.integrations.http import ProviderHTTP
from tests.fakes import asana, heyspace, pivotal
from tests.fakes.checks import Saved, collect

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
ROOT = Path(__file__).resolve().parents[2]


async def control(
    session: aiohttp.ClientSession, server: TestServer, method: str, **kw: Any
) -> Any:
    async with session.post(server.make_url(f"/_control/{method}"), json=kw) as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["result"]


async def test_heyspace_is_driven_over_http(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, http: ProviderHTTP
) -> None:
    server = await aiohttp_server(heyspace.create_app())
    await control(session, server, "add_user", email="a@example.com", password="pw")
    org = await control(session, server, "add_workspace", name="Acme")
    space = await control(session, server, "add_space", workspace_id=org, name="Web")
    lst = await control(session, server, "add_list", space_id=space, name="To do")
    card = await control(session, server, "add_card", list_id=lst, name="Draft")
    await control(session, server, "rename", id=card, name="Final")
    await control(session, server, "complete_card", card_id=card)

    base = str(server.make_url(heyspace.API))
    creds = await heyspace_login(http, base, "a@example.com", "pw")
    nodes = await collect(HeySpaceConnector(http, base, creds, Saved()))
    last = nodes[-1]
    assert (last.external_id, last.name, last.state) == (card, "Final", "completed")

    counts = await control(session, server, "generate", spaces=1, cards=5)
    assert counts["cards"] == 5


async def test_faults_and_stats_over_http(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    state = pivotal.PivotalState()
    token = state.add_user("a@example.com")
    server = await aiohttp_server(pivotal.create_app(state))
    headers = {"X-TrackerToken": token}
    await control(session, server, "faults/fail_nth", n=2, status=502)
    await control(session, server, "faults/rate_limit", times=1, retry_after=3, path="/me")
    statuses = []
    for path in ("/projects", "/projects", "/me", "/me"):
        async with session.get(server.make_url(pivotal.API + path), headers=headers) as resp:
            statuses.append((resp.status, resp.headers.get("Retry-After")))
    assert statuses == [(200, None), (502, None), (429, "3"), (200, None)]
    async with session.get(server.make_url("/_control/stats")) as resp:
        stats = await resp.json()
    assert stats["requests"] == 4
    assert stats["paths"][f"{pivotal.API}/me"] == 2


async def test_control_refuses_unknown_methods_and_bad_arguments(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    server = await aiohttp_server(pivotal.create_app())
    async with session.post(server.make_url("/_control/__init__"), json={}) as resp:
        assert resp.status == 404
    async with session.post(server.make_url("/_control/add_story"), json={"nope": 1}) as resp:
        assert resp.status == 400


@pytest.mark.parametrize("name", ["heyspace", "pivotal", "asana"])
async def test_runner_serves_a_fake(name: str, session: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"tests.fakes.{name}",
        "--port",
        "0",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        async with session.get(f"{match.group(0)}/_control/stats") as resp:
            assert resp.status == 200
            assert (await resp.json())["requests"] == 0
    finally:
        proc.terminate()
        await proc.communicate()


async def test_asana_big_organisation_and_new_faults_over_http(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    state = asana.AsanaState()
    server = await aiohttp_server(asana.create_app(state))
    counts = await control(
        session,
        server,
        "generate",
        projects=200,
        tasks=100_000,
        subtask_every=100,
        multi_home_every=50,
        multi_home_subtask_every=5,
    )
    assert counts == {
        "workspaces": 1,
        "projects": 200,
        "tasks": 100_000,
        "subtasks": 1_000,
        "multi_homed": 2_000,
        "multi_homed_subtasks": 200,
    }
    ws, project = next(iter(state.workspaces)), next(iter(state.projects))
    await control(session, server, "set_premium", workspace=ws)
    await control(session, server, "forbid", gid=project)
    await control(session, server, "set_offset_expiry", seconds=30, requests=5)
    await control(session, server, "set_search_lag", seconds=2)
    await control(session, server, "set_registration", kind="granular", scopes=["tasks:read"])
    assert state.premium == {ws} and state.forbidden == {project}
    assert (state.offset_ttl_s, state.offset_ttl_requests, state.search_lag_s) == (30, 5, 2)
    assert state.registration == "granular" and state.app_scopes == {"tasks:read"}
    token = state.tokens.issue(str(state.authorizing_user))["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    url = server.make_url(f"{asana.API}/tasks")
    async with session.get(url, params={"project": project}, headers=headers) as resp:
        assert resp.status == 403
    other = list(state.projects)[1]
    params = {"project": other, "limit": "100", "opt_fields": "name,modified_at"}
    async with session.get(url, params=params, headers=headers) as resp:
        page = await resp.json()
    assert len(page["data"]) == 100 and page["next_page"]["offset"]
