"""What a tree view needs from the task list: ``has_children`` as the caller sees it."""

from __future__ import annotations

from tests.conftest import Api


async def test_has_children_follows_what_the_caller_sees(admin: Api) -> None:
    _, top = await admin.post("/api/v1/tasks", {"name": "Top"})
    _, left = await admin.post("/api/v1/tasks", {"name": "Left", "parent_id": top["id"]})
    _, right = await admin.post("/api/v1/tasks", {"name": "Right", "parent_id": top["id"]})
    _, leaf = await admin.post("/api/v1/tasks", {"name": "Leaf", "parent_id": right["id"]})
    assert top["has_children"] is False  # created before its children
    status, level = await admin.get(f"/api/v1/tasks?parent_id={top['id']}")
    assert status == 200
    assert {t["name"]: t["has_children"] for t in level["items"]} == {"Left": False, "Right": True}
    assert (await admin.get(f"/api/v1/tasks/{top['id']}"))[1]["has_children"] is True
    assert (await admin.get(f"/api/v1/tasks/{leaf['id']}"))[1]["has_children"] is False

    # A user assigned only to Left sees Top (as its path) with one child, and no grandchild.
    user_api, user = await admin.new_user("leftie@example.com")
    await admin.put(f"/api/v1/tasks/{left['id']}/members/{user['id']}", {"role": "regular"})
    _, seen_top = await user_api.get(f"/api/v1/tasks/{top['id']}")
    assert seen_top["has_children"] is True
    _, seen = await user_api.get(f"/api/v1/tasks?parent_id={top['id']}")
    assert [(t["name"], t["has_children"]) for t in seen["items"]] == [("Left", False)]
