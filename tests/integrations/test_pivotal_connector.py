"""Pivotal Tracker connector against the fake Pivotal Tracker over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.integrations.base import ProviderAuthError, ProviderError
from server.integrations.http import ProviderHTTP
from server.integrations.pivotal import PivotalConnector, pivotal_verify
from tests.fakes.checks import FAST, assert_batch, assert_tree, collect
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


@pytest.mark.parametrize("kind", ["add", "delete"])
async def test_a_total_that_changes_while_paging_rereads_the_listing(
    http: ProviderHTTP, base: str, state: PivotalState, kind: str
) -> None:
    state.generate(projects=1, stories=30)
    state.set_page_cap(10)
    project_id = next(iter(state.projects))
    # Right after the first page a story is added (or removed) at the front: by offset, the
    # next page would repeat (or skip) one. The changed total gives it away.
    state.set_churn(project_id, kind, times=1)
    c = await connector(http, base)
    nodes = await collect(c)
    stories = [n.external_id for n in nodes if n.kind == "story"]
    assert len(stories) == len(set(stories))
    assert set(stories) == {str(i) for i in state.stories[project_id]}
    assert len(stories) == (31 if kind == "add" else 29)
    # Two pages (the second shows the new total), then the whole listing again, plus
    # /projects and memberships.
    pages = 2 + (4 if kind == "add" else 3)
    assert state.faults.paths[f"{API}/projects/{project_id}/stories"] == pages
    assert c.requests == 2 + pages


async def test_a_listing_that_never_settles_is_an_error(
    http: ProviderHTTP, base: str, state: PivotalState
) -> None:
    state.generate(projects=1, stories=30)
    state.set_page_cap(10)
    state.set_churn(next(iter(state.projects)), "add", times=100)
    with pytest.raises(ProviderError, match="kept changing"):
        await collect(await connector(http, base))


async def test_one_forbidden_project_is_partial(
    http: ProviderHTTP, base: str, state: PivotalState
) -> None:
    state.generate(projects=3, stories=5)
    closed = list(state.projects)[1]
    state.forbid(closed)
    nodes = await collect(await connector(http, base))
    by_id = assert_tree(nodes)
    assert by_id[f"project:{closed}"].partial
    assert sum(n.partial for n in nodes) == 1
    assert sum(n.kind == "story" for n in nodes) == 10
    assert not any(n.parent_external_id == f"project:{closed}" for n in nodes)


async def test_changes_use_updated_after_and_report_each_change_once(
    http: ProviderHTTP, base: str, state: PivotalState
) -> None:
    state.generate(projects=3, stories=40)
    c = await connector(http, base)
    nodes, cstate = await c.changes(None, budget=10)
    assert nodes == [] and c.requests == 1
    json.dumps(cstate)
    c = await connector(http, base)
    nodes, cstate = await c.changes(cstate, budget=10)
    assert nodes == [] and c.requests == 1 + 3  # /projects, one updated_after per project

    first, second, third = list(state.projects)
    story = next(iter(state.stories[first]))
    state.rename_story(story, "Renamed upstream")
    added = state.add_story(second, "Created upstream", "started")
    accepted = next(iter(state.stories[third]))
    state.set_story_state(accepted, "accepted")
    new_project = state.add_project("Brand new")
    in_new = state.add_story(new_project, "In the new project")

    c = await connector(http, base)
    nodes, cstate = await c.changes(cstate, budget=10)
    by_id = assert_batch(nodes)
    assert by_id[str(story)].name == "Renamed upstream"
    assert by_id[str(added)].parent_external_id == f"{second}:current"
    assert str(accepted) not in by_id  # acceptance removes: the full reconcile decides
    assert by_id[f"project:{new_project}"].kind == "project"
    assert by_id[str(in_new)].parent_external_id == f"{new_project}:backlog"
    snapshot = {n.external_id: n for n in await collect(await connector(http, base))}
    assert all(node == snapshot[node.external_id] for node in nodes)
    c = await connector(http, base)
    nodes, cstate = await c.changes(cstate, budget=10)
    assert nodes == []


async def test_changes_rotate_through_projects_inside_the_budget(
    http: ProviderHTTP, base: str, state: PivotalState
) -> None:
    state.generate(projects=12, stories=3)
    c = await connector(http, base)
    _, cstate = await c.changes(None, budget=5)
    last = list(state.projects)[-1]
    added = state.add_story(last, "Late")
    found = False
    for _ in range(12):
        c = await connector(http, base)
        nodes, cstate = await c.changes(cstate, budget=5)
        assert c.requests <= 5
        if any(n.external_id == str(added) for n in nodes):
            found = True
            break
    assert found
