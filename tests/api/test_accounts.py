"""Sign-in, tokens, users and invitations."""

from __future__ import annotations

from typing import Any

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api


async def test_login_me_logout(client: Any) -> None:
    anon = Api(client)
    status, body = await anon.post(
        "/api/v1/auth/login", {"email": ADMIN_EMAIL.upper(), "password": ADMIN_PASSWORD}
    )
    assert status == 200
    assert "password_hash" not in body["user"] and body["user"]["role"] == "admin"
    api = Api(client, body["token"])
    status, me = await api.get("/api/v1/me")
    assert status == 200 and me["email"] == ADMIN_EMAIL
    assert set(me) >= {"id", "email", "name", "role", "account_id"}
    assert (await api.post("/api/v1/auth/logout"))[0] == 204
    status, problem = await api.get("/api/v1/me")
    assert status == 401 and problem["code"] == "invalid_token"


async def test_wrong_password_and_unknown_email_look_the_same(client: Any) -> None:
    anon = Api(client)
    s1, wrong = await anon.post(
        "/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": "not-the-password"}
    )
    s2, unknown = await anon.post(
        "/api/v1/auth/login", {"email": "nobody@example.com", "password": "whatever-1"}
    )
    assert s1 == s2 == 401
    for body in (wrong, unknown):
        body.pop("request_id")
    assert wrong == unknown
    assert "not-the-password" not in str(wrong)


async def test_missing_or_bad_token(client: Any) -> None:
    status, body = await Api(client).get("/api/v1/me")
    assert status == 401 and body["code"] == "missing_token"
    status, body = await Api(client, "garbage").get("/api/v1/tasks")
    assert status == 401 and body["code"] == "invalid_token"


async def test_admin_manages_users(admin: Api) -> None:
    user_api, user = await admin.new_user("worker@example.com")
    assert user["role"] == "user" and user["active"] is True
    status, listing = await admin.get("/api/v1/users?limit=1")
    assert status == 200 and len(listing["items"]) == 1 and listing["next_cursor"]
    status, rest = await admin.get(f"/api/v1/users?cursor={listing['next_cursor']}")
    assert {u["email"] for u in listing["items"] + rest["items"]} == {
        ADMIN_EMAIL,
        "worker@example.com",
    }
    # Plain users may not manage users.
    status, problem = await user_api.get("/api/v1/users")
    assert status == 403 and problem["code"] == "forbidden"
    status, problem = await user_api.post(
        "/api/v1/users", {"email": "x@example.com", "name": "X", "password": "password-1"}
    )
    assert status == 403
    # Duplicate e-mail.
    status, problem = await admin.post(
        "/api/v1/users", {"email": "WORKER@example.com", "name": "W", "password": "password-1"}
    )
    assert status == 409 and problem["code"] == "email_taken"
    # Rename, then deactivate: the user's tokens stop working at once.
    status, renamed = await admin.patch(f"/api/v1/users/{user['id']}", {"name": "Wanda"})
    assert status == 200 and renamed["name"] == "Wanda"
    status, _ = await admin.patch(f"/api/v1/users/{user['id']}", {"active": False})
    assert status == 200
    assert (await user_api.get("/api/v1/me"))[0] == 401
    status, _ = await Api(client := admin.client).post(
        "/api/v1/auth/login", {"email": "worker@example.com", "password": "user-password-1"}
    )
    assert status == 401 and client is admin.client


async def test_last_admin_cannot_be_demoted(admin: Api) -> None:
    _, me = await admin.get("/api/v1/me")
    status, problem = await admin.patch(f"/api/v1/users/{me['id']}", {"role": "user"})
    assert status == 409 and problem["code"] == "last_admin"
    status, problem = await admin.patch(f"/api/v1/users/{me['id']}", {"active": False})
    assert status == 409


async def test_invitation_is_single_use(admin: Api) -> None:
    status, user = await admin.post(
        "/api/v1/users", {"email": "invitee@example.com", "name": "Invitee"}
    )
    assert status == 201 and user["invite_url"]
    token = user["invite_url"].rsplit("/", 1)[1]
    anon = Api(admin.client)
    # No password yet: signing in is impossible.
    status, _ = await anon.post(
        "/api/v1/auth/login", {"email": "invitee@example.com", "password": "anything-1"}
    )
    assert status == 401
    status, page = await anon.get(f"/invite/{token}")
    assert status == 200 and "Join Tasktimer" in page
    status, problem = await anon.post(f"/api/v1/invitations/{token}/accept", {"password": "short"})
    assert status == 400 and problem["errors"][0]["field"] == "password"
    status, accepted = await anon.post(
        f"/api/v1/invitations/{token}/accept", {"password": "new-password-1", "name": "Ivy"}
    )
    assert status == 200 and accepted["user"]["name"] == "Ivy" and accepted["token"]
    status, problem = await anon.post(
        f"/api/v1/invitations/{token}/accept", {"password": "other-password-1"}
    )
    assert status == 404 and problem["code"] == "invitation_invalid"
    await anon.login("invitee@example.com", "new-password-1")
