"""Timer and entries: one running timer per user, switching, idempotency, pending
references, permissions, manual entries and live events."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from server.keys import SERVICES
from tests.conftest import Api


async def setup_tasks(admin: Api) -> tuple[Api, dict[str, Any], dict[str, str]]:
    ids = {}
    for name, parent in [("Project", None), ("A", "Project"), ("B", "Project"), ("Other", None)]:
        _, task = await admin.post("/api/v1/tasks", {"name": name, "parent_id": ids.get(parent)})
        ids[name] = task["id"]
    user, user_doc = await admin.new_user("tracker@example.com")
    await admin.put(f"/api/v1/tasks/{ids['Project']}/members/{user_doc['id']}", {"role": "regular"})
    return user, user_doc, ids


def overlapping(entries: list[dict[str, Any]]) -> bool:
    ordered = sorted(entries, key=lambda e: e["start"])
    return any((a["end"] or "9999") > b["start"] for a, b in itertools.pairwise(ordered))


async def test_start_switch_stop(admin: Api) -> None:
    user, user_doc, ids = await setup_tasks(admin)
    assert await user.get("/api/v1/timer") == (200, {"running": None})
    status, first = await user.post(
        "/api/v1/timer/start", {"task_id": ids["A"], "note": "n", "tags": ["x"]}
    )
    assert status == 201 and first["stopped"] is None
    running = first["running"]
    assert running["task_id"] == ids["A"] and running["end"] is None
    assert running["user_id"] == user_doc["id"] and running["tags"] == ["x"]
    assert running["start"].endswith("Z") and running["task_name"] == "A"
    status, second = await user.post("/api/v1/timer/start", {"task_id": ids["B"]})
    assert status == 201
    assert second["stopped"]["id"] == running["id"]
    assert second["stopped"]["end"] <= second["running"]["start"]
    _, timer = await user.get("/api/v1/timer")
    assert timer["running"]["id"] == second["running"]["id"]
    status, stopped = await user.post("/api/v1/timer/stop", {})
    assert status == 200 and stopped["stopped"]["id"] == second["running"]["id"]
    again = await user.post("/api/v1/timer/stop", {"entry_id": second["running"]["id"]})
    assert again == (200, {"stopped": stopped["stopped"]})
    assert await user.post("/api/v1/timer/stop", {}) == (200, {"stopped": None})
    _, entries = await user.get("/api/v1/entries")
    assert [e["task_id"] for e in entries["items"]] == [ids["A"], ids["B"]]
    assert all(e["duration_s"] >= 0 and e["end"] for e in entries["items"])
    assert not overlapping(entries["items"])


async def test_concurrent_starts_leave_one_running_and_no_overlap(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    results = await asyncio.gather(
        *(
            user.post("/api/v1/timer/start", {"task_id": ids["A" if i % 2 else "B"]})
            for i in range(50)
        )
    )
    assert all(status == 201 for status, _ in results), results[:3]
    _, entries = await user.get("/api/v1/entries?limit=500")
    items = entries["items"]
    assert len(items) == 50
    assert sum(1 for e in items if e["end"] is None) == 1
    assert not overlapping(items)


async def test_idempotency_key_returns_the_same_entry(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    headers = {"Idempotency-Key": "start-123"}
    replies = await asyncio.gather(
        *(
            user.post("/api/v1/timer/start", {"task_id": ids["A"]}, headers=headers)
            for _ in range(5)
        )
    )
    entry_ids = {body["running"]["id"] for status, body in replies if status == 201}
    assert len(entry_ids) == 1
    _, entries = await user.get("/api/v1/entries")
    assert len(entries["items"]) == 1
    # A different key starts a new entry.
    status, other = await user.post(
        "/api/v1/timer/start", {"task_id": ids["B"]}, headers={"Idempotency-Key": "start-124"}
    )
    assert status == 201 and other["running"]["id"] not in entry_ids


async def test_permissions_and_archived_tasks(admin: Api) -> None:
    user, user_doc, ids = await setup_tasks(admin)
    status, problem = await user.post("/api/v1/timer/start", {"task_id": ids["Other"]})
    assert status == 404
    await admin.put(f"/api/v1/tasks/{ids['Other']}/members/{user_doc['id']}", {"role": "guest"})
    status, problem = await user.post("/api/v1/timer/start", {"task_id": ids["Other"]})
    assert status == 403 and problem["code"] == "task_not_trackable"
    await admin.patch(f"/api/v1/tasks/{ids['A']}", {"archived": True})
    status, problem = await user.post("/api/v1/timer/start", {"task_id": ids["A"]})
    assert status == 403 and problem["code"] == "task_not_trackable"
    assert (await user.get("/api/v1/timer"))[1] == {"running": None}


async def test_pending_reference_binds_when_the_item_is_imported(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    status, started = await user.post(
        "/api/v1/timer/start",
        {"service": "asana", "external_id": "1200", "created_with": "extension:asana"},
    )
    assert status == 201
    entry = started["running"]
    assert entry["task_id"] is None
    assert entry["pending_ref"] == {"service": "asana", "external_id": "1200"}
    services = admin.client.app[SERVICES]
    _, me = await admin.get("/api/v1/me")
    await services.backend.insert(
        "tasks",
        {
            "_id": "imp",
            "account_id": me["account_id"],
            "parent_id": ids["Project"],
            "name": "Imported",
            "imported": True,
            "source_service": "asana",
            "source_external_id": "1200",
            "archived": False,
            "removed": False,
        },
    )
    await services.tasks.bump(me["account_id"])
    bound = await services.timer.bind_pending(me["account_id"], "asana", {"1200": "imp"})
    assert bound == 1
    _, timer = await user.get("/api/v1/timer")
    assert timer["running"]["task_id"] == "imp" and timer["running"]["pending_ref"] is None
    # Now resolvable: a start by external id uses the task.
    _, again = await user.post("/api/v1/timer/start", {"service": "asana", "external_id": "1200"})
    assert again["running"]["task_id"] == "imp"


async def test_manual_entries_rules(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    base = {"task_id": ids["A"], "start": "2026-01-05T09:00:00Z", "end": "2026-01-05T10:00:00Z"}
    status, entry = await user.post("/api/v1/entries", base)
    assert status == 201 and entry["duration_s"] == 3600
    status, problem = await user.post(
        "/api/v1/entries", {**base, "start": "2026-01-05T09:30:00Z", "end": "2026-01-05T11:00:00Z"}
    )
    assert status == 409 and problem["code"] == "entry_overlap"
    status, problem = await user.post(
        "/api/v1/entries", {**base, "start": "2026-01-05T12:00:00Z", "end": "2026-01-05T12:00:00Z"}
    )
    assert status == 400 and problem["errors"][0]["field"] == "end"
    status, later = await user.post(
        "/api/v1/entries",
        {**base, "start": "2026-01-05T10:00:00+00:00", "end": "2026-01-05T10:30:00+00:00"},
    )
    assert status == 201 and later["start"].startswith("2026-01-05T10:00:00")
    status, patched = await user.patch(
        f"/api/v1/entries/{entry['id']}", {"end": "2026-01-05T09:45:00Z", "note": "short"}
    )
    assert status == 200 and patched["duration_s"] == 2700 and patched["note"] == "short"
    status, problem = await user.patch(
        f"/api/v1/entries/{entry['id']}", {"end": "2026-01-05T10:15:00Z"}
    )
    assert status == 409
    _, ranged = await user.get("/api/v1/entries?from=2026-01-05T09:59:00Z&to=2026-01-05T11:00:00Z")
    assert [e["id"] for e in ranged["items"]] == [later["id"]]
    # Others cannot touch the entry; admins can.
    other, _ = await admin.new_user("other@example.com")
    assert (await other.patch(f"/api/v1/entries/{entry['id']}", {"note": "x"}))[0] == 404
    assert (await other.delete(f"/api/v1/entries/{entry['id']}"))[0] == 404
    _, me = await user.get("/api/v1/me")
    assert (await other.get(f"/api/v1/entries?user_id={me['id']}"))[0] == 403
    _, theirs = await admin.get(f"/api/v1/entries?user_id={me['id']}")
    assert len(theirs["items"]) == 2
    assert (await admin.delete(f"/api/v1/entries/{entry['id']}"))[0] == 204
    assert (await user.delete(f"/api/v1/entries/{later['id']}"))[0] == 204
    assert (await user.get("/api/v1/entries"))[1]["items"] == []


async def read_events(response: Any, count: int) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    kind = None
    while len(events) < count:
        line = (await asyncio.wait_for(response.content.readline(), 2.0)).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind or "", json.loads(line[6:])))
    return events


async def test_events_reach_every_connection_of_the_user(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    headers = {"Authorization": f"Bearer {user.token}"}
    first = await user.client.get("/api/v1/events", headers=headers)
    second = await user.client.get("/api/v1/events", headers=headers)
    assert first.status == 200 and first.headers["Content-Type"].startswith("text/event-stream")
    for stream in (first, second):
        assert await read_events(stream, 1) == [("timer", {"running": None})]
    await user.post("/api/v1/timer/start", {"task_id": ids["A"]})
    for stream in (first, second):
        events = dict(await read_events(stream, 2))
        assert events["timer"]["running"]["task_id"] == ids["A"]
        assert events["entry"]["entry"]["task_id"] == ids["A"]
    # Another user's changes are not pushed here.
    other, other_doc = await admin.new_user("o@example.com")
    await admin.put(
        f"/api/v1/tasks/{ids['Project']}/members/{other_doc['id']}", {"role": "regular"}
    )
    await other.post("/api/v1/timer/start", {"task_id": ids["B"]})
    await user.post("/api/v1/timer/stop", {})
    events = dict(await read_events(first, 2))
    assert events["timer"] == {"running": None}
    first.close()
    second.close()
    services = admin.client.app[SERVICES]
    for _ in range(40):
        if services.events.subscriber_count() == 0:
            break
        await asyncio.sleep(0.1)
    assert services.events.subscriber_count() == 0


async def test_events_need_a_token(client: Any) -> None:
    response = await client.get("/api/v1/events")
    assert response.status == 401


async def test_event_stream_ends_when_the_token_is_revoked(admin: Api) -> None:
    user, _, _ = await setup_tasks(admin)
    stream = await user.client.get(
        "/api/v1/events", headers={"Authorization": f"Bearer {user.token}"}
    )
    assert await read_events(stream, 1) == [("timer", {"running": None})]
    await user.post("/api/v1/auth/logout")
    # The stream closes within the token re-check period (5 s).
    rest = await asyncio.wait_for(stream.content.read(), 10)
    assert b"event:" not in rest
    stream.close()
