"""Sign-in throttling (API.md, POST /auth/login): 10 failures for one address within 15
minutes answer 429 rate_limited with Retry-After until the window passes; a success
resets the count; successful sign-ins are never counted. The state is in the database,
so it holds across server processes (MongoDB)."""

from __future__ import annotations

from typing import Any

from server.app import create_app
from server.domain import clock
from server.keys import SERVICES
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api, make_settings, mongo_db_url

LOGIN = "/api/v1/auth/login"


async def attempt(api: Api, email: str, password: str) -> tuple[int, Any, str | None]:
    response = await api.client.post(LOGIN, json={"email": email, "password": password})
    body = await response.json(content_type=None)
    return response.status, body, response.headers.get("Retry-After")


async def fail(api: Api, email: str, times: int) -> None:
    for _ in range(times):
        status, body, _ = await attempt(api, email, "wrong-password-1")
        assert status == 401, body


async def test_ten_failures_lock_the_address_until_the_window_passes(client: Any) -> None:
    anon = Api(client)
    await fail(anon, ADMIN_EMAIL, 9)
    # The address is compared case-insensitively, for the count too.
    await fail(anon, ADMIN_EMAIL.upper(), 1)
    status, problem, retry_after = await attempt(anon, ADMIN_EMAIL, "wrong-password-1")
    assert status == 429 and problem["code"] == "rate_limited"
    assert retry_after is not None and 850 <= int(retry_after) <= 901
    # While locked even the right password is refused: guessing gains nothing.
    status, _, retry_after = await attempt(anon, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert status == 429 and retry_after is not None
    # Other addresses (known or not) are not affected.
    status, _, _ = await attempt(anon, "nobody@example.com", "wrong-password-1")
    assert status == 401
    # The window passes (moved back 15 minutes in the database): sign-in works again.
    backend = client.app[SERVICES].backend
    await backend.update_many("login_throttle", {}, {"window_start": clock.later_iso(-15 * 60 - 1)})
    status, body, _ = await attempt(anon, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert status == 200 and body["token"]


async def test_a_success_resets_the_count(client: Any) -> None:
    anon = Api(client)
    await fail(anon, ADMIN_EMAIL, 9)
    await anon.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    await fail(anon, ADMIN_EMAIL, 9)
    status, _, _ = await attempt(anon, ADMIN_EMAIL, ADMIN_PASSWORD)
    assert status == 200


async def test_unknown_addresses_are_throttled_alike(client: Any) -> None:
    anon = Api(client)
    await fail(anon, "ghost@corp.local", 10)
    status, problem, retry_after = await attempt(anon, "ghost@corp.local", "wrong-password-1")
    assert status == 429 and problem["code"] == "rate_limited" and retry_after


async def test_successful_sign_ins_are_never_limited(client: Any) -> None:
    anon = Api(client)
    for _ in range(25):
        await anon.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    assert await client.app[SERVICES].backend.count("login_throttle", {}) == 0


async def test_the_limit_holds_across_processes(aiohttp_client: Any, mongo_server_url: str) -> None:
    url = mongo_db_url(mongo_server_url)
    first = Api(await aiohttp_client(create_app(make_settings(url))))
    second = Api(await aiohttp_client(create_app(make_settings(url))))
    for _ in range(5):
        await fail(first, ADMIN_EMAIL, 1)
        await fail(second, ADMIN_EMAIL, 1)
    for api in (first, second):
        status, problem, retry_after = await attempt(api, ADMIN_EMAIL, "wrong-password-1")
        assert status == 429 and problem["code"] == "rate_limited" and retry_after
