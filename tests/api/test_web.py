"""The web app's session, CSRF, headers, error pages and escaping, over plain HTTP
(both storage backends: sessions live in the store)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient

from server.keys import SERVICES
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api

Client = TestClient[Any, Any]
SESSION = "tt_session"
NY = "America/New_York"
_TODAY = datetime.now(UTC).date()
# A Monday four weeks back (entries may not end in the future), and its neighbours.
MON = _TODAY - timedelta(days=_TODAY.weekday() + 28)
SUN, TUE, WED = MON - timedelta(days=1), MON + timedelta(days=1), MON + timedelta(days=2)


def utc(day: date, hour: int, zone: str = "UTC") -> str:
    """``day`` at ``hour``:00 in ``zone``, as the API's UTC timestamp."""
    moment = datetime.combine(day, time(hour), ZoneInfo(zone))
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def sign_in(
    client: Client, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD, **extra: str
) -> tuple[str, str]:
    """Signs in through the form; returns (session token, CSRF token of the page)."""
    response = await client.post(
        "/sign-in", data={"email": email, "password": password, **extra}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    token = response.cookies[SESSION].value
    page = await (await client.get("/")).text()
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page)
    assert match, page[:500]
    return token, match.group(1)


async def test_sign_in_cookie_flags_and_a_wrong_password(client: Client) -> None:
    response = await client.post(
        "/sign-in", data={"email": ADMIN_EMAIL, "password": "wrong-password"}
    )
    assert response.status == 401 and SESSION not in response.cookies
    assert 'role="alert"' in await response.text()
    assert "wrong-password" not in await response.text()

    response = await client.post(
        "/sign-in", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/"
    (header,) = response.headers.getall("Set-Cookie")
    flags = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path", "samesite"} <= flags and "secure" not in flags
    assert "SameSite=Lax" in header and "Path=/" in header
    token = response.cookies[SESSION].value
    # Stored hashed, like API tokens: the value itself is nowhere in the store.
    stored = await client.app[SERVICES].backend.find("tokens", {})
    assert stored and all(token not in str(doc) for doc in stored)
    assert {doc.get("kind") for doc in stored} == {"session"}


async def test_secure_cookie_behind_https(make_client: Any) -> None:
    client = await make_client(public_url="https://time.example.com")
    response = await client.post(
        "/sign-in", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}, allow_redirects=False
    )
    assert "Secure" in response.headers["Set-Cookie"]
    assert (await client.get("/")).headers["Strict-Transport-Security"] == "max-age=31536000"


