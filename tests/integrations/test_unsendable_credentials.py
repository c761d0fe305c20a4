"""Credentials that cannot be sent to a provider (control characters) are a 400 naming
the field, never a 500 - also when the provider is reachable."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from server.integrations.base import ProviderAuthError
from server.integrations.http import ProviderHTTP
from server.integrations.pivotal import pivotal_verify
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.fakes.checks import FAST
from tests.fakes.connected import HS_EMAIL, Providers

UNSENDABLE = ["a\x01b", "line\nbreak", "cr\rx", "nul\x00", "del\x7f", "tab\tx"]


async def test_unsendable_credentials_are_a_400_naming_the_field(
    make_client: Any, fakes: Providers
) -> None:
    admin = await Api(await make_client(**fakes.urls)).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    good_token = fakes.pivotal.add_user("pm@example.com")
    fakes.heyspace.add_user(HS_EMAIL, "hey-password-1")
    for bad in UNSENDABLE:
        cases = [
            ("pivotaltracker", {"api_token": good_token + bad}, "api_token"),
            ("heyspace", {"email": HS_EMAIL, "password": "hey-password-1" + bad}, "password"),
            ("heyspace", {"email": HS_EMAIL + bad, "password": "hey-password-1"}, "email"),
        ]
        for service, body, field in cases:
            status, problem = await admin.post(f"/api/v1/integrations/{service}", body)
            assert status == 400, (service, repr(bad), problem)
            assert [e["field"] for e in problem["errors"]] == [field]
            assert bad not in str(problem) and "hey-password-1" not in str(problem)
    # Nothing was connected by the refused attempts; the good ones still work.
    assert (await admin.get("/api/v1/integrations"))[1]["items"] == []
    status, _ = await admin.post("/api/v1/integrations/pivotaltracker", {"api_token": good_token})
    assert status == 201
    for bad in UNSENDABLE[:2]:
        status, problem = await admin.post(
            "/api/v1/integrations/pivotaltracker/reenable", {"api_token": bad}
        )
        assert status == 400 and problem["errors"][0]["field"] == "api_token"


async def test_the_provider_client_never_sends_an_unsendable_header(fakes: Providers) -> None:
    """Defence in depth for stored credentials: refused before aiohttp would raise."""
    async with aiohttp.ClientSession() as session:
        http = ProviderHTTP(session, policy=FAST)
        with pytest.raises(ProviderAuthError) as caught:
            await pivotal_verify(http, fakes.urls["pivotal_api_url"], "tok\nX-Injected: 1")
        assert "tok" not in str(caught.value)
    assert fakes.pivotal.faults.requests == 0
