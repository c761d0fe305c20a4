"""`my_total_s` in POST /resolve: the caller's own tracked seconds per task, all time,
with a running entry counted up to now, from one aggregate query per request."""

from __future__ import annotations

from typing import Any

from server.domain import clock
from server.keys import SERVICES
from server.store.base import Backend
from tests.conftest import Api


async def imported_task(admin: Api, external_id: str) -> str:
    services = admin.client.app[SERVICES]
    _, me = await admin.get("/api/v1/me")
    task_id = f"imp-{external_id}"
    await services.backend.insert(
        "tasks",
        {
            "_id": task_id,
            "account_id": me["account_id"],
            "parent_id": None,
            "name": f"Card {external_id}",
            "imported": True,
            "source_service": "heyspace",
            "source_external_id": external_id,
            "source_kind": "card",
            "archived": False,
            "removed": False,
            "keywords": [],
        },
    )
    await services.tasks.bump(me["account_id"])
    return task_id


async def add_entry(api: Api, task_id: str, start: str, end: str) -> dict[str, Any]:
    status, entry = await api.post(
        "/api/v1/entries", {"task_id": task_id, "start": start, "end": end}
    )
    assert status == 201, entry
    return entry


async def test_resolve_reports_my_total_seconds(admin: Api) -> None:
    one = await imported_task(admin, "card-1")
    two = await imported_task(admin, "card-2")
    await imported_task(admin, "card-3")
    user, user_doc = await admin.new_user("u@example.com")
    for task_id in (one, two):
        status, _ = await admin.put(
            f"/api/v1/tasks/{task_id}/members/{user_doc['id']}", {"role": "regular"}
        )
        assert status == 200
    a = await add_entry(admin, one, "2026-01-05T09:00:00Z", "2026-01-05T10:30:00Z")
    b = await add_entry(admin, one, "2026-01-06T09:00:00.250Z", "2026-01-06T09:00:42Z")
    # Someone else's time is not "mine".
    await add_entry(user, one, "2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z")
    await add_entry(user, two, "2026-01-05T13:00:00Z", "2026-01-05T13:00:10Z")
    # A running entry counts up to now: started 65 s ago.
    status, started = await admin.post(
        "/api/v1/timer/start", {"task_id": two, "created_with": "api"}
    )
    assert status == 201
    backend: Backend = admin.client.app[SERVICES].backend
    await backend.update_one(
        "entries", {"_id": started["running"]["id"]}, {"start": clock.later_iso(-65)}
    )

    status, res = await admin.post(
        "/api/v1/resolve",
        {"service": "heyspace", "external_ids": ["card-1", "card-2", "card-3", "card-x"]},
    )
    assert status == 200
    results = res["results"]
    assert results["card-1"]["my_total_s"] == a["duration_s"] + b["duration_s"] == 5400 + 41
    assert 65 <= results["card-2"]["my_total_s"] <= 70
    assert results["card-3"]["my_total_s"] == 0
    assert results["card-x"] is None

    status, res = await user.post(
        "/api/v1/resolve", {"service": "heyspace", "external_ids": ["card-1", "card-2"]}
    )
    assert status == 200
    assert res["results"]["card-1"]["my_total_s"] == 3600
    assert res["results"]["card-2"]["my_total_s"] == 10


async def test_resolve_totals_take_one_aggregate_query(admin: Api) -> None:
    ids = [f"card-{i}" for i in range(30)]
    for external_id in ids:
        await imported_task(admin, external_id)
    backend = admin.client.app[SERVICES].backend
    calls: list[str] = []
    original = backend.sum_durations

    async def counting(*args: Any, **kwargs: Any) -> dict[Any, int]:
        calls.append(args[0])
        return await original(*args, **kwargs)

    backend.sum_durations = counting
    original_find = backend.find
    finds: list[str] = []

    async def counting_find(coll: str, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        finds.append(coll)
        return await original_find(coll, *args, **kwargs)

    backend.find = counting_find
    try:
        status, res = await admin.post(
            "/api/v1/resolve", {"service": "heyspace", "external_ids": ids}
        )
    finally:
        del backend.sum_durations
        del backend.find
    assert status == 200 and all(res["results"][i]["my_total_s"] == 0 for i in ids)
    assert calls == ["entries"]
    assert "entries" not in finds