async def test_the_cookie_authenticates_the_api_and_sign_out_revokes_it(client: Client) -> None:
    token, csrf = await sign_in(client)
    response = await client.get("/api/v1/me")
    assert response.status == 200 and (await response.json())["email"] == ADMIN_EMAIL
    # A session is not a bearer token, and a bearer token is not a session.
    client.session.cookie_jar.clear()
    assert (await Api(client, token).get("/api/v1/me"))[0] == 401
    bearer = (await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)).token
    response = await client.get("/api/v1/me", cookies={SESSION: str(bearer)})
    assert response.status == 401
    client.session.cookie_jar.clear()

    response = await client.post(
        "/sign-out", data={"csrf": csrf}, cookies={SESSION: token}, allow_redirects=False
    )
    assert response.status == 303
    assert response.cookies[SESSION].value == ""
    client.session.cookie_jar.clear()
    response = await client.get("/api/v1/me", cookies={SESSION: token})
    assert response.status == 401
    response = await client.get("/team", cookies={SESSION: token}, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith("/?next=")


async def test_deactivation_ends_the_users_sessions(client: Client, admin: Api) -> None:
    _, user = await admin.new_user("mate@example.com")
    client.session.cookie_jar.clear()
    token, _ = await sign_in(client, "mate@example.com", "user-password-1")
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/me", cookies={SESSION: token})).status == 200
    status, _ = await admin.patch(f"/api/v1/users/{user['id']}", {"active": False})
    assert status == 200
    assert (await client.get("/api/v1/me", cookies={SESSION: token})).status == 401
    page = await (await client.get("/", cookies={SESSION: token})).text()
    assert 'name="sign-in"' in page


async def test_csrf_is_required_for_cookie_requests_only(client: Client) -> None:
    bearer = await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD)
    token, csrf = await sign_in(client)
    # JSON API with the cookie: no token, a wrong token -> 403; the right one passes.
    response = await client.post("/api/v1/timer/stop", json={})
    assert response.status == 403 and (await response.json())["code"] == "csrf_failed"
    response = await client.post("/api/v1/timer/stop", json={}, headers={"X-CSRF-Token": "0" * 64})
    assert response.status == 403
    response = await client.post("/api/v1/timer/stop", json={}, headers={"X-CSRF-Token": csrf})
    assert response.status == 200
    # A page form without its field, or with another session's token -> 403 page.
    response = await client.post("/timer/stop", data={}, allow_redirects=False)
    assert response.status == 403 and response.content_type == "text/html"
    response = await client.post("/timer/stop", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303
    # A cross-site form post (the browser sends its Origin) -> 403.
    response = await client.post(
        "/timer/stop",
        data={"csrf": csrf},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403
    # Bearer requests are unaffected, even with a cookie present.
    assert client.session.cookie_jar.filter_cookies(client.make_url("/"))[SESSION]
    status, _ = await bearer.post("/api/v1/timer/stop", {})
    assert status == 200
    # A stale cookie makes a request signed out, not forbidden: sign-in still works.
    await client.post("/sign-out", data={"csrf": csrf})
    response = await client.post(
        "/sign-in",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        cookies={SESSION: token},
        allow_redirects=False,
    )
    assert response.status == 303


async def test_security_headers_and_error_pages(client: Client) -> None:
    for path in ("/", "/invite/whatever", "/no/such/page", "/static/app.js"):
        response = await client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] in ("same-origin", "no-referrer")
        assert "Strict-Transport-Security" not in response.headers  # plain http here
    response = await client.get("/no/such/page")
    assert response.status == 404 and response.content_type == "text/html"
    assert "Page not found" in await response.text()
    response = await client.get("/api/v1/no/such")
    assert response.status == 404 and response.content_type == "application/problem+json"
    # No inline scripts or handlers on any page (the CSP would block them anyway).
    await sign_in(client)
    for path in ("/", "/team", "/reports"):
        html = await (await client.get(path)).text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"\son[a-z]+=", html), path


