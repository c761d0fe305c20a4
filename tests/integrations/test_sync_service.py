"""The sync service against fake providers over real HTTP, on both stores: force syncs that
never miss a change (also across two server processes on one MongoDB), which provider
failures mean re-authorisation, the streamed apply, and the light incremental check."""

from __future__ import annotations

import asyncio
from typing import Any

from server.app import create_app
from server.keys import SERVICES
from tests.api.test_timer import read_events
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, make_settings, mongo_db_url
from tests.fakes import connected
from tests.integrations.conftest import Fakes
from tests.integrations.test_sync_flow import (
    HS_EMAIL,
    HS_PASSWORD,
    force,
    heyspace_world,
    last_sync,
    tasks_by_name,
    wait_sync,
)


async def connect_heyspace(api: Api) -> None:
    status, body = await api.post(
        "/api/v1/integrations/heyspace", {"email": HS_EMAIL, "password": HS_PASSWORD}
    )
    assert status == 201, body
    assert (await last_sync(api, "heyspace"))["state"] == "succeeded"


async def resolve(api: Api, service: str, external_id: str) -> dict[str, Any] | None:
    status, body = await api.post(
        "/api/v1/resolve", {"service": service, "external_ids": [external_id]}
    )
    assert status == 200, body
    result: dict[str, Any] | None = body["results"][external_id]
    return result


def two_spaces(fakes: Fakes) -> tuple[dict[str, str], str]:
    """The HeySpace world plus a second space whose card listing the tests slow down, so
    a sync is caught after it read the first space and before it ends."""
    ids = heyspace_world(fakes.heyspace)
    other = fakes.heyspace.add_space(ids["ws"], "Other")
    fakes.heyspace.add_card(fakes.heyspace.add_list(other, "Backlog"), "Elsewhere")
    return ids, f"/api/projects/{other}/tasks"


async def until_requested(fakes: Fakes, path: str, count: int) -> None:
    for _ in range(200):
        if fakes.heyspace.faults.paths[path] >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} was never requested")


# -- A: a force sync starts no earlier than its request ---------------------------------


async def test_force_sync_after_a_setting_change_imports_the_new_card(
    admin_api: Api, fakes: Fakes
) -> None:
    ids, slow_path = two_spaces(fakes)
    await connect_heyspace(admin_api)
    seen = fakes.heyspace.faults.paths[slow_path]
    fakes.heyspace.faults.slow(0.5, path=slow_path, times=1)
    # Changing a setting starts a sync; it has read the first space when the card appears.
    await admin_api.patch(
        "/api/v1/integrations/heyspace", {"settings": {"keywords_from_ids": True}}
    )
    _, listing = await admin_api.get("/api/v1/integrations/heyspace/syncs?limit=1")
    running = listing["items"][0]
    assert running["state"] == "running"
    await until_requested(fakes, slow_path, seen + 1)
    fakes.heyspace.add_card(ids["todo"], "Late card", id="card-late")
    status, started = await admin_api.post("/api/v1/integrations/heyspace/sync")
    assert status == 202 and started["sync_id"] != running["id"]
    # A second request joins the queued one.
    user, _ = await admin_api.new_user("joiner@example.com")
    assert (await user.post("/api/v1/integrations/heyspace/sync"))[1] == started
    first = await wait_sync(admin_api, "heyspace", running["id"])
    assert first["state"] == "succeeded" and first["counts"]["created"] == 0
    sync = await wait_sync(admin_api, "heyspace", started["sync_id"])
    assert sync["state"] == "succeeded" and sync["counts"]["created"] == 1
    assert sync["started_at"] >= first["finished_at"]
    found = await resolve(admin_api, "heyspace", "card-late")
    assert found is not None and found["name"] == "Late card"


