"""Task tree: manual tasks, roles and inheritance, visibility, search, read-only imports."""

from __future__ import annotations

from typing import Any

from server.keys import SERVICES
from tests.conftest import Api


async def make_tree(admin: Api) -> dict[str, str]:
    ids: dict[str, str] = {}
    for name, parent in [
        ("Clients", None),
        ("Ácme Corp", "Clients"),
        ("Website", "Ácme Corp"),
        ("Launch", "Website"),
        ("Internal", None),
    ]:
        status, task = await admin.post(
            "/api/v1/tasks", {"name": name, "parent_id": ids.get(parent) if parent else None}
        )
        assert status == 201, task
        ids[name] = task["id"]
    return ids


async def test_assignment_is_inherited_and_ancestors_are_visible(admin: Api) -> None:
    ids = await make_tree(admin)
    user, user_doc = await admin.new_user("u@example.com")
    # No assignment: nothing visible.
    status, listing = await user.get("/api/v1/tasks")
    assert status == 200 and listing["items"] == []
    status, member = await admin.put(
        f"/api/v1/tasks/{ids['Website']}/members/{user_doc['id']}", {"role": "regular"}
    )
    assert status == 200 and member["role"] == "regular"
    _, listing = await user.get("/api/v1/tasks")
    by_name = {t["name"]: t for t in listing["items"]}
    assert set(by_name) == {"Clients", "Ácme Corp", "Website", "Launch"}
    assert by_name["Launch"]["trackable"] is True and by_name["Launch"]["my_role"] == "regular"
    assert by_name["Launch"]["path"] == ["Clients", "Ácme Corp", "Website", "Launch"]
    # Ancestors are shown for the path only: no role, not trackable.
    assert by_name["Clients"]["my_role"] is None and by_name["Clients"]["trackable"] is False
    assert (await user.get(f"/api/v1/tasks/{ids['Internal']}"))[0] == 404
    # Members list shows inheritance.
    _, members = await admin.get(f"/api/v1/tasks/{ids['Launch']}/members")
    assert {
        "user_id": user_doc["id"],
        "role": "regular",
        "inherited_from": ids["Website"],
    } in members["items"]
    # A nearer decision wins: guest on Launch.
    await admin.put(f"/api/v1/tasks/{ids['Launch']}/members/{user_doc['id']}", {"role": "guest"})
    _, launch = await user.get(f"/api/v1/tasks/{ids['Launch']}")
    assert launch["my_role"] == "guest" and launch["trackable"] is False
    # Unassigning from a subtask hides it.
    status, _ = await admin.delete(f"/api/v1/tasks/{ids['Launch']}/members/{user_doc['id']}")
    assert status == 204
    assert (await user.get(f"/api/v1/tasks/{ids['Launch']}"))[0] == 404
    _, trackable = await user.get("/api/v1/tasks?trackable=true")
    assert [t["name"] for t in trackable["items"]] == ["Website"]


async def test_search_is_case_insensitive_and_unicode_aware(admin: Api) -> None:
    await make_tree(admin)
    _, found = await admin.get("/api/v1/tasks?q=ACME")
    assert found["items"] == []  # "Ácme" is not "Acme"
    _, found = await admin.get("/api/v1/tasks?q=%C3%81CME")  # "ÁCME"
    assert {t["name"] for t in found["items"]} == {"Ácme Corp", "Website", "Launch"}
    _, found = await admin.get("/api/v1/tasks?q=corp / web")
    assert {t["name"] for t in found["items"]} == {"Website", "Launch"}


async def test_manager_rights_and_regular_limits(admin: Api) -> None:
    ids = await make_tree(admin)
    manager, manager_doc = await admin.new_user("m@example.com")
    regular, regular_doc = await admin.new_user("r@example.com")
    await admin.put(
        f"/api/v1/tasks/{ids['Ácme Corp']}/members/{manager_doc['id']}", {"role": "manager"}
    )
    await admin.put(
        f"/api/v1/tasks/{ids['Ácme Corp']}/members/{regular_doc['id']}", {"role": "regular"}
    )
    status, sub = await manager.post("/api/v1/tasks", {"name": "Docs", "parent_id": ids["Website"]})
    assert status == 201 and sub["path"][-2:] == ["Website", "Docs"]
    status, _ = await manager.post("/api/v1/tasks", {"name": "Top"})
    assert status == 403
    status, _ = await regular.post("/api/v1/tasks", {"name": "X", "parent_id": ids["Website"]})
    assert status == 403
    status, _ = await regular.patch(f"/api/v1/tasks/{ids['Website']}", {"name": "Site"})
    assert status == 403
    status, renamed = await manager.patch(f"/api/v1/tasks/{sub['id']}", {"name": "Handbook"})
    assert status == 200 and renamed["name"] == "Handbook"
    status, _ = await manager.put(
        f"/api/v1/tasks/{ids['Website']}/members/{regular_doc['id']}", {"role": "guest"}
    )
    assert status == 200
    status, _ = await regular.get(f"/api/v1/tasks/{ids['Website']}/members")
    assert status == 403
    status, _ = await manager.delete(f"/api/v1/tasks/{sub['id']}")
    assert status == 403  # deleting is for admins