async def test_redirect_to_sign_in_and_back_only_to_our_own_paths(client: Client) -> None:
    response = await client.get("/team?tab=1", allow_redirects=False)
    assert response.status == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/" and parse_qs(location.query) == {"next": ["/team?tab=1"]}
    page = await (await client.get("/?next=%2Fteam%3Ftab%3D1")).text()
    assert 'name="next" value="/team?tab=1"' in page
    for asked, landed in (
        ("/team?tab=1", "/team?tab=1"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ):
        client.session.cookie_jar.clear()
        response = await client.post(
            "/sign-in",
            data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": asked},
            allow_redirects=False,
        )
        assert response.headers["Location"] == landed, asked


async def test_user_text_is_escaped(client: Client, admin: Api) -> None:
    evil = '<script>alert("x")</script>'
    status, task = await admin.post("/api/v1/tasks", {"name": evil})
    assert status == 201
    status, _ = await admin.post(
        "/api/v1/entries",
        {
            "task_id": task["id"],
            "start": utc(MON, 9),
            "end": utc(MON, 10),
            "note": '<img src=x onerror="alert(1)">',
            "tags": ["<b>tag</b>"],
        },
    )
    assert status == 201
    await sign_in(client)
    html = await (await client.get(f"/?week={MON}&task-search=script")).text()
    assert evil not in html and "<img src=x" not in html and "<b>tag</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html


async def test_invitation_page_signs_the_new_user_in(client: Client, admin: Api) -> None:
    status, user = await admin.post("/api/v1/users", {"email": "new@example.com", "name": "New"})
    assert status == 201
    path = user["invite_url"].split("://", 1)[1].split("/", 1)[1]
    client.session.cookie_jar.clear()
    response = await client.get(f"/{path}")
    assert response.status == 200 and "Join Tasktimer" in await response.text()
    assert "new@example.com" in await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    response = await client.post(f"/{path}", data={"password": "short"})
    assert response.status == 400 and "at least 8 characters" in await response.text()
    response = await client.post(
        f"/{path}", data={"password": "new-password-1", "name": "Nova"}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/"
    me = await (await client.get("/api/v1/me")).json()
    assert me["email"] == "new@example.com" and me["name"] == "Nova"
    # Used once only.
    client.session.cookie_jar.clear()
    response = await client.post(f"/{path}", data={"password": "new-password-2"})
    assert response.status == 404 and "already used or has expired" in await response.text()
    response = await client.get(f"/{path}")
    assert response.status == 404 and "already used or has expired" in await response.text()
    assert 'name="password"' not in await response.text()


async def test_timesheet_forms_work_without_scripts(client: Client, admin: Api) -> None:
    status, task = await admin.post("/api/v1/tasks", {"name": "Paperwork"})
    assert status == 201
    _, csrf = await sign_in(client)
    # Search (GET form), then a result button posts the start form.
    html = await (await client.get("/?task-search=paper")).text()
    assert f'data-tt-task-id="{task["id"]}"' in html
    response = await client.post(
        "/timer/start",
        data={"csrf": csrf, "task_id": task["id"], "note": "forms", "tags": "a, b"},
        allow_redirects=False,
    )
    assert response.status == 303
    status, timer = await admin.get("/api/v1/timer")
    assert timer["running"]["task_id"] == task["id"] and timer["running"]["tags"] == ["a", "b"]
    html = await (await client.get("/")).text()
    assert "data-tt-running" in html and "Paperwork" in html
    response = await client.post("/timer/stop", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303
    assert (await admin.get("/api/v1/timer"))[1]["running"] is None

    # A manual entry in the user's zone (UTC here), and its errors in words.
    entry = {"csrf": csrf, "task-id": task["id"], "date": str(TUE), "note": "", "tags": ""}
    response = await client.post(
        "/entries", data={**entry, "start": "10:00", "end": "09:00"}, allow_redirects=False
    )
    assert response.status == 400
    assert "The end (09:00) must be after the start (10:00)." in await response.text()
    response = await client.post(
        "/entries", data={**entry, "start": "09:00", "end": "10:15"}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == f"/?week={TUE}"
    day = f"/api/v1/entries?from={utc(TUE, 0)}&to={utc(WED, 0)}"
    (saved,) = (await admin.get(day))[1]["items"]
    assert saved["start"].startswith(f"{TUE}T09:00") and saved["duration_s"] == 4500
    response = await client.post(
        "/entries", data={**entry, "start": "10:00", "end": "11:00"}, allow_redirects=False
    )
    assert response.status == 409 and "overlaps another of your entries" in await response.text()
    html = await (await client.get(f"/?week={WED}")).text()
    assert f'data-tt-week data-start="{MON}"' in html
    assert f'data-tt-day="{TUE}" data-total-s="4500"' in html
    assert 'data-tt-week-total data-total-s="4500"' in html
    response = await client.post(
        "/entries",
        data={"csrf": csrf, "entry_id": saved["id"], "delete": "1", "week": str(MON)},
        allow_redirects=False,
    )
    assert response.status == 303
    assert (await admin.get(day))[1]["items"] == []


async def test_days_follow_the_users_time_zone(client: Client, admin: Api) -> None:
    status, _ = await admin.patch("/api/v1/me", {"time_zone": "America/New_York"})
    assert status == 200
    # Sunday of the week before, 23:00-01:00 in New York: one hour in each week.
    status, _ = await admin.post(
        "/api/v1/entries", {"start": utc(SUN, 23, NY), "end": utc(MON, 1, NY)}
    )
    assert status == 201
    # And Sunday afternoon of the week before: not in this week at all.
    status, _ = await admin.post(
        "/api/v1/entries", {"start": utc(SUN, 10, NY), "end": utc(SUN, 11, NY)}
    )
    assert status == 201
    # 22:00 on Tuesday in New York is Wednesday in UTC.
    status, _ = await admin.post(
        "/api/v1/entries", {"start": utc(TUE, 22, NY), "end": utc(TUE, 23, NY)}
    )
    assert status == 201
    await sign_in(client)
    html = await (await client.get(f"/?week={MON}")).text()
    assert f'data-tt-day="{MON}" data-total-s="3600"' in html
    assert f'data-tt-day="{TUE}" data-total-s="3600"' in html
    assert f'data-tt-day="{WED}" data-total-s="0"' in html
    assert "22:00" in html and "America/New_York" in html
    assert html.count("data-tt-entry-id=") == 2  # the midnight one and Tuesday's
    assert "10:00\u201311:00" not in html


async def test_the_timesheet_never_ships_the_task_tree(client: Client, admin: Api) -> None:
    status, root = await admin.post("/api/v1/tasks", {"name": "Big project"})
    assert status == 201
    names = [f"Unshipped task {i:03d}" for i in range(60)]
    for name in names:
        status, _ = await admin.post("/api/v1/tasks", {"name": name, "parent_id": root["id"]})
        assert status == 201
    await sign_in(client)
    html = await (await client.get("/")).text()
    assert not any(name in html for name in names)
    # Searching returns one page of matches, from the server.
    html = await (await client.get("/?task-search=unshipped")).text()
    assert html.count("data-tt-task-id=") == 20
    status, page = await Api(client).get("/api/v1/tasks?q=unshipped&trackable=true&limit=20")
    assert status == 200 and len(page["items"]) == 20 and page["next_cursor"]


async def test_signing_in_again_replaces_the_old_session(client: Client) -> None:
    old, csrf = await sign_in(client)
    # The jar still sends the old (live) cookie: the form needs that session's token.
    new, _ = await sign_in(client, csrf=csrf)
    assert new != old
    client.session.cookie_jar.clear()
    assert (await client.get("/api/v1/me", cookies={SESSION: old})).status == 401
    assert (await client.get("/api/v1/me", cookies={SESSION: new})).status == 200


async def test_openapi_documents_the_session_cookie(client: Client) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    scheme = doc["components"]["securitySchemes"]["session"]
    assert scheme == {**scheme, "type": "apiKey", "in": "cookie", "name": SESSION}
    stop = doc["paths"]["/api/v1/timer/stop"]["post"]
    assert {"session": []} in stop["security"] and "403" in stop["responses"]


async def test_pages_work_at_another_address_of_the_same_server(client: Client) -> None:
    # TT_PUBLIC_URL says 127.0.0.1:8080; the browser opened the server at its test address.
    here = f"http://{client.host}:{client.port}"
    response = await client.post(
        "/sign-in",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"Origin": here},
        allow_redirects=False,
    )
    assert response.status == 303
    response = await client.post(
        "/sign-in",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"Origin": "http://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403


async def test_the_sign_in_page_obeys_the_login_limit(client: Client) -> None:
    for _ in range(5):  # failures through the page and the API count together
        response = await client.post("/sign-in", data={"email": ADMIN_EMAIL, "password": "nope"})
        assert response.status == 401
        status, _ = await Api(client).post(
            "/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": "nope"}
        )
        assert status == 401
    response = await client.post(
        "/sign-in", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    assert response.status == 429 and SESSION not in response.cookies
    assert int(response.headers["Retry-After"]) > 0
    text = await response.text()
    assert 'role="alert"' in text and "Too many failed sign-ins" in text
