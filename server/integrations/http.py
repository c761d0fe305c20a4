"""The one HTTP client every connector talks to its provider through.

It owns the failure policy (timeouts, bounded retries with backoff and jitter, ``Retry-After``,
malformed JSON, auth failures) so connectors only describe *what* to fetch. The
``aiohttp.ClientSession`` belongs to the application: this module never opens or closes one.

Error messages are built from the method, the URL without its query string, the status and a
short body excerpt with every secret of the request blanked out, so they are safe to store,
show and log.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from .base import (
    Credentials,
    CredentialsSaver,
    ProviderAuthError,
    ProviderError,
    ProviderForbidden,
    ProviderRateLimited,
)

R = TypeVar("R")
Params = dict[str, str]

# Header and form-field names whose values are credentials; their values are blanked out of
# any text that ends up in an error message.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-trackertoken"})
SECRET_FIELDS = frozenset(
    {
        "password",
        "client_secret",
        "refresh_token",
        "access_token",
        "code",
        "code_verifier",
        "api_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "token",
    }
)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# What no header value may contain (aiohttp refuses to send it).
_UNSENDABLE = re.compile(r"[\x00-\x1f\x7f]")
_EXCERPT = 200


class ProviderUnauthorized(ProviderAuthError):
    """The provider answered 401. A caller holding a refresh token catches this to refresh
    once; anyone else lets it propagate as the auth failure it is."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try. Tests shrink the waits; production keeps the defaults."""

    attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    # A provider asking for a longer pause than this gets this long; the next attempt then
    # either succeeds or spends one of the bounded attempts.
    retry_after_cap: float = 60.0
    timeout: float = 30.0


class RateLimiter:
    """At most ``per_minute`` requests in any 60 seconds, for everything sharing it.

    One limiter exists per integration (one provider token): the full sync and the
    incremental checks of that integration draw from the same budget. Requests are counted
    in one-second buckets (61 counters, whatever the rate), a slightly conservative sliding
    window: a sync may spend the minute's budget at once (small accounts sync within
    seconds) and then waits; a page offset that went stale meanwhile is refused by the
    provider and the connector restarts that listing. A 429 with ``Retry-After`` holds
    every request of the limiter until then. ``per_minute`` <= 0 means no limit (only
    429s then slow us down).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first
        self._total = 0
        self._hold_until = 0.0
        self._lock = asyncio.Lock()

    def hold(self, seconds: float) -> None:
        self._hold_until = max(self._hold_until, self._clock() + seconds)

    def used(self) -> int:
        """Requests sent within the current window."""
        self._expire(int(self._clock()))
        return self._total

    def _expire(self, second: int) -> None:
        # Buckets are whole seconds: counting 61 of them makes the window at least 60 s.
        while self._buckets and self._buckets[0][0] <= second - 61:
            self._total -= self._buckets.popleft()[1]

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                if self._hold_until > now:
                    await self._sleep(self._hold_until - now)
                    continue
                if self.per_minute <= 0:
                    return
                second = int(now)
                self._expire(second)
                if self._total < self.per_minute:
                    if self._buckets and self._buckets[-1][0] == second:
                        self._buckets[-1][1] += 1
                    else:
                        self._buckets.append([second, 1])
                    self._total += 1
                    return
                await self._sleep(max(0.01, self._buckets[0][0] + 61 - now))


class RequestMeter:
    """Counts the requests of one connector (one sync or one incremental check) and sends
    them through the integration's shared rate limiter."""

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self.limiter = limiter
        self.count = 0

    async def before_request(self) -> None:
        if self.limiter is not None:
            await self.limiter.acquire()
        self.count += 1

    def rate_limited(self, pause: float) -> None:
        if self.limiter is not None:
            self.limiter.hold(pause)


@dataclass(frozen=True, slots=True)
class ProviderResponse:
    status: int
    headers: CIMultiDictProxy[str]
    data: Any


def safe_url(url: str | URL) -> str:
    """The URL as it may appear in a message: no query, fragment or user info."""
    u = URL(url)
    return str(u.with_query(None).with_fragment(None).with_user(None).with_password(None))


