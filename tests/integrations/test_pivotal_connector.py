"""Pivotal Tracker connector against the fake Pivotal Tracker over real HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.integrations.base import ProviderAuthError, ProviderError
from server.integrations.http import ProviderHTTP
from server.integrations.pivotal import PivotalConnector, pivotal_verify
from tests.fakes.checks import FAST, assert_tree, collect
from tests.fakes.pivotal import API, PivotalState, create_app

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def state() -> PivotalState:
    s = PivotalState()
    s.add_user("owner@example.com", "Owner", token=TOKEN)
    return s


@pytest.fixture
async def base(aiohttp_server: ServerFactory, state: PivotalState) -> str:
    server = await aiohttp_server(create_app(state))
    return str(server.make_url(API))


async def connector(http: ProviderHTTP, base: str) -> PivotalConnector:
    return PivotalConnector(http, base, await pivotal_verify(http, base, TOKEN))


async def test_verify_returns_the_token_and_user(http: ProviderHTTP, base: str) -> None:
    credentials = await pivotal_verify(http, base, TOKEN)
    assert credentials["api_token"] == TOKEN
    assert credentials["user"]["email"] == "owner@example.com"
    assert isinstance(credentials["user"]["id"], str)


async def test_bad_token_is_an_auth_error(http: ProviderHTTP, base: str) -> None:
    with pytest.raises(ProviderAuthError) as info:
        await pivotal_verify(http, base, "not-a-valid-token-42")
    assert "not-a-valid-token-42" not in str(info.value)


async def test_snapshot_maps_projects_lists_and_stories(
    http: ProviderHTTP, base: str, state: PivotalState
) -> None:
    state.add_user("dev@example.com", "Dev")
    project = state.add_project("Website")
    hidden = state.add_project("Not mine", member_emails=["dev@example.com"])
    state.add_story(hidden, "Invisible")
    stories = {
        s: state.add_story(project, f"{s} story", s)
        for s in ("unscheduled", "planned", "started", "rejected", "accepted")
    }

    nodes = await collect(await connector(http, base))
    by_id = assert_tree(nodes)
    p = str(project)
    pid = f"project:{p}"  # projects are prefixed so they never collide with story ids
    assert str(hidden) not in by_id and f"project:{hidden}" not in by_id
    assert by_id[pid].kind == "project" and by_id[pid].parent_external_id is None
    assert by_id[pid].name == "Website"
    assert set(by_id[pid].member_emails) == {"owner@example.com", "dev@example.com"}
    assert all(by_id[f"{p}:{k}"].parent_external_id == pid for k in ("icebox", "done"))
    lists = [n for n in nodes if n.kind == "list"]
    assert [(n.external_id, n.name) for n in lists] == [
        (f"{p}:icebox", "Icebox"),
        (f"{p}:backlog", "Backlog"),
        (f"{p}:current", "Current"),
        (f"{p}:done", "Done"),
    ]
    expected_list = {
        "unscheduled": "icebox",
        "planned": "backlog",
        "started": "current",
        "rejected": "current",
        "accepted": "done",
    }
    for story_state, story_id in stories.items():
        node = by_id[str(story_id)]
        assert node.kind == "story"
        assert node.parent_external_id == f"{p}:{expected_list[story_state]}"
        assert node.state == ("completed" if story_state == "accepted" else "active")
        assert node.url == f"https://www.pivotaltracker.com/story/show/{story_id}"
    assert len(nodes) == 1 + 4 + 5


async def test_pages_by_returned_headers_not_requested_size(
    http: ProviderHTTP, base: str, state: PivotalState
) -> None:
    state.generate(projects=1, stories=30)
    state.set_page_cap(7)  # the server returns fewer stories than the connector asks for
    nodes = await collect(await connector(http, base))
    stories = [n for n in nodes if n.kind == "story"]
    assert len(stories) == 30 and len({n.external_id for n in stories}) == 30
    project_id = next(n.external_id for n in nodes if n.kind == "project").removeprefix("project:")
    assert state.faults.paths[f"{API}/projects/{project_id}/stories"] == 5  # ceil(30 / 7)


async def test_five_thousand_stories(http: ProviderHTTP, base: str, state: PivotalState) -> None:
    state.generate(projects=1, stories=5_000)
    nodes = await collect(await connector(http, base))
    assert sum(n.kind == "story" for n in nodes) == 5_000


async def test_truncated_paging_is_an_error(
    http: ProviderHTTP, base: str, state: PivotalState
) -> None:
    state.generate(projects=1, stories=1_200)
    state.set_truncate_after(600)
    with pytest.raises(ProviderError, match="pagination ended at 500 of 1200"):
        await collect(await connector(http, base))


async def test_failure_mid_stream_raises(
    http: ProviderHTTP, base: str, state: PivotalState
) -> None:
    state.generate(projects=2, stories=10)
    c = await connector(http, base)
    second = list(state.projects)[1]
    state.faults.fail_path(f"/projects/{second}/stories", status=503, times=None)
    seen = []
    with pytest.raises(ProviderError) as info:
        async for node in c.snapshot():
            seen.append(node)
    assert info.value.status == 503
    assert sum(n.kind == "story" for n in seen) == 10  # the first project came through


async def test_missing_pagination_headers_are_an_error(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    async def projects(request: web.Request) -> web.Response:
        return web.json_response([{"id": 1, "name": "P"}])

    async def memberships(request: web.Request) -> web.Response:
        return web.json_response([])

    async def stories(request: web.Request) -> web.Response:
        return web.json_response([{"id": 5, "name": "S", "current_state": "started"}])

    app = web.Application()
    app.router.add_get("/projects", projects)
    app.router.add_get("/projects/1/memberships", memberships)
    app.router.add_get("/projects/1/stories", stories)
    server = await aiohttp_server(app)
    c = PivotalConnector(http, str(server.make_url("")), {"api_token": TOKEN})
    with pytest.raises(ProviderError, match="X-Tracker-Pagination-Total"):
        await collect(c)


async def test_rate_limit_is_retried(http: ProviderHTTP, base: str, state: PivotalState) -> None:
    state.generate(projects=1, stories=10)
    c = await connector(http, base)
    state.faults.rate_limit(times=2, retry_after=0.01, path="/stories")
    nodes = await collect(c)
    assert sum(n.kind == "story" for n in nodes) == 10
    assert state.faults.rules == []


async def test_slow_response_times_out_and_is_retried(
    session: aiohttp.ClientSession, base: str, state: PivotalState
) -> None:
    state.generate(projects=1, stories=10)
    http = ProviderHTTP(session, policy=replace(FAST, timeout=0.2))
    c = await connector(http, base)
    state.faults.slow(0.5, path="/stories", times=1)
    nodes = await collect(c)
    assert sum(n.kind == "story" for n in nodes) == 10
    assert state.faults.paths[f"{API}/projects/{next(iter(state.projects))}/stories"] == 2
