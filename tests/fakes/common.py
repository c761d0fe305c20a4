"""Pieces every fake provider shares: failure injection, OAuth-ish tokens, the HTTP control
surface and the command-line runner.

Control over HTTP (for benchmarks and out-of-process users), on every fake:

* ``POST /_control/<method>`` with a JSON object of keyword arguments calls that method of
  the fake's state (only names listed in its ``CONTROL_METHODS``) → ``{"result": ...}``.
* ``POST /_control/faults/<method>`` likewise for :class:`Faults` (``fail_nth``,
  ``fail_path``, ``rate_limit``, ``slow``, ``malformed``, ``clear``).
* ``GET /_control/stats`` → ``{"requests": n, "paths": {path: n}}`` (API requests only).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    kind: str  # "status" | "rate_limit" | "delay" | "malformed"
    nth: int | None = None
    path: str | None = None
    times: int | None = 1  # None: forever
    status: int = 500
    retry_after: float = 1
    delay: float = 0.0

    def matches(self, count: int, path: str) -> bool:
        if self.nth is not None and self.nth != count:
            return False
        return self.path is None or self.path in path


class Faults:
    """Failures to inject into API requests (never into ``/_control``)."""

    CONTROL_METHODS: ClassVar[frozenset[str]] = frozenset(
        {"fail_nth", "fail_path", "rate_limit", "slow", "malformed", "clear"}
    )

    def __init__(self) -> None:
        self.rules: list[Fault] = []
        self.requests = 0
        self.paths: Counter[str] = Counter()

    def fail_nth(self, n: int, status: int = 500) -> None:
        """Answer the n-th API request (1-based, counted since start) with ``status``."""
        self.rules.append(Fault("status", nth=n, status=status))

    def fail_path(self, path: str, status: int = 500, times: int | None = 1) -> None:
        self.rules.append(Fault("status", path=path, status=status, times=times))

    def rate_limit(
        self, times: int | None = 1, retry_after: float = 1, path: str | None = None
    ) -> None:
        self.rules.append(Fault("rate_limit", path=path, times=times, retry_after=retry_after))

    def slow(self, delay: float, path: str | None = None, times: int | None = None) -> None:
        self.rules.append(Fault("delay", path=path, times=times, delay=delay))

    def malformed(self, path: str | None = None, times: int | None = 1) -> None:
        self.rules.append(Fault("malformed", path=path, times=times))

    def clear(self) -> None:
        self.rules.clear()

    def _take(self, path: str) -> list[Fault]:
        hit: list[Fault] = []
        for rule in list(self.rules):
            if rule.matches(self.requests, path):
                hit.append(rule)
                if rule.nth is not None:
                    self.rules.remove(rule)
                elif rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self.rules.remove(rule)
        return hit

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_control"):
            return await handler(request)
        self.requests += 1
        self.paths[request.path] += 1
        for rule in self._take(request.path):
            if rule.kind == "delay":
                await asyncio.sleep(rule.delay)
            elif rule.kind == "rate_limit":
                return web.json_response(
                    {"errors": [{"message": "rate limited"}]},
                    status=429,
                    headers={"Retry-After": f"{rule.retry_after:g}"},
                )
            elif rule.kind == "status":
                return web.json_response({"errors": [{"message": "injected"}]}, status=rule.status)
            elif rule.kind == "malformed":
                return web.Response(
                    status=200, body=b'{"data": [{"gid": "1", "na', content_type="application/json"
                )
        return await handler(request)


class TokenStore:
    """Access tokens that expire and refresh tokens that do not, issued by a fake."""

    def __init__(self, lifetime: float = 3600, clock: Callable[[], float] = time.monotonic):
        self.lifetime = lifetime
        self._clock = clock
        self._access: dict[str, tuple[str, float]] = {}
        self._refresh: dict[str, str] = {}
        self.refreshes = 0

    def issue(self, subject: str, *, with_refresh: bool = True) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(24)
        self._access[access] = (subject, self._clock() + self.lifetime)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.lifetime,
        }
        if with_refresh:
            refresh = "rt-" + secrets.token_urlsafe(24)
            self._refresh[refresh] = subject
            answer["refresh_token"] = refresh
        return answer

    def subject(self, access: str) -> str | None:
        entry = self._access.get(access)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def bearer_subject(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return self.subject(token.strip()) if scheme.lower() == "bearer" else None

    def use_refresh(self, refresh: str, *, consume: bool = False) -> str | None:
        """The subject of a refresh token; ``consume`` makes it single-use (rotation)."""
        subject = self._refresh.pop(refresh, None) if consume else self._refresh.get(refresh)
        if subject is not None:
            self.refreshes += 1
        return subject

    def expire_all(self) -> None:
        self._access = {token: (subject, 0.0) for token, (subject, _) in self._access.items()}

    def revoke_refresh_tokens(self) -> None:
        self._refresh.clear()


class FakeState:
    """Base of every fake's state: faults and tokens plus the HTTP-callable methods."""

    CONTROL_METHODS: ClassVar[frozenset[str]] = frozenset(
        {"expire_tokens", "set_token_lifetime", "revoke_refresh_tokens", "generate"}
    )

    def __init__(self) -> None:
        self.faults = Faults()
        self.tokens = TokenStore()

    def expire_tokens(self) -> None:
        self.tokens.expire_all()

    def set_token_lifetime(self, seconds: float) -> None:
        self.tokens.lifetime = seconds

    def revoke_refresh_tokens(self) -> None:
        self.tokens.revoke_refresh_tokens()


async def _call(target: Any, allowed: frozenset[str], request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in allowed:
        raise web.HTTPNotFound(text=f"no control method {name!r}")
    kwargs = await request.json() if request.can_read_body else {}
    if not isinstance(kwargs, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object of keyword arguments")
    try:
        result = getattr(target, name)(**kwargs)
        if inspect.isawaitable(result):
            result = await result
    except (TypeError, KeyError, ValueError) as exc:
        raise web.HTTPBadRequest(text=f"{type(exc).__name__}: {exc}") from None
    return web.json_response({"result": result})


def add_control_routes(app: web.Application, state: FakeState) -> None:
    async def call_state(request: web.Request) -> web.Response:
        return await _call(state, type(state).CONTROL_METHODS, request)

    async def call_faults(request: web.Request) -> web.Response:
        return await _call(state.faults, Faults.CONTROL_METHODS, request)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {"requests": state.faults.requests, "paths": dict(state.faults.paths)}
        )

    app.router.add_get("/_control/stats", stats)
    app.router.add_post("/_control/faults/{name}", call_faults)
    app.router.add_post("/_control/{name}", call_state)


def paged_window(total: int, offset: int, limit: int) -> tuple[int, int]:
    start = max(0, min(offset, total))
    return start, min(total, start + max(0, limit))


def run_main(
    name: str,
    build: Callable[[argparse.Namespace], tuple[web.Application, str, list[str]]],
    configure: Callable[[argparse.ArgumentParser], None],
    argv: list[str] | None = None,
) -> None:
    """``python -m tests.fakes.<name> --port N``: serve one fake and print where it is."""
    parser = argparse.ArgumentParser(prog=f"python -m tests.fakes.{name}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    configure(parser)
    args = parser.parse_args(argv)
    app, api_path, notes = build(args)

    async def serve() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://{args.host}:{port}"
        print(f"fake {name} listening on {base}", flush=True)
        print(f"  API base: {base}{api_path}", flush=True)
        for note in notes:
            print(f"  {note.replace('<url>', base)}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
