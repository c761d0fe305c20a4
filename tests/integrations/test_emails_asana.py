"""Asana co-workers on internal domains and in mixed case: listed and invited as Asana
gives them, compared with Tasktimer's users case-insensitively."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.fakes.connected import Providers, connect_all


async def test_coworkers_on_internal_domains(make_client: Any, fakes: Providers) -> None:
    admin = await Api(await make_client(**fakes.urls)).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    await admin.new_user("known@corp.local")
    await connect_all(
        admin, fakes, coworkers=("Carol.Case@Corp.Local", "KNOWN@Corp.Local", "dev@team.internal")
    )
    status, listing = await admin.get("/api/v1/integrations/asana/coworkers")
    assert status == 200
    assert [c["email"] for c in listing["items"]] == ["Carol.Case@Corp.Local", "dev@team.internal"]
    status, invited = await admin.post(
        "/api/v1/integrations/asana/invitations",
        {"emails": ["Carol.Case@Corp.Local", "carol.case@corp.local", "known@CORP.local"]},
    )
    assert status == 201, invited
    assert [(i["email"], i["status"]) for i in invited["items"]] == [
        ("Carol.Case@Corp.Local", "invited"),
        ("known@CORP.local", "already_a_user"),
    ]
    token = invited["items"][0]["invite_url"].rsplit("/", 1)[1]
    anon = Api(admin.client)
    status, accepted = await anon.post(
        f"/api/v1/invitations/{token}/accept", {"password": "carol-password"}
    )
    assert status == 200 and accepted["user"]["email"] == "Carol.Case@Corp.Local"
    carol = await anon.login("carol.case@corp.local", "carol-password")
    assert (await carol.get("/api/v1/me"))[1]["email"] == "Carol.Case@Corp.Local"
    status, problem = await admin.post(
        "/api/v1/integrations/asana/invitations", {"emails": ["not an address"]}
    )
    assert status == 400 and problem["errors"][0]["field"].startswith("emails")
