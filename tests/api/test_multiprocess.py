"""Several server processes on one MongoDB: each test runs two independent apps (own
clients, caches and event buses) against one database over the wire."""

from __future__ import annotations

import asyncio
from typing import Any

from server.app import create_app
from tests.api.test_timer import read_events
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, make_settings, mongo_db_url


async def two_apps(aiohttp_client: Any, mongo_server_url: str) -> tuple[Api, Api]:
    url = mongo_db_url(mongo_server_url)
    first = await aiohttp_client(create_app(make_settings(url)))
    second = await aiohttp_client(create_app(make_settings(url)))
    return (
        await Api(first).login(ADMIN_EMAIL, ADMIN_PASSWORD),
        await Api(second).login(ADMIN_EMAIL, ADMIN_PASSWORD),
    )


async def test_events_reach_clients_of_another_process(
    aiohttp_client: Any, mongo_server_url: str
) -> None:
    a, b = await two_apps(aiohttp_client, mongo_server_url)
    _, task = await a.post("/api/v1/tasks", {"name": "Shared"})
    stream = await b.client.get("/api/v1/events", headers={"Authorization": f"Bearer {b.token}"})
    assert await read_events(stream, 1) == [("timer", {"running": None})]
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    await a.post("/api/v1/timer/start", {"task_id": task["id"]})
    events = dict(await read_events(stream, 2))
    assert events["timer"]["running"]["task_id"] == task["id"]
    assert loop.time() - started_at < 1.0
    stream.close()


async def test_tree_changes_are_seen_by_every_process(
    aiohttp_client: Any, mongo_server_url: str
) -> None:
    a, b = await two_apps(aiohttp_client, mongo_server_url)
    _, task = await a.post("/api/v1/tasks", {"name": "Before"})
    assert (await b.get(f"/api/v1/tasks/{task['id']}"))[1]["name"] == "Before"
    await a.patch(f"/api/v1/tasks/{task['id']}", {"name": "After"})
    assert (await b.get(f"/api/v1/tasks/{task['id']}"))[1]["name"] == "After"


async def test_one_running_timer_across_processes(
    aiohttp_client: Any, mongo_server_url: str
) -> None:
    a, b = await two_apps(aiohttp_client, mongo_server_url)
    _, task = await a.post("/api/v1/tasks", {"name": "T"})
    results = await asyncio.gather(
        *(api.post("/api/v1/timer/start", {"task_id": task["id"]}) for api in [a, b] * 10)
    )
    assert all(status == 201 for status, _ in results)
    _, entries = await a.get("/api/v1/entries?limit=100")
    assert len(entries["items"]) == 20
    assert sum(e["end"] is None for e in entries["items"]) == 1


async def test_sync_lease_is_shared_between_processes(
    aiohttp_client: Any, mongo_server_url: str
) -> None:
    from server.keys import SERVICES

    a, b = await two_apps(aiohttp_client, mongo_server_url)
    _, me = await a.get("/api/v1/me")
    sa, sb = a.client.app[SERVICES].sync, b.client.app[SERVICES].sync
    # The integration has no credentials, so the runs fail fast; what matters is that the
    # second process never gets the sync the first one started (it could have fetched its
    # snapshot before the request) and that the two never overlap.
    await a.client.app[SERVICES].backend.insert(
        "integrations",
        {
            "_id": f"{me['account_id']}:pivotaltracker",
            "account_id": me["account_id"],
            "service": "pivotaltracker",
            "status": "ok",
            "credentials": None,
        },
    )
    first = await sa.request_sync(me["account_id"], "pivotaltracker")
    second = await sb.request_sync(me["account_id"], "pivotaltracker")
    assert first != second
    await sa.wait_idle()
    await sb.wait_idle()
    await sa.wait_idle()
    syncs = []
    for sync_id in (first, second):
        status, sync = await b.get(f"/api/v1/integrations/pivotaltracker/syncs/{sync_id}")
        assert status == 200 and sync["state"] == "failed" and "credentials" in sync["error"]
        syncs.append(sync)
    assert syncs[1]["started_at"] >= syncs[0]["finished_at"]
    third = await sb.request_sync(me["account_id"], "pivotaltracker")
    assert third not in (first, second)
    await sb.wait_idle()
