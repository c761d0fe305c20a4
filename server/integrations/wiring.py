"""Resources of the integrations part: the provider HTTP session, the connectors for each
tool, and the sync service with its scheduler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from ..crypto import SecretBox, load_secret_key
from ..domain.errors import ValidationFailed
from ..keys import SERVICES, SETTINGS
from ..services.integrations import IntegrationService
from ..settings import Settings
from ..store.base import Doc
from .asana import AsanaConnector
from .base import Connector, Credentials
from .heyspace import HeySpaceConnector, heyspace_login
from .http import ProviderHTTP, RateLimiter, RequestMeter, RetryPolicy
from .pivotal import PivotalConnector, pivotal_verify


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.provider_max_retries + 1,
        backoff_base=settings.provider_backoff_s,
        retry_after_cap=settings.provider_max_retry_after_s,
        timeout=settings.provider_timeout_s,
    )


class Connectors:
    """Builds connectors and checks credentials with the configured provider URLs."""

    def __init__(self, settings: Settings, http: ProviderHTTP) -> None:
        self.settings = settings
        self.http = http
        # One rate budget per integration (one provider token), shared by every connector
        # built for it: the full sync and the incremental checks draw from the same one.
        self._limiters: dict[str, RateLimiter] = {}

    def rate_per_min(self, service: str) -> int:
        s = self.settings
        if service == "asana":
            return s.asana_rate_per_min
        if service == "pivotaltracker":
            return s.pivotal_rate_per_min
        return s.heyspace_rate_per_min

    def limiter(self, integration: Doc) -> RateLimiter:
        key = str(integration["_id"])
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = RateLimiter(self.rate_per_min(integration["service"]))
            self._limiters[key] = limiter
        return limiter

    def connector(
        self, integration: Doc, creds: Credentials, saver: Callable[[Credentials], Awaitable[None]]
    ) -> Connector:
        """A connector for one sync or one incremental check; its ``requests`` start at 0."""
        s = self.settings
        service = integration["service"]
        meter = RequestMeter(self.limiter(integration))
        if service == "heyspace":
            return HeySpaceConnector(self.http, s.heyspace_api_url, creds, saver, meter=meter)
        if service == "pivotaltracker":
            return PivotalConnector(self.http, s.pivotal_api_url, creds, meter=meter)
        selected = integration.get("selected_workspaces")
        return AsanaConnector(
            self.http,
            s.asana_api_url,
            s.asana_oauth_url,
            s.asana_client_id or "",
            s.asana_client_secret.get_secret_value() if s.asana_client_secret else "",
            creds,
            saver,
            selected_workspace_ids=set(selected) if selected is not None else None,
            meter=meter,
        )

    async def check(self, service: str, payload: dict[str, Any]) -> Credentials:
        if service == "heyspace":
            return await heyspace_login(
                self.http, self.settings.heyspace_api_url, payload["email"], payload["password"]
            )
        if service == "pivotaltracker":
            return await pivotal_verify(
                self.http, self.settings.pivotal_api_url, payload["api_token"]
            )
        raise ValidationFailed(
            "Asana connects through OAuth: POST /api/v1/integrations/asana",
            [{"field": "service", "message": "use the OAuth flow"}],
        )


async def integrations_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    services = app[SERVICES]
    box = SecretBox(load_secret_key(settings))
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.provider_timeout_s),
        headers={"User-Agent": "Tasktimer/1 (+self-hosted time tracker)"},
    )
    http = ProviderHTTP(session, policy=retry_policy(settings))
    connectors = Connectors(settings, http)
    integrations = IntegrationService(
        services.backend,
        settings,
        box,
        services.accounts,
        services.tasks,
        services.timer,
        services.events,
        connectors.connector,
        connectors.check,
    )
    integrations.connectors = connectors
    services.integrations = integrations
    integrations.start_scheduler()
    try:
        yield
    finally:
        await integrations.stop()
        await session.close()
