"""HeySpace connector against the fake HeySpace over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.integrations.base import ProviderAuthError, ProviderError, SnapshotNode
from server.integrations.heyspace import HeySpaceConnector, heyspace_login
from server.integrations.http import ProviderHTTP
from tests.fakes.checks import Saved, assert_batch, assert_tree, collect
from tests.fakes.heyspace import API, HeySpaceState, create_app

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
EMAIL, PASSWORD = "owner@example.com", "correct horse"


@pytest.fixture
def state() -> HeySpaceState:
    s = HeySpaceState()
    s.add_user(EMAIL, PASSWORD)
    return s


@pytest.fixture
async def base(aiohttp_server: ServerFactory, state: HeySpaceState) -> str:
    server = await aiohttp_server(create_app(state))
    return str(server.make_url(API))


async def connect(http: ProviderHTTP, base: str, saver: Saved) -> HeySpaceConnector:
    credentials = await heyspace_login(http, base, EMAIL, PASSWORD)
    return HeySpaceConnector(http, base, credentials, saver)


async def test_login_stores_tokens_not_the_password(http: ProviderHTTP, base: str) -> None:
    credentials = await heyspace_login(http, base, EMAIL, PASSWORD)
    assert credentials["access_token"] and credentials["refresh_token"]
    assert credentials["email"] == EMAIL
    assert PASSWORD not in repr(credentials)


async def test_wrong_password_is_an_auth_error(http: ProviderHTTP, base: str) -> None:
    with pytest.raises(ProviderAuthError) as info:
        await heyspace_login(http, base, EMAIL, "wrong-password-123")
    assert "wrong-password-123" not in str(info.value)


async def test_snapshot_maps_the_whole_tree(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    org = state.add_workspace("Acme")
    space = state.add_space(org, "Website")
    old_space = state.add_space(org, "Old site")
    state.archive(old_space)
    todo = state.add_list(space, "To do")
    done = state.add_list(space, "Done")
    c_active = state.add_card(todo, "Write copy")
    c_done = state.add_card(done, "Pick colours")
    state.complete_card(c_done)
    c_archived = state.add_card(todo, "Old idea")
    state.archive(c_archived)
    c_deleted = state.add_card(todo, "Mistake")
    state.delete_card(c_deleted)
    c_orphan = state.add_card(todo, "Card without list")
    state._card(c_orphan)["taskListId"] = None

    nodes = await collect(await connect(http, base, saver))
    by_id = assert_tree(nodes)

    assert [(n.kind, n.name) for n in nodes[:2]] == [("workspace", "Acme"), ("space", "Website")]
    assert by_id[org].parent_external_id is None
    assert by_id[space].parent_external_id == org
    assert by_id[old_space].state == "archived"
    assert by_id[todo].kind == "list" and by_id[todo].parent_external_id == space
    card = by_id[c_active]
    assert (card.kind, card.parent_external_id, card.state) == ("card", todo, "active")
    assert card.url == f"https://app.hey.space/projects/{space}/kanban?taskId={c_active}"
    assert by_id[c_done].parent_external_id == done
    assert by_id[c_done].state == "completed"
    assert by_id[c_archived].state == "archived"
    assert by_id[c_deleted].state == "deleted"
    assert by_id[c_orphan].parent_external_id == space
    assert {n.workspace_id for n in nodes} == {org}
    assert len(nodes) == 1 + 2 + 2 + 5


async def test_cards_are_paged(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    counts = state.generate(spaces=1, lists_per_space=2, cards=250)
    state.set_max_limit(40)  # the server may clamp the page size below what was asked
    nodes = await collect(await connect(http, base, saver))
    cards = [n for n in nodes if n.kind == "card"]
    assert len(cards) == counts["cards"] == 250
    assert len({n.external_id for n in cards}) == 250
    project_id = next(n.external_id for n in nodes if n.kind == "space")
    assert state.faults.paths[f"{API}/projects/{project_id}/tasks"] == 7  # ceil(250 / 40)


async def test_ten_thousand_cards(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=10, cards=10_000)
    nodes = await collect(await connect(http, base, saver))
    assert sum(n.kind == "card" for n in nodes) == 10_000


async def test_expired_token_is_refreshed_once_and_saved(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=2, cards=20)
    connector = await connect(http, base, saver)
    before = connector.credentials
    state.expire_tokens()

    nodes = await collect(connector)
    assert sum(n.kind == "card" for n in nodes) == 20
    assert state.tokens.refreshes == 1
    assert len(saver.calls) == 1
    saved = saver.calls[0]
    assert saved["access_token"] != before["access_token"]
    # The fake rotates refresh tokens: the new one must be what gets stored.
    assert saved["refresh_token"] != before["refresh_token"]
    assert connector.credentials == saved


async def test_refused_refresh_is_an_auth_error(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.add_workspace("Acme")
    connector = await connect(http, base, saver)
    state.expire_tokens()
    state.revoke_refresh_tokens()
    with pytest.raises(ProviderAuthError):
        await collect(connector)
    assert saver.calls == []


async def test_failure_mid_stream_raises_after_partial_output(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=1, cards=300)
    connector = await connect(http, base, saver)
    state.faults.fail_path("/tasks", status=500, times=None)
    seen = []
    with pytest.raises(ProviderError) as info:
        async for node in connector.snapshot():
            seen.append(node)
    assert info.value.status == 500
    # A space is read whole before it is yielded: nothing of it came out.
    assert [n.kind for n in seen] == ["workspace"]


async def test_one_forbidden_space_is_partial_and_the_rest_complete(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=3, lists_per_space=1, cards=30)
    closed = list(state.projects)[1]
    state.forbid(closed)
    nodes = await collect(await connect(http, base, saver))
    by_id = assert_tree(nodes)
    assert by_id[closed].partial and sum(n.partial for n in nodes) == 1
    assert not any(n.parent_external_id == closed for n in nodes)
    assert sum(n.kind == "card" for n in nodes) == 20
    # The incremental check skips it too instead of failing.
    c = await connect(http, base, saver)
    _, cstate = await c.changes(None, budget=10)
    for _ in range(3):
        c = await connect(http, base, saver)
        _, cstate = await c.changes(cstate, budget=10)


async def test_truncated_card_paging_is_an_error(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=1, cards=300)
    state.set_truncate_after(150)
    with pytest.raises(ProviderError, match="empty page"):
        await collect(await connect(http, base, saver))


async def test_malformed_json_mid_stream(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=2, cards=10)
    connector = await connect(http, base, saver)
    state.faults.malformed(path="/lists")
    with pytest.raises(ProviderError, match="malformed JSON"):
        await collect(connector)


async def test_rate_limit_and_5xx_are_retried(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=2, cards=10)
    connector = await connect(http, base, saver)
    state.faults.rate_limit(times=2, retry_after=0.01, path="/organizations")
    state.faults.fail_nth(state.faults.requests + 4, status=502)
    nodes = await collect(connector)
    assert sum(n.kind == "card" for n in nodes) == 10
    assert state.faults.rules == []  # every injected failure was met and retried


async def run_check(
    http: ProviderHTTP, base: str, saver: Saved, cstate: dict[str, Any] | None, budget: int
) -> tuple[list[SnapshotNode], dict[str, Any], int]:
    c = await connect(http, base, saver)
    nodes, new_state = await c.changes(cstate, budget=budget)
    json.dumps(new_state)
    return nodes, new_state, c.requests


async def test_changes_reread_card_pages_and_report_only_what_differs(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=3, lists_per_space=2, cards=600)  # 2 pages per space
    nodes, cstate, spent = await run_check(http, base, saver, None, 4)
    assert nodes == [] and spent == 1 + 1  # organisations, spaces of the one organisation
    # The first time round every page is new to the check: its cards are reported once
    # (6 pages found one after the other and each space's lists, 4 requests a check).
    reported: set[str] = set()
    for _ in range(10):
        nodes, cstate, spent = await run_check(http, base, saver, cstate, 4)
        assert spent <= 4
        reported |= {n.external_id for n in nodes if n.kind == "card"}
    assert len(reported) == 600
    for _ in range(3):
        nodes, cstate, spent = await run_check(http, base, saver, cstate, 4)
        assert nodes == [] and spent <= 4

    space = list(state.projects)[1]
    new_list = state.add_list(space, "Arrived upstream")
    card = state.add_card(new_list, "Created upstream")
    renamed = next(iter(state.tasks[list(state.projects)[2]]))
    state.rename(renamed, "Renamed upstream")
    archived = next(iter(state.tasks[next(iter(state.projects))]))
    state.archive(archived)
    found: dict[str, SnapshotNode] = {}
    # Within two rotations (about 6 pages, 4 requests a check, lists read when a card
    # names a new one).
    for _ in range(8):
        nodes, cstate, spent = await run_check(http, base, saver, cstate, 4)
        assert spent <= 4
        found.update(assert_batch(nodes))
        if card in found and renamed in found:
            break
    assert found[new_list].parent_external_id == space
    assert found[card].parent_external_id == new_list
    assert found[renamed].name == "Renamed upstream"
    assert archived not in found  # archiving is the full reconcile's decision
    assert {n.state for n in found.values()} <= {"active", "completed"}
    snapshot = {n.external_id: n for n in await collect(await connect(http, base, saver))}
    assert all(node == snapshot[node.external_id] for node in found.values())


async def test_changes_find_new_spaces_when_the_rotation_goes_round(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=2, lists_per_space=1, cards=10)
    _, cstate, _ = await run_check(http, base, saver, None, 2)
    org = next(iter(state.orgs))
    space = state.add_space(org, "New space")
    lst = state.add_list(space, "Its list")
    card = state.add_card(lst, "Its card")
    found: dict[str, SnapshotNode] = {}
    for _ in range(10):
        nodes, cstate, spent = await run_check(http, base, saver, cstate, 2)
        assert spent <= 2
        found.update({n.external_id: n for n in nodes})
        if card in found:
            break
    assert found[space].parent_external_id == org
    assert found[card].parent_external_id == lst


async def test_a_snapshot_after_the_baseline_completes_it(
    http: ProviderHTTP, base: str, state: HeySpaceState, saver: Saved
) -> None:
    state.generate(spaces=2, lists_per_space=2, cards=400)
    c = await connect(http, base, saver)
    nodes, cstate = await c.changes(None, budget=4)  # as the service does: before the sync
    assert len(await collect(c)) == 1 + 2 + 4 + 400
    cstate = json.loads(json.dumps(cstate))  # stored after the snapshot was applied
    for _ in range(4):
        nodes, cstate, spent = await run_check(http, base, saver, cstate, 4)
        assert nodes == [] and spent <= 4  # nothing re-reported after a full sync
    space = next(iter(state.projects))
    card = state.add_card(next(iter(state.lists)), "New after the sync")
    found: set[str] = set()
    for _ in range(4):
        nodes, cstate, _ = await run_check(http, base, saver, cstate, 4)
        found |= {n.external_id for n in nodes}
    assert card in found and space not in found