def _secrets_of(
    url: str | URL,
    headers: Mapping[str, str] | None,
    form: Mapping[str, str] | str | None,
    params: Mapping[str, str] | None,
) -> list[str]:
    found: list[str] = []
    for name, value in (headers or {}).items():
        if name.lower() in SECRET_HEADERS and value:
            found.append(value)
            # "Bearer abc": the bare token may be echoed too.
            found.extend(part for part in value.split() if len(part) > 6)
    fields: list[tuple[str, str]] = []
    if isinstance(form, str):
        fields.extend(parse_qsl(form))
    elif form:
        fields.extend(form.items())
    fields.extend((params or {}).items())
    fields.extend(URL(url).query.items())
    found.extend(v for k, v in fields if k.lower() in SECRET_FIELDS and v)
    # Longest first so a token is never half-blanked by a shorter secret it contains.
    return sorted(set(found), key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ProviderHTTP:
    """Requests against provider APIs with the shared failure policy."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._session = session
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._jitter = jitter
        # Every request sent through this client, for the whole process.
        self.requests = 0

    def backoff(self, attempt: int) -> float:
        """Equal jitter: half the exponential step is fixed, half random, so clients that
        failed together do not retry together and no retry comes immediately."""
        step: float = min(self.policy.backoff_max, self.policy.backoff_base * 2.0 ** (attempt - 1))
        return step / 2 + step / 2 * self._jitter()

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | str | None = None,
        idempotent: bool | None = None,
        meter: RequestMeter | None = None,
    ) -> ProviderResponse:
        """Send one logical request and return its decoded JSON body.

        Non-idempotent requests (token grants) are retried only on 429: the provider did
        not act on them, whereas after a lost 5xx answer a single-use code or a rotated
        refresh token may already be spent.

        ``meter`` counts every attempt sent (retries included: the provider counts them
        against the rate limit too) and waits for its rate limiter before each.
        """
        method = method.upper()
        retry_any = method in _IDEMPOTENT if idempotent is None else idempotent
        where = f"{method} {safe_url(url)}"
        secrets = _secrets_of(url, headers, form, params)
        send_headers = dict(headers or {})
        if any(_UNSENDABLE.search(value) for value in send_headers.values()):
            # Only credentials come from outside into headers: ones that cannot be sent
            # are as unusable as refused ones.
            raise ProviderAuthError(f"{where}: the credentials cannot be sent in a header")
        body: str | None = None
        if form is not None:
            send_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            body = form if isinstance(form, str) else urlencode(dict(form))
        timeout = aiohttp.ClientTimeout(total=self.policy.timeout)
        attempts = max(1, self.policy.attempts)

        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            if meter is not None:
                await meter.before_request()
            self.requests += 1
            try:
                # Redirects are not followed: aiohttp would forward custom credential headers
                # such as X-TrackerToken to whatever host the redirect names.
                async with self._session.request(
                    method,
                    url,
                    params=params,
                    headers=send_headers,
                    data=body,
                    timeout=timeout,
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    resp_headers = resp.headers
                    raw = await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                # A name that does not resolve will not resolve a moment later either.
                if last or not retry_any or isinstance(exc, aiohttp.ClientConnectorDNSError):
                    raise ProviderError(
                        f"{where}: {type(exc).__name__} after {attempt} attempt(s)"
                    ) from None
                await self._sleep(self.backoff(attempt))
                continue

            if status == 429:
                if last:
                    raise ProviderRateLimited(
                        f"{where}: still rate limited (429) after {attempt} attempt(s)",
                        status=status,
                    )
                pause = self._pause(resp_headers, attempt)
                if meter is not None:
                    meter.rate_limited(pause)
                await self._sleep(pause)
                continue
            if status >= 500:
                if last or not retry_any:
                    raise ProviderError(
                        f"{where}: HTTP {status} after {attempt} attempt(s)"
                        f"{self._excerpt(raw, secrets)}",
                        status=status,
                    )
                await self._sleep(self._pause(resp_headers, attempt))
                continue
            if status == 401:
                raise ProviderUnauthorized(
                    f"{where}: credentials refused (401){self._excerpt(raw, secrets)}",
                    status=status,
                )
            if status == 403:
                raise ProviderForbidden(
                    f"{where}: access forbidden (403){self._excerpt(raw, secrets)}",
                    status=status,
                    provider_code=self._error_code(raw),
                )
            if status >= 300:
                raise ProviderError(
                    f"{where}: HTTP {status}{self._excerpt(raw, secrets)}",
                    status=status,
                    provider_code=self._error_code(raw),
                )
            return ProviderResponse(status, resp_headers, self._decode(raw, where))
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def get(
        self,
        url: str | URL,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        meter: RequestMeter | None = None,
    ) -> ProviderResponse:
        return await self.request("GET", url, params=params, headers=headers, meter=meter)

    def _pause(self, headers: CIMultiDictProxy[str], attempt: int) -> float:
        asked = parse_retry_after(headers.get("Retry-After"))
        if asked is None:
            return self.backoff(attempt)
        return min(asked, self.policy.retry_after_cap)

    @staticmethod
    def _excerpt(raw: bytes, secrets: list[str]) -> str:
        text = raw[: _EXCERPT * 2].decode("utf-8", "replace").strip()
        if not text:
            return ""
        text = redact(" ".join(text.split()), secrets)[:_EXCERPT]
        return f": {text}"

    @staticmethod
    def _error_code(raw: bytes) -> str | None:
        """A short machine-readable code from an error body (``code`` or ``error``)."""
        try:
            body = json.loads(raw[:4096])
        except ValueError:
            return None
        if isinstance(body, dict):
            for key in ("code", "error"):
                value = body.get(key)
                if isinstance(value, str) and len(value) <= 64:
                    return value
        return None

    @staticmethod
    def _decode(raw: bytes, where: str) -> Any:
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise ProviderError(f"{where}: malformed JSON in the response") from None


async def paginate(
    fetch: Callable[[Params], Awaitable[R]],
    first: Params,
    next_params: Callable[[R, Params], Params | None],
) -> AsyncIterator[R]:
    """Yield page after page without keeping them.

    ``next_params`` reads the provider's cursor from a page and returns the parameters of the
    next request, or None after the last page. A cursor that repeats would loop forever; it
    is reported as a provider error instead, so the snapshot counts as incomplete.
    """
    params = first
    seen: set[tuple[tuple[str, str], ...]] = set()
    while True:
        key = tuple(sorted(params.items()))
        if key in seen:
            raise ProviderError("pagination did not advance: the provider repeated a page")
        seen.add(key)
        page = await fetch(params)
        yield page
        following = next_params(page, params)
        if following is None:
            return
        params = following


async def token_grant(
    http: ProviderHTTP, url: str, form: Mapping[str, str] | str, *, provider: str
) -> dict[str, Any]:
    """POST an OAuth 2 grant to a token endpoint and return the token answer.

    RFC 6749 answers a wrong password, code, verifier or a revoked refresh token with
    400 (``invalid_grant``) and a bad client with 400/401 (``invalid_client``): all of these
    mean the admin must reconnect, so they become ProviderAuthError. Transport failures and
    5xx stay ProviderError: the credentials may well be fine.
    """
    try:
        resp = await http.request("POST", url, form=form)
    except ProviderAuthError:
        raise
    except ProviderForbidden:
        raise ProviderAuthError(f"{provider} refused the grant", status=403) from None
    except ProviderError as exc:
        if exc.status == 400:
            raise ProviderAuthError(f"{provider} refused the grant", status=400) from None
        raise
    if not isinstance(resp.data, dict):
        raise ProviderError(f"{provider} token endpoint: unexpected response shape")
    return resp.data


def expires_at_from(token: Mapping[str, Any], *, now: float | None = None) -> int | None:
    expires_in = token.get("expires_in")
    if expires_in is None:
        return None
    try:
        return int((time.time() if now is None else now) + float(expires_in))
    except (TypeError, ValueError):
        return None


class BearerTokens:
    """OAuth bearer tokens of one connector, refreshed at most once per failure.

    Refreshes happen under a lock, and only when the token that failed is still the current
    one, so concurrent requests that all hit an expired token cause one refresh, not many
    (refresh tokens may rotate: a second refresh with the old one would be refused).
    """

    def __init__(
        self,
        credentials: Credentials,
        refresh: Callable[[Credentials], Awaitable[Credentials]],
        saver: CredentialsSaver,
        *,
        provider: str,
        leeway: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = dict(credentials)
        self._refresh_fn = refresh
        self._saver = saver
        self._provider = provider
        self._leeway = leeway
        self._clock = clock
        self._lock = asyncio.Lock()

    @property
    def credentials(self) -> Credentials:
        return dict(self._credentials)

    def _access(self) -> str:
        token = self._credentials.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderAuthError(f"{self._provider}: no access token stored; reconnect")
        return token

    def _expiring(self) -> bool:
        expires_at = self._credentials.get("expires_at")
        if self._leeway is None or not isinstance(expires_at, int | float):
            return False
        return float(expires_at) - self._leeway <= self._clock()

    async def call(self, send: Callable[[Mapping[str, str]], Awaitable[R]]) -> R:
        if self._expiring():
            await self.refresh(self._access())
        token = self._access()
        try:
            return await send({"Authorization": f"Bearer {token}"})
        except ProviderUnauthorized:
            await self.refresh(token)
        try:
            return await send({"Authorization": f"Bearer {self._access()}"})
        except ProviderUnauthorized:
            raise ProviderAuthError(
                f"{self._provider}: the access token was refused even after a refresh",
                status=401,
            ) from None

    async def refresh(self, stale_access_token: str) -> None:
        async with self._lock:
            if self._credentials.get("access_token") != stale_access_token:
                return
            if not self._credentials.get("refresh_token"):
                raise ProviderAuthError(f"{self._provider}: no refresh token stored; reconnect")
            fresh = await self._refresh_fn(dict(self._credentials))
            self._credentials = fresh
            await self._saver(dict(fresh))