async def test_a_force_sync_with_nothing_running_starts_at_once(
    admin_api: Api, fakes: Fakes
) -> None:
    heyspace_world(fakes.heyspace)
    await connect_heyspace(admin_api)
    status, started = await admin_api.post("/api/v1/integrations/heyspace/sync")
    assert status == 202
    _, sync = await admin_api.get(f"/api/v1/integrations/heyspace/syncs/{started['sync_id']}")
    assert sync["state"] in ("running", "succeeded") and sync["started_at"] is not None
    assert (await wait_sync(admin_api, "heyspace", started["sync_id"]))["state"] == "succeeded"


async def test_force_sync_across_two_processes_on_one_mongodb(
    aiohttp_client: Any, mongo_server_url: str, fakes: Fakes
) -> None:
    url = mongo_db_url(mongo_server_url)
    apps = [await aiohttp_client(create_app(make_settings(url, **fakes.urls))) for _ in range(2)]
    a, b = [await Api(app).login(ADMIN_EMAIL, ADMIN_PASSWORD) for app in apps]
    ids, slow_path = two_spaces(fakes)
    await connect_heyspace(a)
    seen = fakes.heyspace.faults.paths[slow_path]
    fakes.heyspace.faults.slow(0.5, path=slow_path, times=1)
    status, running = await a.post("/api/v1/integrations/heyspace/sync")
    assert status == 202
    await until_requested(fakes, slow_path, seen + 1)
    fakes.heyspace.add_card(ids["todo"], "Late card", id="card-late")
    # The other process sees the running sync in the database and queues a follow-up.
    status, started = await b.post("/api/v1/integrations/heyspace/sync")
    assert status == 202 and started["sync_id"] != running["sync_id"]
    assert (await a.post("/api/v1/integrations/heyspace/sync"))[1] == started
    first = await wait_sync(b, "heyspace", running["sync_id"])
    sync = await wait_sync(b, "heyspace", started["sync_id"])
    assert sync["state"] == "succeeded" and sync["counts"]["created"] == 1
    assert sync["started_at"] >= first["finished_at"]
    found = await resolve(b, "heyspace", "card-late")
    assert found is not None and found["name"] == "Late card"
    for app in apps:
        await app.app[SERVICES].sync.wait_idle()


# -- B: needs_reauth only when the credentials themselves were refused ------------------


async def status_of(api: Api, service: str) -> tuple[str, str | None]:
    _, listing = await api.get("/api/v1/integrations")
    (doc,) = [i for i in listing["items"] if i["service"] == service]
    return doc["status"], doc["error"]


async def test_only_refused_credentials_mean_needs_reauth(make_client: Any, fakes: Fakes) -> None:
    client = await make_client(**fakes.urls, provider_timeout_s=0.5, provider_max_retries=1)
    admin = await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    token = fakes.pivotal.add_user("pm@example.com")
    project = fakes.pivotal.add_project("Mobile app")
    fakes.pivotal.add_story(project, "Login screen", "started")
    assert (await admin.post("/api/v1/integrations/pivotaltracker", {"api_token": token}))[0] == 201
    assert (await last_sync(admin, "pivotaltracker"))["state"] == "succeeded"
    faults = fakes.pivotal.faults
    stories = f"/services/v5/projects/{project}/stories"
    for inject, reason in (
        (lambda: faults.fail_path("/services/v5/projects", 403, times=None), "403"),
        (lambda: faults.fail_path(stories, 404, times=None), "404"),
        (lambda: faults.fail_path(stories, 503, times=None), "503"),
        (lambda: faults.slow(1.0, path=stories, times=None), "TimeoutError"),
    ):
        inject()
        sync = await force(admin, "pivotaltracker")
        assert sync["state"] == "failed" and reason in sync["error"], sync
        status, error = await status_of(admin, "pivotaltracker")
        assert status == "error" and error is not None and reason in error
        assert token not in error
        faults.clear()
        assert (await force(admin, "pivotaltracker"))["state"] == "succeeded"
        assert (await status_of(admin, "pivotaltracker")) == ("ok", None)
    # Nothing was archived or removed by the failed syncs.
    assert (await tasks_by_name(admin, archived=False))["Login screen"]["removed"] is False
    # A refused token (401 cannot be refreshed for Tracker): re-authorisation needed.
    faults.fail_path("/services/v5/projects", 401, times=None)
    sync = await force(admin, "pivotaltracker")
    assert sync["state"] == "failed" and "401" in sync["error"]
    assert (await status_of(admin, "pivotaltracker"))[0] == "needs_reauth"


