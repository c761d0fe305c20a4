"""The signed-in user's own profile: name and time zone (PATCH /api/v1/me)."""

from __future__ import annotations

import pytest

from tests.conftest import Api


async def test_time_zone_defaults_to_utc_and_can_be_set(admin: Api) -> None:
    status, me = await admin.get("/api/v1/me")
    assert status == 200 and me["time_zone"] == "UTC"
    status, changed = await admin.patch("/api/v1/me", {"time_zone": "Europe/Warsaw"})
    assert status == 200 and changed["time_zone"] == "Europe/Warsaw"
    assert changed["email"] == me["email"] and changed["id"] == me["id"]
    status, again = await admin.get("/api/v1/me")
    assert again["time_zone"] == "Europe/Warsaw"
    # Others see it in the user list too; nobody else's zone changed.
    user_api, _ = await admin.new_user("zoe@example.com")
    assert (await user_api.get("/api/v1/me"))[1]["time_zone"] == "UTC"
    _, users = await admin.get("/api/v1/users")
    zones = {u["email"]: u["time_zone"] for u in users["items"]}
    assert zones["zoe@example.com"] == "UTC" and zones[me["email"]] == "Europe/Warsaw"


@pytest.mark.parametrize(
    "zone",
    ["Mars/Olympus_Mons", "europe/warsaw ", "../../etc/passwd", "/usr/share/zoneinfo/UTC", ""],
)
async def test_unknown_time_zone_is_refused_naming_the_field(admin: Api, zone: str) -> None:
    status, problem = await admin.patch("/api/v1/me", {"time_zone": zone})
    assert status == 400 and problem["code"] == "validation_error"
    assert [e["field"] for e in problem["errors"]] == ["time_zone"]
    assert (await admin.get("/api/v1/me"))[1]["time_zone"] == "UTC"


async def test_name_change_is_seen_by_the_same_token(admin: Api) -> None:
    user_api, _ = await admin.new_user("yan@example.com")
    status, me = await user_api.patch("/api/v1/me", {"name": "  Yan Kowalski  "})
    assert status == 200 and me["name"] == "Yan Kowalski" and me["time_zone"] == "UTC"
    assert (await user_api.get("/api/v1/me"))[1]["name"] == "Yan Kowalski"
    _, users = await admin.get("/api/v1/users")
    assert "Yan Kowalski" in {u["name"] for u in users["items"]}


async def test_only_name_and_time_zone_may_be_changed(admin: Api) -> None:
    user_api, _ = await admin.new_user("xia@example.com")
    for body in ({"role": "admin"}, {"email": "x@example.com"}, {"active": False}):
        status, problem = await user_api.patch("/api/v1/me", body)
        assert status == 400 and problem["code"] == "validation_error", body
    status, problem = await user_api.patch("/api/v1/me", {"time_zone": None})
    assert status == 400 and [e["field"] for e in problem["errors"]] == ["time_zone"]
    status, me = await user_api.get("/api/v1/me")
    assert me["role"] == "user" and me["email"] == "xia@example.com"
    # An empty body changes nothing.
    status, same = await user_api.patch("/api/v1/me", {})
    assert status == 200 and same == me


async def test_patch_me_needs_a_signed_in_user(admin: Api) -> None:
    status, problem = await Api(admin.client).patch("/api/v1/me", {"time_zone": "UTC"})
    assert status == 401 and problem["code"] == "missing_token"
