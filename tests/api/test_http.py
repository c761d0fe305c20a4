"""The HTTP layer: problem+json for every kind of bad input, OpenAPI, CORS, limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api


async def test_health_checks_the_database(client: Any) -> None:
    status, body = await Api(client).get("/health")
    assert status == 200 and body == {"status": "ok"}


async def test_openapi_lists_every_route_with_schemas(client: Any) -> None:
    status, doc = await Api(client).get("/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path, method in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/tasks", "get"),
        ("/api/v1/tasks/{id}/members/{user_id}", "put"),
        ("/api/v1/timer/start", "post"),
        ("/api/v1/resolve", "post"),
        ("/api/v1/entries", "get"),
    ]:
        assert method in paths[path], (path, method)
    start = paths["/api/v1/timer/start"]["post"]
    ref = start["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"task_id", "service", "external_id"} <= set(schema["properties"])
    assert schema.get("additionalProperties") is False
    listing = paths["/api/v1/tasks"]["get"]["responses"]["200"]["content"]
    assert "next_cursor" in listing["application/json"]["schema"]["properties"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/tasks", {"name": ""}),
        ("POST", "/api/v1/tasks", {"name": ["x"]}),
        ("POST", "/api/v1/tasks", {"name": "ok", "unknown": 1}),
        ("POST", "/api/v1/tasks", [1, 2]),
        ("PATCH", "/api/v1/tasks/x", {"archived": "maybe"}),
        ("POST", "/api/v1/timer/start", {}),
        ("POST", "/api/v1/timer/start", {"task_id": "a", "service": "asana", "external_id": "1"}),
        ("POST", "/api/v1/timer/start", {"service": "jira", "external_id": "1"}),
        ("POST", "/api/v1/entries", {"start": "yesterday", "end": "today"}),
        ("POST", "/api/v1/resolve", {"service": "asana", "external_ids": ["x"] * 501}),
        ("PUT", "/api/v1/tasks/x/members/y", {"role": "owner"}),
        ("POST", "/api/v1/users", {"email": "not-an-email", "name": "X"}),
        ("GET", "/api/v1/tasks?limit=0", None),
        ("GET", "/api/v1/tasks?limit=501", None),
        ("GET", "/api/v1/tasks?cursor=%%%", None),
        ("GET", "/api/v1/entries?from=notadate", None),
        ("GET", "/api/v1/tasks?bogus=1", None),
    ],
)
async def test_bad_input_is_a_400_problem(admin: Api, method: str, path: str, body: Any) -> None:
    status, problem = await admin.call(method, path, body)
    assert status == 400, problem
    assert problem["code"] == "validation_error"
    assert problem["errors"] and all({"field", "message"} <= set(e) for e in problem["errors"])
    assert {"type", "title", "status", "detail"} <= set(problem)


async def test_malformed_json_and_wrong_content(admin: Api) -> None:
    for raw in (b"{bad", b"\xff\xfe", b'"just a string"'):
        response = await admin.client.post(
            "/api/v1/tasks",
            data=raw,
            headers={"Authorization": f"Bearer {admin.token}", "Content-Type": "application/json"},
        )
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        assert (await response.json())["code"] == "validation_error"


async def test_unknown_route_and_method(admin: Api) -> None:
    status, problem = await admin.get("/api/v1/nothing-here")
    assert status == 404 and problem["code"] == "not_found"
    status, problem = await admin.call("PUT", "/api/v1/me")
    assert status == 405 and problem["code"] == "method_not_allowed"


async def test_request_size_limit(make_client: Any) -> None:
    from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD

    client = await make_client(max_body_bytes=2048)
    api = await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    status, problem = await api.post("/api/v1/tasks", {"name": "x" * 5000})
    assert status == 413 and problem["code"] == "payload_too_large"


async def test_cors_allows_extension_origins_only(client: Any) -> None:
    ok = await client.options(
        "/api/v1/timer",
        headers={
            "Origin": "chrome-extension://abcdefghijklmnop",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert ok.status == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "chrome-extension://abcdefghijklmnop"
    page = await client.get("/api/v1/timer", headers={"Origin": "https://app.asana.com"})
    assert page.status == 403 and (await page.json())["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in page.headers


async def test_request_id_is_echoed(client: Any) -> None:
    response = await client.get("/health", headers={"X-Request-Id": "abc123"})
    assert response.headers["X-Request-Id"] == "abc123"
