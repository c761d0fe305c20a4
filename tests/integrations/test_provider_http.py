"""The shared provider HTTP client against a tiny scripted server on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.integrations.base import (
    ProviderAuthError,
    ProviderError,
    ProviderForbidden,
    ProviderRateLimited,
)
from server.integrations.http import (
    BearerTokens,
    ProviderHTTP,
    ProviderUnauthorized,
    RateLimiter,
    RequestMeter,
    RetryPolicy,
    paginate,
    parse_retry_after,
    safe_url,
    token_grant,
)
from server.integrations.wiring import Connectors
from server.settings import Settings
from tests.fakes.checks import FAST, Saved

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

SECRET_BEARER = "bearer-secret-0123456789"
SECRET_TRACKER = "tracker-secret-0123456789"
SECRET_PASSWORD = "pa55word-secret-xyz"
SECRET_QUERY = "query-secret-0123456789"


class Script:
    """Answers a fixed sequence of responses, then the last one forever; counts hits."""

    def __init__(self, *responses: Callable[[], web.Response]) -> None:
        self.responses = list(responses)
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        index = min(self.hits, len(self.responses)) - 1
        return self.responses[index]()


def ok(payload: object = None) -> Callable[[], web.Response]:
    return lambda: web.json_response({"ok": True} if payload is None else payload)


def status(code: int, headers: Mapping[str, str] | None = None) -> Callable[[], web.Response]:
    return lambda: web.json_response({"error": "x"}, status=code, headers=headers)


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def recorded(session: aiohttp.ClientSession, sleeps: Sleeps) -> ProviderHTTP:
    return ProviderHTTP(
        session, policy=RetryPolicy(attempts=4, retry_after_cap=60.0, timeout=2.0), sleep=sleeps
    )


async def serve(aiohttp_server: ServerFactory, script: Script, path: str = "/x") -> str:
    app = web.Application()
    app.router.add_route("*", path, script.handle)
    server = await aiohttp_server(app)
    return str(server.make_url(path))


async def test_retries_5xx_then_succeeds(aiohttp_server: ServerFactory, http: ProviderHTTP) -> None:
    script = Script(status(500), status(502), ok({"n": 1}))
    url = await serve(aiohttp_server, script)
    resp = await http.get(url)
    assert resp.data == {"n": 1}
    assert script.hits == 3


async def test_5xx_exhaustion_raises_provider_error(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    script = Script(status(503))
    url = await serve(aiohttp_server, script)
    with pytest.raises(ProviderError) as info:
        await http.get(url)
    assert not isinstance(info.value, ProviderAuthError | ProviderRateLimited)
    assert info.value.status == 503
    assert "after 4 attempt(s)" in str(info.value)
    assert script.hits == FAST.attempts


async def test_retry_after_is_honoured(
    aiohttp_server: ServerFactory, recorded: ProviderHTTP, sleeps: Sleeps
) -> None:
    script = Script(status(429, {"Retry-After": "7"}), ok())
    url = await serve(aiohttp_server, script)
    await recorded.get(url)
    assert sleeps.waits == [7.0]
    assert script.hits == 2


async def test_retry_after_is_capped(
    aiohttp_server: ServerFactory, recorded: ProviderHTTP, sleeps: Sleeps
) -> None:
    script = Script(status(429, {"Retry-After": "3600"}), ok())
    url = await serve(aiohttp_server, script)
    await recorded.get(url)
    assert sleeps.waits == [60.0]


async def test_429_exhaustion_raises_rate_limited(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    script = Script(status(429, {"Retry-After": "1"}))
    url = await serve(aiohttp_server, script)
    with pytest.raises(ProviderRateLimited):
        await http.get(url)
    assert script.hits == FAST.attempts


async def test_backoff_is_exponential_with_jitter(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    client = ProviderHTTP(
        session,
        policy=RetryPolicy(attempts=4, backoff_base=1.0, backoff_max=3.0),
        sleep=sleeps,
        jitter=lambda: 1.0,
    )
    script = Script(status(500))
    url = await serve(aiohttp_server, script)
    with pytest.raises(ProviderError):
        await client.get(url)
    assert sleeps.waits == [1.0, 2.0, 3.0]  # 1, 2, 4 capped at 3
    low = ProviderHTTP(session, policy=RetryPolicy(backoff_base=1.0), jitter=lambda: 0.0)
    assert [low.backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


async def test_malformed_json_is_a_provider_error_without_retry(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    script = Script(lambda: web.Response(body=b'{"data": [1, 2', content_type="application/json"))
    url = await serve(aiohttp_server, script)
    with pytest.raises(ProviderError, match="malformed JSON"):
        await http.get(url)
    assert script.hits == 1


async def test_401_is_an_auth_error_and_403_only_forbids_one_object(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    script = Script(status(401), status(403))
    url = await serve(aiohttp_server, script)
    with pytest.raises(ProviderUnauthorized):
        await http.get(url)
    with pytest.raises(ProviderForbidden) as info:
        await http.get(url)
    # A 403 says nothing about the credentials: it must not read as "re-authenticate".
    assert not isinstance(info.value, ProviderAuthError)
    assert info.value.status == 403
    assert script.hits == 2


async def test_other_4xx_fail_at_once(aiohttp_server: ServerFactory, http: ProviderHTTP) -> None:
    script = Script(status(404))
    url = await serve(aiohttp_server, script)
    with pytest.raises(ProviderError) as info:
        await http.get(url)
    assert info.value.status == 404
    assert script.hits == 1


async def test_post_is_not_retried_on_5xx_but_is_on_429(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    failing = Script(status(500))
    url = await serve(aiohttp_server, failing)
    with pytest.raises(ProviderError):
        await http.request("POST", url, form={"grant_type": "x"})
    assert failing.hits == 1

    limited = Script(status(429, {"Retry-After": "0"}), ok())
    url = await serve(aiohttp_server, limited)
    await http.request("POST", url, form={"grant_type": "x"})
    assert limited.hits == 2


async def test_form_is_sent_urlencoded(aiohttp_server: ServerFactory, http: ProviderHTTP) -> None:
    received: dict[str, str] = {}

    async def handle(request: web.Request) -> web.Response:
        received.update({k: str(v) for k, v in (await request.post()).items()})
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/t", handle)
    server = await aiohttp_server(app)
    await http.request("POST", server.make_url("/t"), form={"a": "1 2", "b": "x&y=z"})
    assert received == {"a": "1 2", "b": "x&y=z"}


async def test_connection_errors_are_retried_then_reported(
    session: aiohttp.ClientSession, sleeps: Sleeps
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = ProviderHTTP(session, policy=RetryPolicy(attempts=3), sleep=sleeps)
    with pytest.raises(ProviderError) as info:
        await client.get(f"http://127.0.0.1:{port}/x?api_key={SECRET_QUERY}")
    assert len(sleeps.waits) == 2
    assert "after 3 attempt(s)" in str(info.value)
    assert SECRET_QUERY not in str(info.value)
    assert info.value.__cause__ is None


async def test_slow_responses_time_out_and_are_retried(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    calls = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(1.0)
        return web.json_response({"late": calls})

    app = web.Application()
    app.router.add_get("/x", handle)
    server = await aiohttp_server(app)
    client = ProviderHTTP(session, policy=RetryPolicy(attempts=2, backoff_base=0.001, timeout=0.2))
    resp = await client.get(server.make_url("/x"))
    assert resp.data == {"late": 2}


async def test_redirects_are_not_followed(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    target = Script(ok())
    app = web.Application()

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    app.router.add_get("/x", redirect)
    app.router.add_get("/elsewhere", target.handle)
    server = await aiohttp_server(app)
    with pytest.raises(ProviderError) as info:
        await http.get(server.make_url("/x"), headers={"X-TrackerToken": SECRET_TRACKER})
    assert info.value.status == 302
    assert target.hits == 0


@pytest.mark.parametrize("code", [400, 401, 403, 500])
async def test_error_messages_never_contain_secrets(
    aiohttp_server: ServerFactory, http: ProviderHTTP, code: int
) -> None:
    async def echo(request: web.Request) -> web.Response:
        # A careless provider that echoes the whole request back in its error body.
        form = {k: str(v) for k, v in (await request.post()).items()}
        body = {"headers": dict(request.headers), "form": form, "url": str(request.url)}
        return web.json_response(body, status=code)

    app = web.Application()
    app.router.add_post("/oauth/token", echo)
    server = await aiohttp_server(app)
    with pytest.raises(ProviderError) as info:
        await http.request(
            "POST",
            f"{server.make_url('/oauth/token')}?api_key={SECRET_QUERY}",
            params={"token": SECRET_QUERY},
            headers={
                "Authorization": f"Bearer {SECRET_BEARER}",
                "X-TrackerToken": SECRET_TRACKER,
            },
            form={"grant_type": "password", "username": "a@b.c", "password": SECRET_PASSWORD},
            idempotent=True,
        )
    message = str(info.value)
    assert "/oauth/token" in message and str(code) in message
    for secret in (SECRET_BEARER, SECRET_TRACKER, SECRET_PASSWORD, SECRET_QUERY):
        assert secret not in message
        assert secret not in repr(info.value.args)
    assert "?" not in message.split(" ")[1]  # the URL is shown without its query


def test_safe_url_drops_query_and_userinfo() -> None:
    assert safe_url("https://u:p@h.example/a/b?token=s#f") == "https://h.example/a/b"


def test_parse_retry_after_accepts_seconds_and_dates() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    now = datetime(2025, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)


async def test_paginate_streams_and_stops_on_repeated_cursor() -> None:
    fetched: list[str] = []

    async def fetch(params: dict[str, str]) -> str:
        fetched.append(params["page"])
        return params["page"]

    pages = paginate(
        fetch, {"page": "1"}, lambda page, p: {"page": str(int(page) + 1)} if page != "3" else None
    )
    got = []
    async for page in pages:
        got.append(page)
        # Streaming: page n+1 is not requested before page n is consumed.
        assert fetched == got
    assert got == ["1", "2", "3"]

    looping = paginate(fetch, {"page": "1"}, lambda page, p: {"page": "1"})
    with pytest.raises(ProviderError, match="did not advance"):
        async for _ in looping:
            pass


async def test_bearer_tokens_refresh_once_for_concurrent_401s() -> None:
    saved = Saved()
    refreshes = 0
    valid = {"new"}

    async def refresh(creds: dict[str, object]) -> dict[str, object]:
        nonlocal refreshes
        refreshes += 1
        await asyncio.sleep(0.01)
        return {**creds, "access_token": "new"}

    tokens = BearerTokens(
        {"access_token": "old", "refresh_token": "r"}, refresh, saved, provider="Test"
    )

    async def send(headers: Mapping[str, str]) -> str:
        token = headers["Authorization"].removeprefix("Bearer ")
        await asyncio.sleep(0)
        if token not in valid:
            raise ProviderUnauthorized("401", status=401)
        return token

    results = await asyncio.gather(*(tokens.call(send) for _ in range(5)))
    assert results == ["new"] * 5
    assert refreshes == 1
    assert [c["access_token"] for c in saved.calls] == ["new"]

    valid.clear()
    with pytest.raises(ProviderAuthError) as info:
        await tokens.call(send)
    assert not isinstance(info.value, ProviderUnauthorized)
    assert refreshes == 2


async def test_bearer_tokens_refresh_before_expiry() -> None:
    saved = Saved()

    async def refresh(creds: dict[str, object]) -> dict[str, object]:
        return {**creds, "access_token": "fresh", "expires_at": 10_000}

    tokens = BearerTokens(
        {"access_token": "stale", "refresh_token": "r", "expires_at": 1_030},
        refresh,
        saved,
        provider="Test",
        leeway=60,
        clock=lambda: 1_000.0,
    )

    async def send(headers: Mapping[str, str]) -> str:
        return headers["Authorization"]

    assert await tokens.call(send) == "Bearer fresh"
    assert len(saved.calls) == 1


async def test_bearer_tokens_refused_refresh_is_an_auth_error(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    script = Script(lambda: web.json_response({"error": "invalid_grant"}, status=400))
    url = await serve(aiohttp_server, script, "/token")
    saved = Saved()

    async def refresh(creds: dict[str, object]) -> dict[str, object]:
        form = {"grant_type": "refresh_token", "refresh_token": str(creds["refresh_token"])}
        return await token_grant(http, url, form, provider="T")

    tokens = BearerTokens(
        {"access_token": "a", "refresh_token": "refresh-secret-123"}, refresh, saved, provider="T"
    )

    async def send(headers: Mapping[str, str]) -> str:
        raise ProviderUnauthorized("401", status=401)

    with pytest.raises(ProviderAuthError, match="T refused the grant") as info:
        await tokens.call(send)
    assert "refresh-secret-123" not in str(info.value)
    assert saved.calls == []
    assert script.hits == 1


async def test_token_grant_keeps_transport_failures_apart(
    aiohttp_server: ServerFactory, http: ProviderHTTP
) -> None:
    script = Script(status(500))
    url = await serve(aiohttp_server, script, "/token")
    with pytest.raises(ProviderError) as info:
        await token_grant(http, url, {"grant_type": "password"}, provider="T")
    assert not isinstance(info.value, ProviderAuthError)


# -- request counting and the per-integration rate budget ---------------------------------------


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


async def test_rate_limiter_keeps_every_minute_within_budget() -> None:
    clock = FakeClock()
    limiter = RateLimiter(150, clock=clock, sleep=clock.sleep)
    sent: list[float] = []
    for _ in range(600):
        await limiter.acquire()
        sent.append(clock.now)
        clock.now += 0.003  # each request takes a little time
    # A small sync goes through at once...
    assert sent[149] - sent[0] < 1.0
    # ...and no 151 requests ever fall inside 60 seconds.
    assert all(sent[i + 150] - sent[i] >= 60.0 for i in range(len(sent) - 150))
    assert 180 <= sent[-1] - sent[0] <= 190  # three waits of about a minute
    assert limiter.used() <= 150


async def test_unlimited_limiter_never_waits() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)
    for _ in range(1_000):
        await limiter.acquire()
    assert clock.waits == []


async def test_meter_counts_every_attempt_and_a_429_holds_everyone_sharing_the_limiter(
    aiohttp_server: ServerFactory, recorded: ProviderHTTP, sleeps: Sleeps
) -> None:
    script = Script(status(429, {"Retry-After": "7"}), status(500), ok())
    url = await serve(aiohttp_server, script)
    clock = FakeClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    meter, other = RequestMeter(limiter), RequestMeter(limiter)
    before = recorded.requests
    await recorded.get(url, meter=meter)
    assert meter.count == 3 == script.hits  # retries are requests too
    assert recorded.requests - before == 3
    assert 7.0 in sleeps.waits
    # Another connector of the same integration waits out the Retry-After as well.
    await other.before_request()
    assert other.count == 1 and sum(clock.waits) >= 7.0


def test_one_limiter_per_integration_shared_by_its_connectors(
    session: aiohttp.ClientSession,
) -> None:
    settings = Settings(asana_rate_per_min=42, pivotal_rate_per_min=7)
    connectors = Connectors(settings, ProviderHTTP(session))
    asana = {"_id": "acc1:asana", "service": "asana"}
    pivotal = {"_id": "acc1:pivotaltracker", "service": "pivotaltracker"}
    assert connectors.limiter(asana) is connectors.limiter(dict(asana))
    assert connectors.limiter(asana).per_minute == 42
    assert connectors.limiter(pivotal).per_minute == 7
    assert connectors.limiter(pivotal) is not connectors.limiter(asana)
    assert connectors.limiter({"_id": "acc2:asana", "service": "asana"}) is not (
        connectors.limiter(asana)
    )
    first = connectors.connector(pivotal, {"api_token": "t" * 32}, Saved())
    second = connectors.connector(pivotal, {"api_token": "t" * 32}, Saved())
    assert first.requests == second.requests == 0
    assert first._meter.limiter is second._meter.limiter  # type: ignore[attr-defined]
