"""What the OpenAPI document says, the server does (API.md "HTTP details"), checked
directly for the rules the fuzzer found broken."""

from __future__ import annotations

from typing import Any

from server.api.integrations import api as integrations_api
from server.api.routes import api as core_api
from tests.api.test_timer import setup_tasks
from tests.conftest import Api


async def test_a_method_a_path_does_not_support_is_405_with_allow(admin: Api) -> None:
    for method, path, allowed in [
        ("TRACE", "/api/v1/me", {"GET"}),
        ("DELETE", "/api/v1/timer", {"GET"}),
        ("PUT", "/api/v1/tasks", {"GET", "POST"}),
        ("GET", "/api/v1/integrations/heyspace", {"POST", "PATCH", "DELETE"}),
    ]:
        response = await admin.client.request(
            method, path, headers={"Authorization": f"Bearer {admin.token}"}
        )
        assert response.status == 405, (method, path)
        assert response.content_type == "application/problem+json"
        assert allowed <= set(response.headers["Allow"].replace(" ", "").split(",")), path
        assert (await response.json(content_type=None))["code"] == "method_not_allowed"


async def test_every_status_a_route_can_give_is_declared(client: Any) -> None:
    _, document = await Api(client).get("/api/v1/openapi.json")
    for route in [*core_api.routes, *integrations_api.routes]:
        declared = document["paths"][route.path][route.method.lower()]["responses"]
        assert {int(code) for code in declared} == route.statuses(), route.path
        assert {403, 503} <= route.statuses()
        if route.body is not None:
            assert {400, 413} <= route.statuses()
        if route.auth:
            assert 401 in route.statuses()
    start = document["components"]["schemas"]["StartBody"]
    assert len(start["oneOf"]) == 2 and "null" not in str(start["properties"]["task_id"])
    callback = document["paths"]["/api/v1/integrations/asana/callback"]["get"]["responses"]
    assert "303" in callback  # back to the integrations page, whatever happened
    csv = document["paths"]["/api/v1/reports/entries.csv"]["get"]["responses"]["200"]
    assert "text/csv" in csv["content"]


async def test_patch_nulls_are_refused_where_the_schema_refuses_them(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    _, entry = await user.post(
        "/api/v1/entries",
        {"task_id": ids["A"], "start": "2026-01-05T09:00:00Z", "end": "2026-01-05T10:00:00Z"},
    )
    for field in ("end", "start", "note", "tags"):
        status, problem = await user.patch(f"/api/v1/entries/{entry['id']}", {field: None})
        assert status == 400 and problem["errors"][0]["field"] == field, field
    # task_id may be null (the entry loses its task): the schema says so too.
    status, patched = await user.patch(f"/api/v1/entries/{entry['id']}", {"task_id": None})
    assert status == 200 and patched["task_id"] is None and patched["end"] == entry["end"]
    status, problem = await admin.patch(f"/api/v1/tasks/{ids['A']}", {"name": None})
    assert status == 400 and problem["errors"][0]["field"] == "name"
    status, problem = await admin.patch(
        "/api/v1/integrations/asana", {"settings": {"keywords_from_ids": None}}
    )
    assert status == 400 and problem["errors"][0]["field"] == "settings.keywords_from_ids"
    status, problem = await admin.call("PATCH", f"/api/v1/tasks/{ids['A']}", None)
    assert status == 200  # no body: nothing changes
    response = await admin.client.patch(
        f"/api/v1/tasks/{ids['A']}",
        data=b"null",
        headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
    )
    assert response.status == 400


async def test_start_takes_exactly_one_way_to_name_the_task(admin: Api) -> None:
    user, _, ids = await setup_tasks(admin)
    for body in (
        {},
        {"task_id": ids["A"], "service": "asana", "external_id": "1"},
        {"service": "asana"},
        {"task_id": None, "service": "asana", "external_id": "1"},
    ):
        status, problem = await user.post("/api/v1/timer/start", body)
        assert status == 400 and problem["code"] == "validation_error", body
    status, _ = await user.post("/api/v1/timer/start", {"service": "asana", "external_id": "1"})
    assert status == 201


async def test_bodies_are_strict_about_json_types(admin: Api) -> None:
    _, user = await admin.post(
        "/api/v1/users", {"email": "typed@corp.local", "name": "T", "password": "password-1"}
    )
    status, problem = await admin.patch(f"/api/v1/users/{user['id']}", {"active": 0})
    assert status == 400 and problem["errors"][0]["field"] == "active"
    assert (await admin.get("/api/v1/users"))[0] == 200
