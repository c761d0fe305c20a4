"""Task listing pages: path order, filters and cursors agree with one full listing."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


async def _all_pages(api: Api, query: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        status, page = await api.get(f"/api/v1/tasks?{query}&limit={limit}{cursor}")
        assert status == 200, page
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        cursor = f"&cursor={page['next_cursor']}"


async def test_pages_follow_path_order_and_filters(admin: Api) -> None:
    ids: dict[str, str] = {}
    for name in ("beta", "Alpha", "gamma"):
        status, top = await admin.post("/api/v1/tasks", {"name": name})
        assert status == 201
        ids[name] = top["id"]
        for child in ("Zeta job", "élan job", "Ant job"):
            status, task = await admin.post(
                "/api/v1/tasks", {"name": child, "parent_id": top["id"]}
            )
            assert status == 201
            ids[f"{name}/{child}"] = task["id"]
    status, _ = await admin.patch(f"/api/v1/tasks/{ids['gamma/Ant job']}", {"archived": True})
    assert status == 200

    everything = await _all_pages(admin, "q=", 500)
    paths = [" / ".join(t["path"]) for t in everything]
    assert paths == sorted(paths, key=lambda p: [s.casefold() for s in p.split(" / ")])
    assert "gamma / Ant job" not in paths and len(paths) == 11
    for limit in (1, 2, 5):
        assert await _all_pages(admin, "q=", limit) == everything
    jobs = await _all_pages(admin, "q=JOB&trackable=true", 2)
    assert [t["path"] for t in jobs][:3] == [
        ["Alpha", "Ant job"],
        ["Alpha", "Zeta job"],
        ["Alpha", "élan job"],  # casefolded code-point order, as before
    ]
    assert len(jobs) == 8 and all(t["trackable"] for t in jobs)
    with_archived = await _all_pages(admin, "q=ant&include_archived=true", 1)
    assert [t["path"] for t in with_archived] == [
        ["Alpha", "Ant job"],
        ["beta", "Ant job"],
        ["gamma", "Ant job"],
    ]
    children = await _all_pages(admin, f"parent_id={ids['beta']}", 2)
    assert [t["name"] for t in children] == ["Ant job", "Zeta job", "élan job"]


async def test_a_user_pages_only_through_what_they_may_see(admin: Api) -> None:
    user_api, user = await admin.new_user("pager@example.com")
    status, shared = await admin.post("/api/v1/tasks", {"name": "Shared"})
    assert status == 201
    for i in range(5):
        await admin.post("/api/v1/tasks", {"name": f"Item {i}", "parent_id": shared["id"]})
        await admin.post("/api/v1/tasks", {"name": f"Hidden item {i}"})
    status, _ = await admin.put(
        f"/api/v1/tasks/{shared['id']}/members/{user['id']}", {"role": "regular"}
    )
    assert status == 200
    seen = await _all_pages(user_api, "q=item", 2)
    assert [t["name"] for t in seen] == [f"Item {i}" for i in range(5)]
