"""Asana OAuth (PKCE) and connector against the fake Asana over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import types
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from server.integrations.asana import (
    GRANULAR_SCOPES,
    OFFSET_RESTARTS,
    AsanaConnector,
    asana_authorize_url,
    asana_exchange_code,
    new_code_verifier,
    new_state,
)
from server.integrations.base import Credentials, ProviderAuthError, ProviderError, SnapshotNode
from server.integrations.http import ProviderHTTP
from server.services.asana_flow import AsanaFlow
from tests.fakes.asana import API, CLIENT_ID, CLIENT_SECRET, OAUTH, AsanaState, create_app
from tests.fakes.checks import Saved, assert_batch, assert_tree, collect

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
REDIRECT = "http://tasktimer.test/api/v1/integrations/asana/callback"


class Fake:
    def __init__(self, state: AsanaState, server: TestServer) -> None:
        self.state = state
        self.api = str(server.make_url(API))
        self.oauth = str(server.make_url(OAUTH))


@pytest.fixture
def state() -> AsanaState:
    s = AsanaState()
    s.add_user("owner@example.com", "Owner")
    return s


@pytest.fixture
async def fake(aiohttp_server: ServerFactory, state: AsanaState) -> Fake:
    return Fake(state, await aiohttp_server(create_app(state)))


async def authorize(
    session: aiohttp.ClientSession, fake: Fake, verifier: str, state: str = "st-1"
) -> str:
    """What the browser does: open the authorize URL, follow nothing, read the code."""
    url = asana_authorize_url(fake.oauth, CLIENT_ID, REDIRECT, state, verifier)
    async with session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    return query["code"][0]


async def sign_in(session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake) -> Credentials:
    verifier = new_code_verifier()
    code = await authorize(session, fake, verifier)
    return await asana_exchange_code(
        http, fake.oauth, CLIENT_ID, CLIENT_SECRET, REDIRECT, code, verifier
    )


def make(
    http: ProviderHTTP,
    fake: Fake,
    creds: Credentials,
    saver: Saved,
    selected_workspace_ids: set[str] | None = None,
) -> AsanaConnector:
    return AsanaConnector(
        http,
        fake.api,
        fake.oauth,
        CLIENT_ID,
        CLIENT_SECRET,
        creds,
        saver,
        selected_workspace_ids,
    )


def test_authorize_url_carries_pkce_s256() -> None:
    verifier = new_code_verifier()
    assert 43 <= len(verifier) <= 128
    url = asana_authorize_url("https://app.asana.com/-", "cid", REDIRECT, "xyz", verifier)
    parts = urlsplit(url)
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://app.asana.com/-/oauth_authorize"
    )
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert q["response_type"] == "code"
    assert q["client_id"] == "cid"
    assert q["redirect_uri"] == REDIRECT
    assert q["state"] == "xyz"
    assert q["code_challenge_method"] == "S256"
    assert q["code_challenge"] == create_s256_code_challenge(verifier)
    assert verifier not in url
    assert new_state() != new_state()


async def test_code_exchange_returns_tokens_and_user(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake
) -> None:
    creds = await sign_in(session, http, fake)
    assert creds["access_token"] and creds["refresh_token"]
    assert creds["expires_at"] > time.time() + 3000
    assert creds["user"] == {
        "gid": fake.state.authorizing_user,
        "name": "Owner",
        "email": "owner@example.com",
    }


async def test_wrong_code_verifier_is_refused(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake
) -> None:
    code = await authorize(session, fake, new_code_verifier())
    wrong = new_code_verifier()
    with pytest.raises(ProviderAuthError) as info:
        await asana_exchange_code(http, fake.oauth, CLIENT_ID, CLIENT_SECRET, REDIRECT, code, wrong)
    assert wrong not in str(info.value) and code not in str(info.value)


async def test_code_is_single_use_and_client_secret_checked(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake
) -> None:
    verifier = new_code_verifier()
    code = await authorize(session, fake, verifier)
    with pytest.raises(ProviderAuthError) as info:
        await asana_exchange_code(
            http, fake.oauth, CLIENT_ID, "bad-secret-9876", REDIRECT, code, verifier
        )
    assert "bad-secret-9876" not in str(info.value)
    creds = await asana_exchange_code(
        http, fake.oauth, CLIENT_ID, CLIENT_SECRET, REDIRECT, code, verifier
    )
    assert creds["access_token"]
    with pytest.raises(ProviderAuthError):
        await asana_exchange_code(
            http, fake.oauth, CLIENT_ID, CLIENT_SECRET, REDIRECT, code, verifier
        )


async def test_snapshot_maps_selected_workspaces(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    s = fake.state
    owner = s.authorizing_user
    assert owner is not None
    colleague = s.add_user("Colleague@Example.com", "Colleague")
    ws = s.add_workspace("Acme")
    other_ws = s.add_workspace("Side job")
    project = s.add_project(ws, "Website", members=[owner, colleague])
    archived = s.add_project(ws, "Old site", archived=True)
    s.add_project(other_ws, "Elsewhere")
    backlog = s.add_section(project, "Backlog")
    in_section = s.add_task(project, "Write copy", backlog)
    loose = s.add_task(project, "No section")
    finished = s.add_task(project, "Done already", backlog)
    s.complete_task(finished)
    sub = s.add_subtask(in_section, "Proofread")
    subsub = s.add_subtask(sub, "Check commas")
    old_task = s.add_task(archived, "Old task")
    s.add_to_project(loose, archived)  # multi-homed: must appear once

    creds = await sign_in(session, http, fake)
    connector = make(http, fake, creds, saver, selected_workspace_ids={ws})
    nodes = await collect(connector)
    by_id = assert_tree(nodes)

    assert {n.workspace_id for n in nodes} == {ws}
    assert by_id[project].kind == "project" and by_id[project].parent_external_id is None
    assert set(by_id[project].member_emails) == {"owner@example.com", "Colleague@Example.com"}
    assert by_id[project].state == "active"
    assert by_id[archived].state == "archived"
    assert by_id[backlog].kind == "section" and by_id[backlog].parent_external_id == project
    task = by_id[in_section]
    assert (task.kind, task.parent_external_id, task.state) == ("task", backlog, "active")
    assert task.url == f"https://app.asana.com/0/{project}/{in_section}"
    assert by_id[loose].parent_external_id == project
    assert by_id[finished].state == "completed"
    assert (by_id[sub].kind, by_id[sub].parent_external_id) == ("subtask", in_section)
    assert by_id[subsub].parent_external_id == sub
    assert by_id[old_task].parent_external_id == archived
    assert [n.external_id for n in nodes].count(loose) == 1
    assert len(nodes) == 2 + 1 + 3 + 2 + 1
    assert saver.calls == []  # a fresh token needs no refresh

    everything = await collect(make(http, fake, creds, saver))
    assert {n.workspace_id for n in everything} == {ws, other_ws}


async def test_paging_over_many_tasks(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    counts = fake.state.generate(projects=20, tasks=5_000, subtask_every=50)
    creds = await sign_in(session, http, fake)
    nodes = await collect(make(http, fake, creds, saver))
    assert_tree(nodes)
    assert sum(n.kind == "task" for n in nodes) == counts["tasks"] == 5_000
    assert sum(n.kind == "subtask" for n in nodes) == counts["subtasks"] == 100
    assert sum(n.kind == "project" for n in nodes) == 20
    # Only tasks that have subtasks cost a subtasks request.
    subtask_calls = sum(v for k, v in fake.state.faults.paths.items() if k.endswith("/subtasks"))
    assert subtask_calls == 100


async def test_list_workspaces_and_users(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    ws = fake.state.add_workspace("Acme")
    fake.state.add_user("ann@example.com", "Ann")
    fake.state.add_user("ANN@example.com", "Ann again")
    creds = await sign_in(session, http, fake)
    connector = make(http, fake, creds, saver)
    assert await connector.list_workspaces() == [{"id": ws, "name": "Acme"}]
    users = await connector.list_users([ws])
    assert sorted(u["email"].lower() for u in users) == ["ann@example.com", "owner@example.com"]


async def test_refresh_before_expiry_keeps_refresh_token(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    fake.state.add_workspace("Acme")
    creds = await sign_in(session, http, fake)
    creds["expires_at"] = int(time.time()) + 10  # inside the refresh leeway
    connector = make(http, fake, creds, saver)
    await connector.list_workspaces()
    assert fake.state.tokens.refreshes == 1
    assert len(saver.calls) == 1
    new = saver.calls[0]
    assert new["access_token"] != creds["access_token"]
    # Asana's refresh answer has no refresh_token: the old one is kept.
    assert new["refresh_token"] == creds["refresh_token"]
    assert new["user"] == creds["user"]
    assert new["expires_at"] > time.time() + 3000


async def test_refresh_on_401_once_under_concurrency(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    fake.state.add_workspace("Acme")
    creds = await sign_in(session, http, fake)
    connector = make(http, fake, creds, saver)
    fake.state.expire_tokens()  # the server expires it although our clock says it is fine
    results = await asyncio.gather(*(connector.list_workspaces() for _ in range(5)))
    assert all(len(r) == 1 for r in results)
    assert fake.state.tokens.refreshes == 1
    assert len(saver.calls) == 1


async def test_refused_refresh_is_an_auth_error(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    fake.state.generate(projects=1, tasks=5)
    creds = await sign_in(session, http, fake)
    fake.state.expire_tokens()
    fake.state.revoke_refresh_tokens()
    with pytest.raises(ProviderAuthError) as info:
        await collect(make(http, fake, creds, saver))
    assert creds["refresh_token"] not in str(info.value)
    assert saver.calls == []


async def test_short_lived_tokens_refresh_during_a_snapshot(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    fake.state.generate(projects=2, tasks=40)
    fake.state.set_token_lifetime(0.05)
    creds = await sign_in(session, http, fake)
    connector = make(http, fake, creds, saver)
    nodes = []
    async for node in connector.snapshot():
        nodes.append(node)
        if len(nodes) == 5:
            await asyncio.sleep(0.1)  # the token dies mid-snapshot
    assert sum(n.kind == "task" for n in nodes) == 40
    assert fake.state.tokens.refreshes >= 1


async def test_an_offset_refused_every_time_fails_after_bounded_restarts(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    fake.state.generate(projects=1, sections_per_project=1, tasks=250)
    creds = await sign_in(session, http, fake)
    fake.state.set_truncate_after(100)  # the offset of the second page always "expired"
    seen = []
    with pytest.raises(ProviderError) as info:
        async for node in make(http, fake, creds, saver).snapshot():
            seen.append(node)
    assert info.value.status == 400
    # The listing is read whole before anything of the project is yielded.
    assert [n.kind for n in seen] == []
    assert fake.state.offsets_refused == 1 + OFFSET_RESTARTS


async def test_server_errors_mid_stream(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    fake.state.generate(projects=3, tasks=30)
    creds = await sign_in(session, http, fake)
    fake.state.faults.fail_path("/tasks", status=500, times=None)
    with pytest.raises(ProviderError) as info:
        await collect(make(http, fake, creds, saver))
    assert info.value.status == 500


async def test_rate_limit_is_retried(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    fake.state.generate(projects=2, tasks=20)
    creds = await sign_in(session, http, fake)
    fake.state.faults.rate_limit(times=3, retry_after=0.01, path="/tasks")
    nodes = await collect(make(http, fake, creds, saver))
    assert sum(n.kind == "task" for n in nodes) == 20
    assert fake.state.faults.rules == []


async def test_fake_rejects_limits_over_100(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake
) -> None:
    ws = fake.state.add_workspace("Acme")
    creds = await sign_in(session, http, fake)
    headers = {"Authorization": f"Bearer {creds['access_token']}"}
    with pytest.raises(ProviderError) as info:
        await http.get(
            f"{fake.api}/projects", params={"workspace": ws, "limit": "101"}, headers=headers
        )
    assert info.value.status == 400


# -- scopes: the two kinds of app registration ----------------------------------------------


async def open_authorize(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_authorize_url_sends_a_scope_only_when_configured() -> None:
    verifier = new_code_verifier()
    bare = parse_qs(
        urlsplit(asana_authorize_url("https://a/-", "c", REDIRECT, "s", verifier)).query
    )
    assert "scope" not in bare
    spaced = asana_authorize_url(
        "https://a/-", "c", REDIRECT, "s", verifier, scope="  tasks:read   projects:read "
    )
    assert parse_qs(urlsplit(spaced).query)["scope"] == ["tasks:read projects:read"]


async def test_full_permissions_app_is_refused_when_it_asks_for_scopes(
    session: aiohttp.ClientSession, fake: Fake
) -> None:
    fake.state.set_registration("full")
    verifier = new_code_verifier()
    scoped = asana_authorize_url(
        fake.oauth, CLIENT_ID, REDIRECT, "st-9", verifier, scope=GRANULAR_SCOPES
    )
    refused = await open_authorize(session, scoped)
    assert refused["error"] == "forbidden_scopes"
    assert refused["state"] == "st-9" and "code" not in refused
    assert refused["error_description"]
    plain = await open_authorize(
        session, asana_authorize_url(fake.oauth, CLIENT_ID, REDIRECT, "st-9", verifier)
    )
    assert "error" not in plain and plain["code"]


async def test_granular_app_must_name_its_scopes_and_memberships_need_sections_scope(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    s = fake.state
    s.set_registration("granular", GRANULAR_SCOPES.split())
    ws = s.add_workspace("Acme")
    project = s.add_project(ws, "Website")
    section = s.add_section(project, "Doing")
    task = s.add_task(project, "Write", section)
    verifier = new_code_verifier()
    unscoped = await open_authorize(
        session, asana_authorize_url(fake.oauth, CLIENT_ID, REDIRECT, "st", verifier)
    )
    assert unscoped["error"] == "invalid_scope"

    async def connect(scope: str) -> AsanaConnector:
        v = new_code_verifier()
        url = asana_authorize_url(fake.oauth, CLIENT_ID, REDIRECT, "st", v, scope=scope)
        code = (await open_authorize(session, url))["code"]
        creds = await asana_exchange_code(
            http, fake.oauth, CLIENT_ID, CLIENT_SECRET, REDIRECT, code, v
        )
        return make(http, fake, creds, saver)

    by_id = assert_tree(await collect(await connect(GRANULAR_SCOPES)))
    assert by_id[task].parent_external_id == section
    assert not by_id[project].partial

    # Without project_sections:read the task listing (memberships) is refused: the project
    # is kept as it is (partial), nothing under it is read.
    lacking = " ".join(x for x in GRANULAR_SCOPES.split() if x != "project_sections:read")
    nodes = await collect(await connect(lacking))
    assert [(n.external_id, n.partial) for n in nodes] == [(project, True)]


def test_callback_refusals_become_clear_messages() -> None:
    flow = AsanaFlow.__new__(AsanaFlow)
    settings = types.SimpleNamespace(asana_scopes="tasks:read")
    flow._svc = types.SimpleNamespace(_settings=settings)  # type: ignore[assignment]
    text = flow.refusal("forbidden_scopes", "may not request scopes")
    assert "full permissions" in text and "TT_ASANA_SCOPES" in text
    settings.asana_scopes = ""
    text = flow.refusal("invalid_scope", "This app must request the scopes it needs.")
    assert "granular" in text and GRANULAR_SCOPES in text
    assert "access_denied" not in flow.refusal("access_denied")
    assert "weird" in flow.refusal("weird", "something")


# -- expiring offsets ----------------------------------------------------------------------------


async def test_no_listing_offset_is_held_open_across_other_requests(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    s = fake.state
    counts = s.generate(projects=2, sections_per_project=1, tasks=500, subtask_every=2)
    creds = await sign_in(session, http, fake)
    # An offset dies as soon as any other request was answered after it was issued: only
    # reading each listing's pages back to back, before descending, survives that.
    s.set_offset_expiry(requests=0)
    nodes = await collect(make(http, fake, creds, saver))
    assert_tree(nodes)
    assert sum(n.kind == "task" for n in nodes) == counts["tasks"]
    assert sum(n.kind == "subtask" for n in nodes) == counts["subtasks"] == 250
    assert s.offsets_refused == 0


async def test_an_expired_offset_restarts_its_listing(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    s = fake.state
    s.generate(projects=1, sections_per_project=1, tasks=250)
    creds = await sign_in(session, http, fake)
    s.set_offset_expiry(seconds=0.05)
    # The first two /tasks requests are slow: the second page's offset has expired when it
    # is used, the listing starts again and then goes through.
    s.faults.slow(0.1, path="/tasks", times=2)
    nodes = await collect(make(http, fake, creds, saver))
    assert_tree(nodes)
    assert s.offsets_refused == 1
    tasks = [n.external_id for n in nodes if n.kind == "task"]
    assert len(tasks) == len(set(tasks)) == 250


# -- multi-homed subtasks and 403 ---------------------------------------------------------------


async def test_multi_homed_subtasks_are_placed_under_their_parent_once(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    s = fake.state
    ws = s.add_workspace("Acme")
    early = s.add_project(ws, "Listed first")
    home = s.add_project(ws, "Home")
    closed = s.add_project(ws, "Closed to me")
    parent = s.add_task(home, "Parent")
    sub = s.add_subtask(parent, "Also in two projects")
    s.add_to_project(sub, home)  # in its parent's project too
    s.add_to_project(sub, early)  # and in a project read before the parent's
    hidden_parent = s.add_task(closed, "Parent nobody can read")
    orphan = s.add_subtask(hidden_parent, "Reachable through another project")
    doing = s.add_section(early, "Doing")
    s.add_to_project(orphan, early, doing)
    s.forbid(closed)

    creds = await sign_in(session, http, fake)
    nodes = await collect(make(http, fake, creds, saver))
    by_id = assert_tree(nodes)
    ids = [n.external_id for n in nodes]
    assert ids.count(sub) == 1 and ids.count(orphan) == 1
    assert (by_id[sub].kind, by_id[sub].parent_external_id) == ("subtask", parent)
    # Its parent cannot be read anywhere: it is filed where it was listed.
    assert by_id[orphan].parent_external_id == doing
    assert by_id[closed].partial


async def test_one_forbidden_project_does_not_stop_the_snapshot(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    s = fake.state
    ws = s.add_workspace("Acme")
    projects = [s.add_project(ws, f"P{i}") for i in range(3)]
    tasks = [s.add_task(p, f"T{i}") for i, p in enumerate(projects)]
    secret_parent = s.add_task(projects[2], "Has private subtasks")
    s.add_subtask(secret_parent, "Private")
    s.forbid(projects[1])
    s.forbid(secret_parent)

    creds = await sign_in(session, http, fake)
    nodes = await collect(make(http, fake, creds, saver))
    by_id = assert_tree(nodes)
    assert by_id[projects[1]].partial and not by_id[projects[0]].partial
    assert tasks[1] not in by_id
    assert tasks[0] in by_id and tasks[2] in by_id
    assert by_id[secret_parent].partial
    assert not any(n.parent_external_id in (projects[1], secret_parent) for n in nodes)
    assert sum(n.partial for n in nodes) == 2


# -- request budget -------------------------------------------------------------------------------


async def test_requests_are_counted_and_avoidable_ones_skipped(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    s = fake.state
    counts = s.generate(projects=4, sections_per_project=2, tasks=1_000, subtask_every=25)
    creds = await sign_in(session, http, fake)
    before = s.faults.requests
    connector = make(http, fake, creds, saver)
    nodes = await collect(connector)
    assert connector.requests == s.faults.requests - before
    paths = s.faults.paths
    assert not any(p.endswith("/sections") for p in paths)  # sections come from memberships
    assert sum(v for p, v in paths.items() if p.endswith("/subtasks")) == counts["subtasks"]
    # 250 tasks per project at 100 a page: 3 pages each, i.e. limit=100 on every listing.
    assert paths["/api/1.0/tasks"] == 4 * 3
    # workspaces + projects (active, archived) + tasks + subtasks
    assert connector.requests == 1 + 2 + 12 + counts["subtasks"]
    assert sum(n.kind == "section" for n in nodes) == 8


# -- incremental checks ----------------------------------------------------------------------------


async def check(
    http: ProviderHTTP, fake: Fake, creds: Credentials, state: dict[str, Any] | None, budget: int
) -> tuple[list[SnapshotNode], dict[str, Any], int]:
    connector = make(http, fake, creds, Saved())
    nodes, new_state = await connector.changes(state, budget=budget)
    json.dumps(new_state)  # opaque, but JSON-serialisable
    return nodes, new_state, connector.requests


async def test_premium_workspace_checks_cost_one_search(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake
) -> None:
    s = fake.state
    s.generate(projects=5, sections_per_project=2, tasks=500, subtask_every=10, premium=True)
    creds = await sign_in(session, http, fake)
    nodes, state, spent = await check(http, fake, creds, None, 10)
    assert nodes == [] and spent <= 4
    nodes, state, spent = await check(http, fake, creds, state, 10)
    assert (nodes, spent) == ([], 1)

    project = next(iter(s.projects))
    section = s.add_section(project, "New section")
    new = s.add_task(project, "Created upstream", section)
    sub = s.add_subtask(new, "Its subtask")
    renamed = next(iter(s.tasks))
    s.rename(renamed, "Renamed upstream")
    done = list(s.tasks)[5]
    s.complete_task(done)
    ws = next(iter(s.workspaces))
    fresh_project = s.add_project(ws, "Brand new")
    in_fresh = s.add_task(fresh_project, "In the new project")

    nodes, state, spent = await check(http, fake, creds, state, 10)
    by_id = assert_batch(nodes)
    assert by_id[section].parent_external_id == project
    assert (by_id[new].kind, by_id[new].parent_external_id) == ("task", section)
    assert (by_id[sub].kind, by_id[sub].parent_external_id) == ("subtask", new)
    assert by_id[renamed].name == "Renamed upstream"
    assert done not in by_id  # completing archives: left to the full reconcile
    assert by_id[fresh_project].kind == "project"
    assert by_id[in_fresh].parent_external_id == fresh_project
    assert all(n.state == "active" for n in nodes)
    assert spent == 2  # the search and the new project's details
    snapshot = {n.external_id: n for n in await collect(make(http, fake, creds, Saved()))}
    for node in nodes:
        assert node == snapshot[node.external_id]
    # Reported once, although the next search looks a minute back.
    nodes, state, spent = await check(http, fake, creds, state, 10)
    assert (nodes, spent) == ([], 1)


async def test_search_index_lag_loses_nothing(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake
) -> None:
    s = fake.state
    s.generate(projects=2, tasks=20, premium=True)
    creds = await sign_in(session, http, fake)
    _, state, _ = await check(http, fake, creds, None, 10)
    s.set_search_lag(0.3)
    first = s.add_task(next(iter(s.projects)), "Indexed late")
    nodes, state, _ = await check(http, fake, creds, state, 10)
    assert nodes == []
    await asyncio.sleep(0.35)
    second = s.add_task(next(iter(s.projects)), "Indexed later still")
    nodes, state, _ = await check(http, fake, creds, state, 10)
    assert [n.external_id for n in nodes] == [first]
    await asyncio.sleep(0.35)
    nodes, state, _ = await check(http, fake, creds, state, 10)
    assert [n.external_id for n in nodes] == [second]


async def test_without_search_projects_rotate_inside_the_budget(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake
) -> None:
    s = fake.state
    s.generate(projects=30, sections_per_project=1, tasks=300)
    creds = await sign_in(session, http, fake)
    nodes, state, spent = await check(http, fake, creds, None, 8)
    assert nodes == [] and spent == 1 + 1 + 1 + 1  # workspaces, 402, clock, projects
    projects = list(s.projects)
    for _ in range(3):
        nodes, state, spent = await check(http, fake, creds, state, 8)
        assert nodes == [] and spent <= 8
    # A change in a project the rotation reaches last is found within one rotation
    # (30 projects, 4 rotating slots per check: at most 8 checks).
    quiet = projects[-1]
    late = s.add_task(quiet, "In a quiet project")
    found_after = None
    for n in range(1, 10):
        nodes, state, spent = await check(http, fake, creds, state, 8)
        assert spent <= 8 + 1  # a started listing is read to its end
        if any(x.external_id == late for x in nodes):
            found_after = n
            break
    assert found_after is not None and found_after <= 8
    # That project is now the most recently active: its next change is found at once.
    again = s.add_task(quiet, "Busy now")
    nodes, state, spent = await check(http, fake, creds, state, 8)
    assert again in {x.external_id for x in nodes}
    # A new project is noticed when the rotation starts again.
    brand_new = s.add_project(next(iter(s.workspaces)), "Brand new")
    s.add_task(brand_new, "First task")
    seen: set[str] = set()
    for _ in range(10):
        nodes, state, _ = await check(http, fake, creds, state, 8)
        seen |= {x.external_id for x in nodes}
        if brand_new in seen:
            break
    assert brand_new in seen


@pytest.mark.parametrize("premium", [True, False])
async def test_a_no_change_check_costs_at_most_two_percent_of_a_full_sync(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, premium: bool
) -> None:
    s = fake.state
    s.generate(
        projects=200, sections_per_project=2, tasks=20_000, subtask_every=40, premium=premium
    )
    creds = await sign_in(session, http, fake)
    full = make(http, fake, creds, Saved())
    assert sum(1 for _ in await collect(full)) > 20_000
    budget = full.requests * 2 // 100
    _, state, baseline = await check(http, fake, creds, None, budget)
    assert baseline <= 5
    for _ in range(3):
        nodes, state, spent = await check(http, fake, creds, state, budget)
        assert nodes == []
        assert spent <= budget
        if premium:
            assert spent == 1


async def test_changes_place_a_new_multi_homed_subtask_under_its_parent_once(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake
) -> None:
    s = fake.state
    s.generate(projects=2, sections_per_project=1, tasks=10)
    creds = await sign_in(session, http, fake)
    _, state, _ = await check(http, fake, creds, None, 10)
    project = next(iter(s.projects))
    parent = next(iter(s.project_tasks[project]))
    sub = s.add_subtask(parent, "New and also in the project")
    s.add_to_project(sub, project)
    nodes, state, spent = await check(http, fake, creds, state, 10)
    by_id = assert_batch(nodes)
    assert [n.external_id for n in nodes].count(sub) == 1
    assert (by_id[sub].kind, by_id[sub].parent_external_id) == ("subtask", parent)
    assert spent <= 10
    # What a check reports is what the next full snapshot says of the same items, so the
    # full sync finds nothing to correct.
    snapshot = {n.external_id: n for n in await collect(make(http, fake, creds, Saved()))}
    for node in nodes:
        assert node == snapshot[node.external_id]


@pytest.mark.parametrize("premium", [True, False])
async def test_changes_file_a_multi_homed_task_where_the_snapshot_does(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved, premium: bool
) -> None:
    s = fake.state
    ws = s.add_workspace("Acme")
    first, second = s.add_project(ws, "First"), s.add_project(ws, "Second")
    if premium:
        s.set_premium(ws)
    creds = await sign_in(session, http, fake)
    _, state, _ = await check(http, fake, creds, None, 10)
    task = s.add_task(second, "In both")
    s.add_to_project(task, first)
    nodes, state, _ = await check(http, fake, creds, state, 10)
    snapshot = {n.external_id: n for n in await collect(make(http, fake, creds, saver))}
    assert [n.parent_external_id for n in nodes if n.external_id == task] == [first]
    assert snapshot[task].parent_external_id == first


async def test_changes_stay_inside_the_selected_workspaces(
    session: aiohttp.ClientSession, http: ProviderHTTP, fake: Fake, saver: Saved
) -> None:
    s = fake.state
    chosen, other = s.add_workspace("Chosen"), s.add_workspace("Other")
    s.set_premium(chosen)
    mine, theirs = s.add_project(chosen, "Mine"), s.add_project(other, "Theirs")
    creds = await sign_in(session, http, fake)
    connector = make(http, fake, creds, saver, selected_workspace_ids={chosen})
    _, state = await connector.changes(None, budget=10)
    assert set(state["workspaces"]) == {chosen}
    inside, outside = s.add_task(mine, "Inside"), s.add_task(theirs, "Outside")
    connector = make(http, fake, creds, saver, selected_workspace_ids={chosen})
    nodes, state = await connector.changes(state, budget=10)
    assert [n.external_id for n in nodes] == [inside]
    assert outside not in {n.external_id for n in nodes}
    # Selecting the other one too: it gets a baseline (the full sync imports it); what
    # was modified within the overlap before it may be reported once.
    connector = make(http, fake, creds, saver, selected_workspace_ids={chosen, other})
    nodes, state = await connector.changes(state, budget=10)
    assert {n.external_id for n in nodes} <= {outside}
    assert set(state["workspaces"]) == {chosen, other}
    connector = make(http, fake, creds, saver, selected_workspace_ids={chosen, other})
    nodes, state = await connector.changes(state, budget=10)
    assert nodes == []
