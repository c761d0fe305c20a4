"""Who may do what: every route of the application x six callers -> the expected status.

The routes come from the application's router (every registry: the API, the Asana
integration routes, pages, and whatever is added later), so a new route without a row in
MATRIX fails this test. To add a row: the key is "METHOD /path" exactly as the router
spells it; ``expect`` lists the status for each caller in the order of ROLES; ``body``
and ``params`` build the request (they may create fresh objects, so that a caller's
success never changes what the next caller meets).

Callers, all on account A unless said otherwise (A's tree: Project > Child):
  anonymous - no token
  other     - the admin of another account B (so "another account's object -> 404" is
              checked against the most privileged stranger)
  guest     - guest role on Project
  regular   - regular role on Project
  manager   - manager of Project (the subtree)
  admin     - admin of account A
Every answer must also be a status the OpenAPI document declares for the operation.

Pages (paths outside /api/) are called with each caller's session cookie from the sign-in
form, and their forms post the session's CSRF token; they are not followed past a
redirect, so a signed-out caller's 302/303 to the sign-in page is what is checked.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.api.core import SESSION_COOKIE, csrf_token
from server.keys import SERVICES
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Api
from tests.fakes.connected import providers

ROLES = ("anonymous", "other", "guest", "regular", "manager", "admin")
PASSWORD = "matrix-password-1"
_serial = itertools.count(1)


@dataclass
class World:
    apis: dict[str, Api]
    emails: dict[str, str]
    ids: dict[str, str]
    admin: Api
    # Web pages: each caller's session cookie (signed in through the sign-in form).
    sessions: dict[str, str] = field(default_factory=dict)

    async def sign_in_pages(self) -> None:
        jar = self.admin.client.session.cookie_jar
        for role in ROLES[1:]:
            jar.clear()  # each caller's cookie goes in its own header, never the jar
            password = ADMIN_PASSWORD if role == "admin" else PASSWORD
            response = await self.admin.client.post(
                "/sign-in",
                data={"email": self.emails[role], "password": password},
                allow_redirects=False,
            )
            assert response.status == 303, role
            self.sessions[role] = response.cookies[SESSION_COOKIE].value
        jar.clear()

    async def fresh_child(self) -> str:
        _, task = await self.admin.post(
            "/api/v1/tasks", {"name": f"Fresh {next(_serial)}", "parent_id": self.ids["project"]}
        )
        return str(task["id"])

    async def fresh_user(self) -> str:
        n = next(_serial)
        status, user = await self.admin.post(
            "/api/v1/users", {"email": f"fresh{n}@corp.local", "name": "F", "password": PASSWORD}
        )
        assert status == 201, user
        return str(user["id"])

    async def fresh_entry(self) -> str:
        n = next(_serial)
        status, entry = await self.apis["regular"].post(
            "/api/v1/entries",
            {
                "task_id": self.ids["child"],
                "start": f"2026-03-{1 + n % 27:02d}T{n % 24:02d}:00:00Z",
                "end": f"2026-03-{1 + n % 27:02d}T{n % 24:02d}:30:00Z",
            },
        )
        assert status == 201, entry
        return str(entry["id"])

    async def fresh_invitation(self) -> str:
        n = next(_serial)
        _, user = await self.admin.post(
            "/api/v1/users", {"email": f"invitee{n}@corp.local", "name": "I"}
        )
        return str(user["invite_url"]).rsplit("/", 1)[1]


Build = Callable[[World, str], Awaitable[Any]]


async def _none(world: World, role: str) -> Any:
    return None


@dataclass
class Row:
    expect: str  # one status per caller, in the order of ROLES
    body: Build = _none
    params: Build = _none
    query: str = ""
    stream: bool = False
    statuses: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.statuses = tuple(int(s) for s in self.expect.split())
        assert len(self.statuses) == len(ROLES), self.expect


def body(value: Any) -> Build:
    async def build(world: World, role: str) -> Any:
        return value

    return build


async def _child(world: World, role: str) -> dict[str, str]:
    return {"id": world.ids["child"]}


async def _fresh_child(world: World, role: str) -> dict[str, str]:
    return {"id": await world.fresh_child()}


async def _fresh_member(world: World, role: str) -> dict[str, str]:
    task_id, user_id = await world.fresh_child(), await world.fresh_user()
    await world.admin.put(f"/api/v1/tasks/{task_id}/members/{user_id}", {"role": "regular"})
    return {"id": task_id, "user_id": user_id}


async def _fresh_child_and_user(world: World, role: str) -> dict[str, str]:
    return {"id": await world.fresh_child(), "user_id": await world.fresh_user()}


async def _fresh_entry(world: World, role: str) -> dict[str, str]:
    return {"id": await world.fresh_entry()}


async def _fresh_user(world: World, role: str) -> dict[str, str]:
    return {"id": await world.fresh_user()}


async def _fresh_invitation(world: World, role: str) -> dict[str, str]:
    return {"token": await world.fresh_invitation()}


async def _heyspace(world: World, role: str) -> dict[str, str]:
    return {"service": "heyspace", "sync_id": "no-such-sync"}


async def _own_entry_times(world: World, role: str) -> dict[str, Any]:
    n = next(_serial)
    return {
        "task_id": world.ids["child"],
        "start": f"2026-02-{1 + n % 27:02d}T{n % 24:02d}:00:00Z",
        "end": f"2026-02-{1 + n % 27:02d}T{n % 24:02d}:10:00Z",
    }


async def _new_user(world: World, role: str) -> dict[str, Any]:
    return {"email": f"new{next(_serial)}@corp.local", "name": "N", "password": PASSWORD}


async def _own_login(world: World, role: str) -> dict[str, Any]:
    if role == "admin":
        return {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    return {"email": world.emails["regular" if role == "anonymous" else role], "password": PASSWORD}


async def _member_form(world: World, role: str) -> dict[str, Any]:
    return {"user_id": await world.fresh_user(), "role": "regular"}


async def _new_task(world: World, role: str) -> dict[str, Any]:
    return {"name": f"New {next(_serial)}", "parent_id": world.ids["project"]}


async def _start_child(world: World, role: str) -> dict[str, Any]:
    return {"task_id": world.ids["child"]}


RANGE = "?from=2026-01-01&to=2026-01-31&tz=UTC"
ADMIN_ONLY = "401 404 403 403 403 404"  # admin-only, on an integration A has not connected
PAGE = "302 200 200 200 200 200"  # signed out: to the sign-in page
ADMIN_PAGE = "302 200 403 403 403 200"
PAGE_ADMIN_ONLY = "303 404 403 403 403 404"  # a form of the admin's integrations page
ANY_USER = "401 200 200 200 200 200"
ANYONE = "200 200 200 200 200 200"

MATRIX: dict[str, Row] = {
    "POST /api/v1/auth/login": Row(ANYONE, body=_own_login),
    "GET /api/v1/me": Row(ANY_USER),
    "GET /api/v1/users": Row("401 200 403 403 403 200"),
    "POST /api/v1/users": Row("401 201 403 403 403 201", body=_new_user),
    "PATCH /api/v1/users/{id}": Row(
        "401 404 403 403 403 200", body=body({"name": "Renamed"}), params=_fresh_user
    ),
    "POST /api/v1/invitations/{token}/accept": Row(
        ANYONE, body=body({"password": PASSWORD}), params=_fresh_invitation
    ),
    "GET /invite/{token}": Row(ANYONE, params=_fresh_invitation),
    "GET /api/v1/tasks": Row(ANY_USER),
    "POST /api/v1/tasks": Row("401 404 403 403 201 201", body=_new_task),
    "GET /api/v1/tasks/{id}": Row("401 404 200 200 200 200", params=_child),
    "PATCH /api/v1/tasks/{id}": Row(
        "401 404 403 403 200 200", body=body({"name": "Renamed"}), params=_fresh_child
    ),
    "DELETE /api/v1/tasks/{id}": Row("401 404 403 403 403 204", params=_fresh_child),
    "GET /api/v1/tasks/{id}/members": Row("401 404 403 403 200 200", params=_child),
    "PUT /api/v1/tasks/{id}/members/{user_id}": Row(
        "401 404 403 403 200 200", body=body({"role": "regular"}), params=_fresh_child_and_user
    ),
    "DELETE /api/v1/tasks/{id}/members/{user_id}": Row(
        "401 404 403 403 204 204", params=_fresh_member
    ),
    "POST /api/v1/resolve": Row(
        ANY_USER, body=body({"service": "asana", "external_ids": ["1", "2"]})
    ),
    "GET /api/v1/match": Row(ANY_USER, query="?url=https%3A%2F%2Fexample.com%2Fx"),
    "GET /api/v1/timer": Row(ANY_USER),
    "POST /api/v1/timer/start": Row("401 404 403 201 201 201", body=_start_child),
    "POST /api/v1/timer/stop": Row(ANY_USER, body=body({})),
    "GET /api/v1/entries": Row(ANY_USER),
    "POST /api/v1/entries": Row("401 404 403 201 201 201", body=_own_entry_times),
    "PATCH /api/v1/entries/{id}": Row(
        "401 404 404 200 404 200", body=body({"note": "n"}), params=_fresh_entry
    ),
    "DELETE /api/v1/entries/{id}": Row("401 404 404 204 404 204", params=_fresh_entry),
    "GET /api/v1/events": Row(ANY_USER, stream=True),
    "GET /api/v1/integrations": Row(ANY_USER),
    "POST /api/v1/integrations/heyspace": Row(
        "401 400 403 403 403 400",
        body=body({"email": "nobody@heyspace.example", "password": "wrong-password"}),
    ),
    "POST /api/v1/integrations/pivotaltracker": Row(
        "401 400 403 403 403 400", body=body({"api_token": "wrong-token"})
    ),
    "POST /api/v1/integrations/asana": Row("401 200 403 403 403 200"),
    # Back to the integrations page, with what happened (here: no code, no state).
    "GET /api/v1/integrations/asana/callback": Row("303 303 303 303 303 303"),
    "GET /api/v1/integrations/asana/workspaces": Row(ADMIN_ONLY),
    "PUT /api/v1/integrations/asana/workspaces": Row(ADMIN_ONLY, body=body({"selected": ["1"]})),
    "GET /api/v1/integrations/asana/coworkers": Row(ADMIN_ONLY),
    "POST /api/v1/integrations/asana/invitations": Row(
        ADMIN_ONLY, body=body({"emails": ["carol@corp.local"]})
    ),
    "POST /api/v1/integrations/asana/reenable": Row(ADMIN_ONLY),
    "POST /api/v1/integrations/heyspace/reenable": Row(
        ADMIN_ONLY, body=body({"email": "a@heyspace.example", "password": "p"})
    ),
    "POST /api/v1/integrations/pivotaltracker/reenable": Row(
        ADMIN_ONLY, body=body({"api_token": "t"})
    ),
    "PATCH /api/v1/integrations/heyspace": Row(
        ADMIN_ONLY, body=body({"settings": {"keywords_from_ids": True}})
    ),
    "PATCH /api/v1/integrations/pivotaltracker": Row(
        ADMIN_ONLY, body=body({"settings": {"keywords_from_ids": True}})
    ),
    "PATCH /api/v1/integrations/asana": Row(
        ADMIN_ONLY, body=body({"settings": {"keywords_from_ids": True}})
    ),
    "DELETE /api/v1/integrations/heyspace": Row(ADMIN_ONLY),
    "DELETE /api/v1/integrations/pivotaltracker": Row(ADMIN_ONLY),
    "DELETE /api/v1/integrations/asana": Row(ADMIN_ONLY),
    # Any user may force a sync; none exists on A or B here.
    "POST /api/v1/integrations/{service}/sync": Row("401 404 404 404 404 404", params=_heyspace),
    "GET /api/v1/integrations/{service}/syncs": Row("401 404 404 404 404 404", params=_heyspace),
    "GET /api/v1/integrations/{service}/syncs/{sync_id}": Row(
        "401 404 404 404 404 404", params=_heyspace
    ),
    "GET /api/v1/openapi.json": Row(ANYONE),
    "PATCH /api/v1/me": Row(ANY_USER, body=body({"name": "Renamed"})),
    "GET /api/v1/reports/summary": Row(ANY_USER, query=RANGE),
    "GET /api/v1/reports/entries.csv": Row(ANY_USER, query=RANGE),
    "GET /api/v1/reports/entries.xlsx": Row(ANY_USER, query=RANGE),
    # -- web pages (session cookie; forms post their CSRF token and nothing else, so an
    # allowed caller meets the form's own validation, a refused one the refusal) --
    "GET /": Row(ANYONE),
    "GET /static": Row(ANYONE, query="/app.css"),
    "POST /sign-in": Row("303 303 303 303 303 303", body=_own_login),
    "GET /reports": Row(PAGE),
    "GET /tasks": Row(PAGE),
    "GET /integrations": Row(ADMIN_PAGE),
    "GET /team": Row(ADMIN_PAGE),
    "POST /invite/{token}": Row(
        "303 303 303 303 303 303", body=body({"password": PASSWORD}), params=_fresh_invitation
    ),
    "POST /entries": Row("303 400 400 400 400 400"),
    "POST /timer/start": Row("303 404 403 303 303 303", body=_start_child),
    "POST /timer/stop": Row("303 303 303 303 303 303"),
    "POST /sync": Row("303 303 303 303 303 303"),
    "POST /tasks/new": Row("303 404 403 403 303 303", body=_new_task),
    "POST /tasks/{id}/rename": Row(
        "303 404 403 403 303 303", body=body({"name": "Renamed"}), params=_fresh_child
    ),
    "POST /tasks/{id}/move": Row("303 404 403 403 403 303", params=_fresh_child),
    "POST /tasks/{id}/archive": Row("303 404 403 403 303 303", params=_fresh_child),
    "POST /tasks/{id}/members": Row(
        "303 404 403 403 303 303", body=_member_form, params=_fresh_child
    ),
    "POST /tasks/{id}/members/{user_id}": Row(
        "303 404 403 403 303 303", body=body({"role": "guest"}), params=_fresh_member
    ),
    "POST /team/users": Row("303 303 403 403 403 303", body=_new_user),
    "POST /team/users/{id}": Row("303 404 403 403 403 303", params=_fresh_user),
    "POST /integrations/{service}/enable": Row("303 400 403 403 403 400", params=_heyspace),
    "POST /integrations/{service}/reenable": Row("303 400 403 403 403 400", params=_heyspace),
    "POST /integrations/{service}/settings": Row(PAGE_ADMIN_ONLY, params=_heyspace),
    "POST /integrations/{service}/sync": Row(PAGE_ADMIN_ONLY, params=_heyspace),
    "POST /integrations/{service}/unlink": Row(PAGE_ADMIN_ONLY, params=_heyspace),
    "POST /integrations/asana/workspaces": Row(PAGE_ADMIN_ONLY),
    "POST /integrations/asana/invite": Row("303 400 403 403 403 400"),
    # Last of the pages: it ends each caller's session (they sign in again afterwards).
    "POST /sign-out": Row("303 303 303 303 303 303"),
    "GET /health": Row(ANYONE),
    # Last: it revokes each caller's token (they sign in again afterwards).
    "POST /api/v1/auth/logout": Row("401 204 204 204 204 204"),
}


async def build_world(admin: Api) -> World:
    services = admin.client.app[SERVICES]
    _, project = await admin.post("/api/v1/tasks", {"name": "Project"})
    _, child = await admin.post("/api/v1/tasks", {"name": "Child", "parent_id": project["id"]})
    apis: dict[str, Api] = {"anonymous": Api(admin.client), "admin": admin}
    emails = {"admin": ADMIN_EMAIL}
    for role in ("guest", "regular", "manager"):
        emails[role] = f"{role}@corp.local"
        api, user = await admin.new_user(emails[role], password=PASSWORD)
        member_role = "regular" if role == "regular" else role
        await admin.put(
            f"/api/v1/tasks/{project['id']}/members/{user['id']}", {"role": member_role}
        )
        apis[role] = api
    emails["other"] = "admin@other-account.example"
    await services.accounts.create_account_with_admin(emails["other"], PASSWORD, "Other", "B")
    apis["other"] = await Api(admin.client).login(emails["other"], PASSWORD)
    return World(apis, emails, {"project": project["id"], "child": child["id"]}, admin)


def is_page(key: str) -> bool:
    path = key.split(" ", 1)[1]
    return not path.startswith(("/api/", "/health"))


def app_routes(client: Any) -> set[str]:
    return {
        f"{r.method} {r.resource.canonical}"
        for r in client.app.router.routes()
        if r.method not in ("HEAD", "OPTIONS") and r.resource is not None
    }


async def call(world: World, role: str, key: str, row: Row) -> int:
    method, path = key.split(" ", 1)
    params = await row.params(world, role) or {}
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    payload = await row.body(world, role)
    api = world.apis[role]
    if is_page(key):
        # Pages authenticate by the session cookie; forms carry its CSRF token.
        session = world.sessions.get(role)
        cookie = {"Cookie": f"{SESSION_COOKIE}={session}"} if session else {}
        api.client.session.cookie_jar.clear()
        form = dict(payload or {})
        if session and method == "POST":
            form.setdefault("csrf", csrf_token(session))
        response = await api.client.request(
            method,
            path + row.query,
            data=form if method == "POST" else None,
            headers=cookie,
            allow_redirects=False,
        )
        status = response.status
        await response.read()
        return status
    headers = {"Authorization": f"Bearer {api.token}"} if api.token else {}
    response = await api.client.request(
        method, path + row.query, json=payload, headers=headers, allow_redirects=False
    )
    status = response.status
    if row.stream:
        response.close()
    else:
        await response.read()
    return status


async def test_every_route_answers_every_caller_as_the_table_says(make_client: Any) -> None:
    # The providers are reachable (fakes), so integration routes answer for themselves.
    async with providers() as fakes:
        client = await make_client(**fakes.urls)
        await check_matrix(await Api(client).login(ADMIN_EMAIL, ADMIN_PASSWORD))


async def check_matrix(admin: Api) -> None:
    routes = app_routes(admin.client)
    missing = sorted(routes - set(MATRIX))
    assert not missing, f"routes without a row in MATRIX: {missing}"
    stale = sorted(set(MATRIX) - routes)
    assert not stale, f"rows for routes that do not exist: {stale}"

    _, document = await Api(admin.client).get("/api/v1/openapi.json")
    world = await build_world(admin)
    await world.sign_in_pages()
    wrong: list[str] = []
    undeclared: list[str] = []
    for key, row in MATRIX.items():
        method, path = key.split(" ", 1)
        declared = document["paths"].get(path, {}).get(method.lower(), {}).get("responses")
        for role, expected in zip(ROLES, row.statuses, strict=True):
            status = await call(world, role, key, row)
            if status != expected:
                wrong.append(f"{key} as {role}: {status} (expected {expected})")
            if declared is not None and str(status) not in declared:
                undeclared.append(f"{key} as {role}: {status} not in the OpenAPI document")
        if key in ("POST /sign-in", "POST /sign-out", "POST /invite/{token}"):
            # These end the session the caller came with: sign in again.
            await world.sign_in_pages()
        if key == "POST /api/v1/auth/logout":
            for role in ROLES[1:]:
                email = world.emails[role]
                world.apis[role] = await Api(admin.client).login(
                    email, ADMIN_PASSWORD if role == "admin" else PASSWORD
                )
    assert wrong == [], "\n".join(wrong)
    assert undeclared == [], "\n".join(undeclared)
