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


async def test_out_of_range_timestamps_and_cursors_are_400(admin: Api) -> None:
    for body in (
        {"start": "0100-01-01T00:00:00Z", "end": "0200-01-01T00:00:00Z"},
        {"start": "0001-01-01T00:00:00+01:00", "end": "2026-01-01T00:00:00Z"},
        {"start": "2026-01-01T00:00:00Z", "end": "9999-12-31T23:59:59-01:00"},
    ):
        status, problem = await admin.post("/api/v1/entries", body)
        assert status == 400 and problem["code"] == "validation_error", body
    status, _ = await admin.get("/api/v1/entries?from=0001-01-01T00:00:00%2B01:00")
    assert status == 400
    for path in ("/api/v1/users", "/api/v1/entries", "/api/v1/tasks"):
        for cursor in ("999999999", "-1", "b246MTA", "1e3"):
            status, problem = await admin.get(f"{path}?cursor={cursor}")
            assert status == 400 and problem["errors"][0]["field"] == "cursor", (path, cursor)
    # Entries are listed fine afterwards (nothing unreadable was stored).
    assert (await admin.get("/api/v1/entries"))[0] == 200


async def test_hostile_headers_and_bodies(admin: Api) -> None:
    client = admin.client
    response = await client.get("/api/v1/me", headers={"Authorization": "Bearer \xff\xfe"})
    assert response.status == 401
    _, task = await admin.post("/api/v1/tasks", {"name": "T"})
    response = await client.post(
        "/api/v1/timer/start",
        json={"task_id": task["id"]},
        headers={"Authorization": f"Bearer {admin.token}", "Idempotency-Key": "\xff\xfe"},
    )
    assert response.status == 400
    forged = await client.get("/health", headers={"X-Request-Id": "a b\tc"})
    assert forged.headers["X-Request-Id"] != "a b\tc"
    # Last: aiohttp closes the connection after a body it cannot decode.
    response = await client.post(
        "/api/v1/tasks",
        data=b'{"name": "x"}',
        headers={
            "Authorization": f"Bearer {admin.token}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        },
    )
    assert response.status == 400 and (await response.json())["code"] == "validation_error"


async def test_access_log_masks_invitation_tokens(
    admin: Api, caplog: pytest.LogCaptureFixture
) -> None:
    _, user = await admin.post("/api/v1/users", {"email": "inv@example.com", "name": "Inv"})
    token = user["invite_url"].rsplit("/", 1)[1]
    with caplog.at_level("INFO", logger="server.access"):
        await Api(admin.client).post(f"/api/v1/invitations/{token}/accept", {"password": "x"})
        await Api(admin.client).get(f"/invite/{token}")
    lines = [r.getMessage() for r in caplog.records if r.name == "server.access"]
    assert any("/api/v1/invitations/***/accept" in line for line in lines)
    assert all(token not in line for line in lines)


async def test_the_last_admin_survives_concurrent_demotions(admin: Api) -> None:
    import asyncio

    others = [await admin.new_user(f"adm{i}@example.com", role="admin") for i in range(4)]
    _, me = await admin.get("/api/v1/me")
    # Every admin demotes themselves at the same moment.
    pairs = [(admin, me["id"]), *((api, user["id"]) for api, user in others)]
    results = await asyncio.gather(
        *(api.patch(f"/api/v1/users/{user_id}", {"role": "user"}) for api, user_id in pairs)
    )
    assert any(status == 409 for status, _ in results)
    from server.keys import SERVICES

    backend = admin.client.app[SERVICES].backend
    assert await backend.count("users", {"role": "admin", "active": True}) >= 1
