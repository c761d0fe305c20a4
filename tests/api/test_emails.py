"""One e-mail address rule at every entry point (API.md, "E-mail addresses"): syntax only,
internal domains welcome, compared case-insensitively, stored as given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from server.domain.emails import PATTERN, check_email, email_key, is_email
from server.domain.errors import ValidationFailed
from server.services.container import build_accounts
from server.settings import Settings
from server.store.factory import open_backend
from tests.conftest import Api, make_settings
from tests.unit.test_cli_settings import run_cli

INTERNAL = [
    "bob@corp.local",
    "ops@team.internal",
    "ci@build.example.test",
    "nas@home.lan",
    "root@localhost",
    "Dana.Case@Acme.Example",
    "first.last+tag@sub.corp.local",
]
MALFORMED = [
    "plain",
    "@corp.local",
    "bob@",
    "bob@@corp.local",
    "bo b@corp.local",
    "bob@.local",
    "bob@corp.",
    "bob@corp..local",
    "bob@corp\n.local",
    "tab\t@x.y",
]


def test_the_rule_is_syntax_only() -> None:
    for address in INTERNAL:
        assert is_email(address) and check_email(address) == address
    for address in MALFORMED:
        assert not is_email(address), address
        with pytest.raises(ValueError):
            check_email(address)
    assert not is_email("a" * 310 + "@corp.local")
    assert email_key("Dana.Case@Acme.Example") == email_key("dana.case@acme.example")
    # The published pattern is the one the server matches.
    import re

    assert re.compile(PATTERN).fullmatch("bob@corp.local")


async def test_internal_domain_invite_accept_and_sign_in(admin: Api) -> None:
    status, user = await admin.post("/api/v1/users", {"email": "bob@corp.local", "name": "Bob"})
    assert status == 201 and user["email"] == "bob@corp.local" and user["invite_url"]
    token = user["invite_url"].rsplit("/", 1)[1]
    anon = Api(admin.client)
    status, accepted = await anon.post(
        f"/api/v1/invitations/{token}/accept", {"password": "bob-password-1"}
    )
    assert status == 200 and accepted["user"]["email"] == "bob@corp.local"
    bob = await anon.login("Bob@Corp.LOCAL", "bob-password-1")
    assert (await bob.get("/api/v1/me"))[1]["email"] == "bob@corp.local"
    for address in INTERNAL[1:]:
        status, created = await admin.post(
            "/api/v1/users", {"email": address, "name": "X", "password": "password-123"}
        )
        assert status == 201 and created["email"] == address


async def test_addresses_are_stored_as_given_and_compared_case_insensitively(
    admin: Api,
) -> None:
    status, dana = await admin.post(
        "/api/v1/users",
        {"email": "Dana.Case@Acme.Example", "name": "Dana", "password": "dana-password"},
    )
    assert status == 201 and dana["email"] == "Dana.Case@Acme.Example"
    signed_in = await Api(admin.client).login("dana.case@acme.example", "dana-password")
    assert (await signed_in.get("/api/v1/me"))[1]["email"] == "Dana.Case@Acme.Example"
    _, users = await admin.get("/api/v1/users")
    assert "Dana.Case@Acme.Example" in {u["email"] for u in users["items"]}
    for variant in ("dana.case@acme.example", "DANA.CASE@ACME.EXAMPLE"):
        status, problem = await admin.post(
            "/api/v1/users", {"email": variant, "name": "Twin", "password": "twin-password"}
        )
        assert status == 409 and problem["code"] == "email_taken", variant


async def test_malformed_addresses_are_a_400_naming_the_field(admin: Api) -> None:
    anon = Api(admin.client)
    for address in MALFORMED:
        status, problem = await admin.post("/api/v1/users", {"email": address, "name": "X"})
        assert status == 400 and problem["errors"][0]["field"] == "email", address
        status, problem = await anon.post(
            "/api/v1/auth/login", {"email": address, "password": "whatever-1"}
        )
        assert status == 400 and problem["errors"][0]["field"] == "email", address


async def test_bootstrap_admin_on_an_internal_domain(make_client: Any) -> None:
    client = await make_client(bootstrap_admin_email="Me@Corp.Local")
    me_api = await Api(client).login("me@corp.local", "admin-password-1")
    assert (await me_api.get("/api/v1/me"))[1]["email"] == "Me@Corp.Local"
    with pytest.raises(ValidationError):
        Settings(bootstrap_admin_email="not-an-address")


async def test_service_entry_points_share_the_rule(database_url: str) -> None:
    """create-admin and every other caller of the accounts service."""
    backend = await open_backend(make_settings(database_url))
    try:
        accounts = build_accounts(make_settings(database_url), backend)
        admin = await accounts.create_admin("Ops@Corp.Local", "ops-password")
        assert admin["email"] == "Ops@Corp.Local"
        second = await accounts.create_admin("dev@team.internal", "dev-password")
        assert second["account_id"] == admin["account_id"]
        with pytest.raises(ValidationFailed):
            await accounts.create_admin("no-at-sign", "ops-password")
        _, user = await accounts.login("OPS@corp.local", "ops-password")
        assert user["_id"] == admin["_id"]
    finally:
        await backend.close()


def test_create_admin_command_on_an_internal_domain(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "create-admin", "--email", "Root@Corp.Local", password="password-1")
    assert done.returncode == 0, done.stderr
    twin = run_cli(tmp_path, "create-admin", "--email", "root@corp.local", password="password-2")
    assert twin.returncode != 0 and "already exists" in twin.stderr
    bad = run_cli(tmp_path, "create-admin", "--email", "root@", password="password-3")
    assert bad.returncode != 0 and "e-mail" in bad.stderr


async def test_existing_users_get_their_comparison_key(database_url: str) -> None:
    """Users written before the key existed (lower-cased addresses, no ``email_key``)
    are found by a case-insensitive login after the upgrade, on both stores."""
    settings = make_settings(database_url, bootstrap_admin_email=None)
    backend = await open_backend(settings)
    accounts = build_accounts(settings, backend)
    try:
        await backend.insert("accounts", {"_id": "acc", "name": "Old"})
        await backend.insert(
            "users",
            {
                "_id": "old-user",
                "account_id": "acc",
                "email": "legacy@example.com",
                "name": "Legacy",
                "role": "admin",
                "active": True,
                "password_hash": await accounts.passwords.hash("legacy-password"),
            },
        )
    finally:
        await backend.close()
    backend = await open_backend(settings)
    try:
        accounts = build_accounts(settings, backend)
        _, user = await accounts.login("Legacy@Example.COM", "legacy-password")
        assert user["_id"] == "old-user"
        assert (await backend.find_one("users", {"email_key": "legacy@example.com"})) is not None
    finally:
        await backend.close()
