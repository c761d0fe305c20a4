"""Asana OAuth (PKCE) and connector against the fake Asana over real HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from server.integrations.asana import (
    OFFSET_RESTARTS,
    AsanaConnector,
    asana_authorize_url,
    asana_exchange_code,
    new_code_verifier,
    new_state,
)
from server.integrations.base import Credentials, ProviderAuthError, ProviderError
from server.integrations.http import ProviderHTTP
from tests.fakes.asana import API, CLIENT_ID, CLIENT_SECRET, OAUTH, AsanaState, create_app
from tests.fakes.checks import Saved, assert_tree, collect

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
