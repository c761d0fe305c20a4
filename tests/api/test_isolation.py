"""No request can see or change another account's data, on any endpoint family."""

from __future__ import annotations

from server.keys import SERVICES
from tests.conftest import Api


async def test_two_accounts_never_see_each_other(admin: Api) -> None:
    services = admin.client.app[SERVICES]
    await services.accounts.create_account_with_admin("boss@other.example", "other-password-1")
    other = await admin.login("boss@other.example", "other-password-1")
    _, task = await admin.post("/api/v1/tasks", {"name": "Secret project"})
    _, user = await admin.new_user("mine@example.com")
    _, started = await admin.post("/api/v1/timer/start", {"task_id": task["id"]})
    entry_id = started["running"]["id"]
    _, me = await admin.get("/api/v1/me")

    # Users
    _, users = await other.get("/api/v1/users")
    assert {u["email"] for u in users["items"]} == {"boss@other.example"}
    assert (await other.patch(f"/api/v1/users/{user['id']}", {"name": "x"}))[0] == 404
    # Tasks and members
    _, tasks = await other.get("/api/v1/tasks?include_archived=true")
    assert tasks["items"] == []
    assert (await other.get(f"/api/v1/tasks/{task['id']}"))[0] == 404
    assert (await other.patch(f"/api/v1/tasks/{task['id']}", {"name": "x"}))[0] == 404
    assert (await other.delete(f"/api/v1/tasks/{task['id']}"))[0] == 404
    assert (await other.get(f"/api/v1/tasks/{task['id']}/members"))[0] == 404
    assert (await other.post("/api/v1/tasks", {"name": "x", "parent_id": task["id"]}))[0] == 404
    _, other_task = await other.post("/api/v1/tasks", {"name": "Theirs"})
    status, _ = await other.put(
        f"/api/v1/tasks/{other_task['id']}/members/{user['id']}", {"role": "regular"}
    )
    assert status == 404  # the user belongs to the first account
    # Timer and entries
    assert (await other.post("/api/v1/timer/start", {"task_id": task["id"]}))[0] == 404
    assert (await other.post("/api/v1/timer/stop", {"entry_id": entry_id}))[0] == 404
    assert (await other.patch(f"/api/v1/entries/{entry_id}", {"note": "x"}))[0] == 404
    assert (await other.delete(f"/api/v1/entries/{entry_id}"))[0] == 404
    _, entries = await other.get(f"/api/v1/entries?user_id={me['id']}")
    assert entries["items"] == []
    assert (await other.get("/api/v1/timer"))[1] == {"running": None}
    # Resolution and matching
    _, res = await other.post("/api/v1/resolve", {"service": "asana", "external_ids": ["1"]})
    assert res["results"] == {"1": None}
    # Integrations
    _, integrations = await other.get("/api/v1/integrations")
    assert integrations["items"] == []
    # The first account still has everything.
    _, timer = await admin.get("/api/v1/timer")
    assert timer["running"]["id"] == entry_id