# -- D: the streamed apply counts and writes exactly what the rules say -----------------


async def test_streamed_apply_in_small_batches(admin_api: Api, fakes: Fakes) -> None:
    services = admin_api.client.app[SERVICES]
    services.sync.apply_batch = 3
    state = fakes.heyspace
    ids = heyspace_world(state)
    extra = [state.add_card(ids["todo"], f"Card {n}") for n in range(6)]
    await connect_heyspace(admin_api)
    first = await last_sync(admin_api, "heyspace")
    assert first["counts"] | {"requests": 0} == {
        "created": 13,
        "updated": 0,
        "archived": 0,
        "removed": 0,
        "unchanged": 0,
        "requests": 0,
    }
    before = await tasks_by_name(admin_api)
    state.rename(extra[0], "Renamed")
    state.complete_card(extra[1])  # HeySpace: stays active, upstream state changes
    state.archive(extra[2])
    state.purge(extra[3])
    state.delete_card(extra[4])
    sync = await force(admin_api, "heyspace")
    assert sync["counts"] | {"requests": 0} == {
        "created": 0,
        "updated": 2,
        "archived": 3,
        "removed": 0,
        "unchanged": 8,
        "requests": 0,
    }
    after = await tasks_by_name(admin_api)
    assert after["Renamed"]["id"] == before["Card 0"]["id"]
    assert [after[f"Card {n}"]["archived"] for n in (1, 2, 3, 4, 5)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    # Nothing changed: nothing is written, everything counts as unchanged.
    sync = await force(admin_api, "heyspace")
    assert sync["counts"]["unchanged"] == 13 and sync["counts"]["updated"] == 0
    # Documents stored before hashes existed are compared field by field, not rewritten.
    _, me = await admin_api.get("/api/v1/me")
    await services.backend.update_many(
        "tasks", {"account_id": me["account_id"], "imported": True}, {"sync_hash": None}
    )
    sync = await force(admin_api, "heyspace")
    assert sync["counts"]["unchanged"] == 13 and sync["counts"]["updated"] == 0
    # An item that comes back after it vanished is active again, with its id.
    state.archive(extra[2], archived=False)
    sync = await force(admin_api, "heyspace")
    assert sync["counts"]["updated"] == 1
    assert (await tasks_by_name(admin_api))["Card 2"]["id"] == before["Card 2"]["id"]
    assert (await tasks_by_name(admin_api))["Card 2"]["archived"] is False


# -- C: what could not be read is never archived -----------------------------------------


async def connect_asana(api: Api) -> None:
    await connected.connect_asana(api)
    assert (await last_sync(api, "asana"))["state"] == "succeeded"


async def test_an_unreadable_project_keeps_its_items_and_the_rest_syncs(
    admin_api: Api, fakes: Fakes
) -> None:
    state = fakes.asana
    owner = state.add_user("owner@example.com", "Owner")
    state.set_authorizing_user(owner)
    ws = state.add_workspace("Company")
    site, ops = state.add_project(ws, "Website"), state.add_project(ws, "Ops")
    launch, press = state.add_task(site, "Launch"), state.add_task(site, "Press")
    backups, restore = state.add_task(ops, "Backups"), state.add_task(ops, "Restore")
    state.add_subtask(backups, "Nightly")
    await connect_asana(admin_api)
    before = await tasks_by_name(admin_api)
    # Ops can be listed but not read; meanwhile items vanish in both projects.
    state.forbid(ops)
    state.delete(press)
    state.delete(restore)
    state.rename(ops, "Operations")
    sync = await force(admin_api, "asana")
    assert sync["state"] == "succeeded", sync
    assert sync["unreadable"] == [{"external_id": ops, "name": "Operations", "kind": "project"}]
    assert sync["counts"]["archived"] == 1
    after = await tasks_by_name(admin_api)
    assert after["Press"]["archived"] is True
    # The unreadable project itself is current; what is under it stays as it was.
    assert after["Operations"]["id"] == before["Ops"]["id"]
    for name in ("Backups", "Restore", "Nightly"):
        assert after[name]["archived"] is False and after[name]["id"] == before[name]["id"]
    assert after["Launch"]["archived"] is False
    status, error = await status_of(admin_api, "asana")
    assert status == "ok", error
    _, listing = await admin_api.get("/api/v1/integrations")
    assert listing["items"][0]["last_sync"]["unreadable"][0]["external_id"] == ops
    # Readable again: now the vanished task is archived too.
    state.forbid(ops, forbidden=False)
    sync = await force(admin_api, "asana")
    assert sync["unreadable"] == [] and sync["counts"]["archived"] == 1
    assert (await tasks_by_name(admin_api))["Restore"]["archived"] is True
    assert launch and backups


# -- E: the light incremental check ------------------------------------------------------


async def test_incremental_check_imports_new_cards_and_never_archives(
    make_client: Any, fakes: Fakes
) -> None:
    client = await make_client(**fakes.urls, scheduler=True, sync_poll_s=0.3)
    admin = await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    ids = heyspace_world(fakes.heyspace)
    await connect_heyspace(admin)
    user, _ = await admin.new_user("dev@example.com")
    # A pending timer on an item that does not exist yet ...
    status, started = await user.post(
        "/api/v1/timer/start", {"service": "heyspace", "external_id": "card-new"}
    )
    assert status == 201 and started["running"]["task_id"] is None
    stream = await user.client.get(
        "/api/v1/events", headers={"Authorization": f"Bearer {user.token}"}
    )
    assert (await read_events(stream, 1))[0][0] == "timer"
    fakes.heyspace.add_card(ids["todo"], "Brand new", id="card-new")
    # ... is bound by the check, without a full sync, and clients hear of it.
    found = None
    for _ in range(100):
        found = await resolve(user, "heyspace", "card-new")
        if found is not None:
            break
        await asyncio.sleep(0.1)
    assert found is not None and found["name"] == "Brand new" and found["trackable"]
    _, timer = await user.get("/api/v1/timer")
    assert timer["running"]["task_id"] == found["task_id"]
    assert "tasks" in [e for e, _ in await read_events(stream, 3)]
    stream.close()
    _, syncs = await admin.get("/api/v1/integrations/heyspace/syncs")
    assert len(syncs["items"]) == 1
    _, listing = await admin.get("/api/v1/integrations")
    poll = listing["items"][0]["last_poll"]
    assert poll["error"] is None and poll["requests"] >= 1
    # Gone upstream: only a full reconcile decides that.
    fakes.heyspace.purge(ids["Design"])
    await asyncio.sleep(1.0)
    design = await resolve(admin, "heyspace", ids["Design"])
    assert design is not None and design["archived"] is False
    assert (await force(admin, "heyspace"))["counts"]["archived"] == 1
    design = await resolve(admin, "heyspace", ids["Design"])
    assert design is not None and design["archived"] is True


async def test_incremental_check_and_full_sync_share_one_lease(
    admin_api: Api, fakes: Fakes
) -> None:
    token = fakes.pivotal.add_user("pm@example.com")
    project = fakes.pivotal.add_project("Mobile app")
    fakes.pivotal.add_story(project, "Login screen", "started")
    await admin_api.post("/api/v1/integrations/pivotaltracker", {"api_token": token})
    assert (await last_sync(admin_api, "pivotaltracker"))["state"] == "succeeded"
    service = admin_api.client.app[SERVICES].sync
    _, me = await admin_api.get("/api/v1/me")
    fakes.pivotal.faults.slow(0.5, path=f"/services/v5/projects/{project}/stories", times=1)
    _, started = await admin_api.post("/api/v1/integrations/pivotaltracker/sync")
    requests = fakes.pivotal.faults.requests
    assert await service.poll(me["account_id"], "pivotaltracker") is None
    assert fakes.pivotal.faults.requests - requests <= 1  # only the running sync's
    await wait_sync(admin_api, "pivotaltracker", started["sync_id"])
    result = await service.poll(me["account_id"], "pivotaltracker")
    assert result is not None and result["error"] is None and result["requests"] >= 1
    # A force sync requested while a check runs starts when the check ends.
    fakes.pivotal.faults.slow(0.4, path="/services/v5/projects", times=1)
    check = asyncio.create_task(service.poll(me["account_id"], "pivotaltracker"))
    await asyncio.sleep(0.1)
    _, queued = await admin_api.post("/api/v1/integrations/pivotaltracker/sync")
    _, sync = await admin_api.get(f"/api/v1/integrations/pivotaltracker/syncs/{queued['sync_id']}")
    assert sync["state"] == "queued"
    assert (await check) is not None
    assert (await wait_sync(admin_api, "pivotaltracker", queued["sync_id"]))["state"] == "succeeded"


async def test_checks_are_claimed_once_and_wait_for_a_full_sync_across_processes(
    aiohttp_client: Any, mongo_server_url: str, fakes: Fakes
) -> None:
    url = mongo_db_url(mongo_server_url)
    apps = [await aiohttp_client(create_app(make_settings(url, **fakes.urls))) for _ in range(2)]
    a, b = [await Api(app).login(ADMIN_EMAIL, ADMIN_PASSWORD) for app in apps]
    sa, sb = (app.app[SERVICES].sync for app in apps)
    _, slow_path = two_spaces(fakes)
    await connect_heyspace(a)
    # Both processes find the check due; one claims it.
    assert sorted(await asyncio.gather(sa.run_due_polls(), sb.run_due_polls())) == [0, 1]
    assert await sa.run_due_polls() == 0  # not due again before TT_SYNC_POLL_S
    # While one process runs a full sync, the other's check does not start.
    _, me = await a.get("/api/v1/me")
    seen = fakes.heyspace.faults.paths[slow_path]
    fakes.heyspace.faults.slow(0.5, path=slow_path, times=1)
    _, running = await a.post("/api/v1/integrations/heyspace/sync")
    await until_requested(fakes, slow_path, seen + 1)
    assert await sb.poll(me["account_id"], "heyspace") is None
    await wait_sync(b, "heyspace", running["sync_id"])
    result = await sb.poll(me["account_id"], "heyspace")
    assert result is not None and result["error"] is None
    for app in apps:
        await app.app[SERVICES].sync.wait_idle()


async def test_unlink_fails_the_queued_sync(admin_api: Api, fakes: Fakes) -> None:
    _, slow_path = two_spaces(fakes)
    await connect_heyspace(admin_api)
    seen = fakes.heyspace.faults.paths[slow_path]
    fakes.heyspace.faults.slow(0.5, path=slow_path, times=1)
    _, running = await admin_api.post("/api/v1/integrations/heyspace/sync")
    await until_requested(fakes, slow_path, seen + 1)
    _, queued = await admin_api.post("/api/v1/integrations/heyspace/sync")
    assert queued != running
    assert (await admin_api.delete("/api/v1/integrations/heyspace"))[0] == 204
    sync = await wait_sync(admin_api, "heyspace", queued["sync_id"])
    assert sync["state"] == "failed" and "unlinked" in sync["error"]
    assert (await wait_sync(admin_api, "heyspace", running["sync_id"]))["state"] == "failed"
    await admin_api.client.app[SERVICES].sync.wait_idle()
    assert await tasks_by_name(admin_api, archived=False) == {}