async def test_move_archive_delete_manual_tasks(admin: Api) -> None:
    ids = await make_tree(admin)
    status, problem = await admin.patch(
        f"/api/v1/tasks/{ids['Clients']}", {"parent_id": ids["Launch"]}
    )
    assert status == 409 and problem["code"] == "tree_cycle"
    status, moved = await admin.patch(
        f"/api/v1/tasks/{ids['Launch']}", {"parent_id": ids["Internal"]}
    )
    assert status == 200 and moved["path"] == ["Internal", "Launch"]
    status, archived = await admin.patch(f"/api/v1/tasks/{ids['Internal']}", {"archived": True})
    assert status == 200 and archived["archived"] is True
    _, listing = await admin.get("/api/v1/tasks")
    assert "Launch" not in {t["name"] for t in listing["items"]}  # archived with its parent
    _, listing = await admin.get("/api/v1/tasks?include_archived=true")
    launch = next(t for t in listing["items"] if t["name"] == "Launch")
    assert launch["archived"] is True and launch["trackable"] is False
    status, problem = await admin.delete(f"/api/v1/tasks/{ids['Internal']}")
    assert status == 409 and problem["code"] == "task_has_children"
    assert (await admin.delete(f"/api/v1/tasks/{ids['Launch']}"))[0] == 204
    assert (await admin.get(f"/api/v1/tasks/{ids['Launch']}"))[0] == 404


async def test_imported_items_are_read_only_in_structure(admin: Api) -> None:
    ids = await make_tree(admin)
    services = admin.client.app[SERVICES]
    _, me = await admin.get("/api/v1/me")
    account_id = me["account_id"]
    await services.backend.insert(
        "tasks",
        {
            "_id": "imp1",
            "account_id": account_id,
            "parent_id": ids["Clients"],
            "name": "Imported card",
            "imported": True,
            "source_service": "heyspace",
            "source_external_id": "card-1",
            "source_kind": "card",
            "archived": False,
            "removed": False,
            "keywords": [],
        },
    )
    await services.tasks.bump(account_id)
    for change in ({"name": "New"}, {"parent_id": ids["Internal"]}, {"archived": True}):
        status, problem = await admin.patch("/api/v1/tasks/imp1", change)
        assert status == 409 and problem["code"] == "imported_item_read_only", change
    status, problem = await admin.delete("/api/v1/tasks/imp1")
    assert status == 409 and problem["code"] == "imported_item_read_only"
    # Keywords and assignments stay editable.
    status, task = await admin.patch("/api/v1/tasks/imp1", {"keywords": ["ABC-1"]})
    assert status == 200 and task["keywords"] == ["ABC-1"]
    assert task["source"] == {"service": "heyspace", "external_id": "card-1", "kind": "card"}
    _, user = await admin.new_user("r@example.com")
    status, _ = await admin.put(f"/api/v1/tasks/imp1/members/{user['id']}", {"role": "regular"})
    assert status == 200
    # Resolution and URL matching.
    status, res = await admin.post(
        "/api/v1/resolve", {"service": "heyspace", "external_ids": ["card-1", "card-2"]}
    )
    assert status == 200 and res["results"]["card-2"] is None
    assert res["results"]["card-1"]["task_id"] == "imp1"
    assert res["results"]["card-1"]["path"] == ["Clients", "Imported card"]
    status, match = await admin.get(
        "/api/v1/match?url=https://app.hey.space/projects/p/kanban?taskId%3Dcard-1"
    )
    assert status == 200 and match["task"]["id"] == "imp1"
    status, match = await admin.get("/api/v1/match?url=https://tracker.example/ABC-1/view")
    assert match["task"]["id"] == "imp1"
    status, match = await admin.get("/api/v1/match?url=https://example.com/")
    assert match["task"] is None


async def test_tasks_persist_across_restart(make_client: Any) -> None:
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

    first = await make_client()
    admin = await Api(first).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    ids = await make_tree(admin)
    await first.close()
    second = await make_client()
    admin2 = await Api(second).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    status, task = await admin2.get(f"/api/v1/tasks/{ids['Launch']}")
    assert status == 200 and task["path"][-1] == "Launch"
