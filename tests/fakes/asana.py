"""Fake Asana: OAuth 2 with PKCE under ``/-``, the API under ``/api/1.0``.

Python control: :class:`AsanaState` (``add_user``, ``add_workspace``, ``add_project``,
``add_member``, ``add_section``, ``add_task``, ``add_subtask``, ``add_to_project``,
``move_task``, ``rename``, ``complete_task``, ``archive_project``, ``delete``,
``set_authorizing_user``, ``set_truncate_after``, ``expire_tokens``,
``set_token_lifetime``, ``generate`` …); the same over HTTP as ``POST /_control/<method>``.

Like Asana: payloads wrapped as ``{"data": ...}``, ``limit`` 1..100 (more is a 400),
``next_page: {offset, path, uri}``, ``opt_fields`` selects fields (dotted paths work), access
tokens expire, a refresh answer carries no new refresh token.

``python -m tests.fakes.asana --port 8103 [--tasks 5000 --projects 20]``.
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import time
from typing import Any, ClassVar
from urllib.parse import urlencode

from aiohttp import web
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge

from .common import FakeState, Handler, add_control_routes, run_main

API = "/api/1.0"
OAUTH = "/-"
CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret"
CODE_LIFETIME_S = 600


def _select(value: Any, tree: dict[str, Any]) -> Any:
    """Asana-style field selection: compact objects unless opt_fields asks for more."""
    if isinstance(value, list):
        return [_select(v, tree) for v in value]
    if not isinstance(value, dict):
        return value
    if not tree:
        return {k: value[k] for k in ("gid", "resource_type", "name") if k in value}
    picked = {"gid": value["gid"]} if "gid" in value else {}
    for key, sub in tree.items():
        if key in value:
            picked[key] = _select(value[key], sub)
    return picked


def _field_tree(opt_fields: str | None) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in (opt_fields or "").split(","):
        node = tree
        for part in filter(None, path.strip().split(".")):
            node = node.setdefault(part, {})
    return tree


class AsanaState(FakeState):
    CONTROL_METHODS: ClassVar[frozenset[str]] = FakeState.CONTROL_METHODS | {
        "add_user",
        "add_workspace",
        "add_project",
        "add_member",
        "add_section",
        "add_task",
        "add_subtask",
        "add_to_project",
        "move_task",
        "rename",
        "complete_task",
        "archive_project",
        "delete",
        "set_authorizing_user",
        "set_truncate_after",
        "set_rotate_refresh",
    }

    def __init__(self, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self._gids = itertools.count(1_200_000_000_000_001)
        self.users: dict[str, dict[str, Any]] = {}
        self.workspaces: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.sections: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.project_tasks: dict[str, dict[str, None]] = {}  # ordered sets
        self.children: dict[str, dict[str, None]] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.authorizing_user: str | None = None
        self.rotate_refresh = False
        # Listings past this many items answer 400 "offset expired", as Asana does when a
        # pagination offset goes stale.
        self.truncate_after: int | None = None

    def _gid(self) -> str:
        return str(next(self._gids))

    # -- control ---------------------------------------------------------------------------
    def add_user(self, email: str, name: str = "") -> str:
        gid = self._gid()
        self.users[gid] = {
            "gid": gid,
            "resource_type": "user",
            "name": name or email,
            "email": email,
        }
        if self.authorizing_user is None:
            self.authorizing_user = gid
        return gid

    def set_authorizing_user(self, gid: str) -> None:
        """The user who "logs in" at the authorize page."""
        if gid not in self.users:
            raise KeyError(gid)
        self.authorizing_user = gid

    def add_workspace(self, name: str) -> str:
        gid = self._gid()
        self.workspaces[gid] = {"gid": gid, "resource_type": "workspace", "name": name}
        return gid

    def add_project(
        self, workspace: str, name: str, members: list[str] | None = None, archived: bool = False
    ) -> str:
        """A project; ``members`` are user gids (default: the authorizing user)."""
        if workspace not in self.workspaces:
            raise KeyError(workspace)
        gid = self._gid()
        default = [self.authorizing_user] if self.authorizing_user else []
        self.projects[gid] = {
            "gid": gid,
            "name": name,
            "workspace": workspace,
            "archived": archived,
            "completed": False,
            "members": list(members if members is not None else default),
        }
        self.project_tasks[gid] = {}
        return gid

    def add_member(self, project: str, user: str) -> None:
        if user not in self.users:
            raise KeyError(user)
        if user not in self.projects[project]["members"]:
            self.projects[project]["members"].append(user)

    def add_section(self, project: str, name: str) -> str:
        if project not in self.projects:
            raise KeyError(project)
        gid = self._gid()
        self.sections[gid] = {"gid": gid, "name": name, "project": project}
        return gid

    def add_task(self, project: str, name: str, section: str | None = None) -> str:
        if project not in self.projects:
            raise KeyError(project)
        gid = self._gid()
        self.tasks[gid] = {
            "gid": gid,
            "name": name,
            "completed": False,
            "parent": None,
            "memberships": [],
        }
        self.add_to_project(gid, project, section)
        return gid

    def add_subtask(self, parent: str, name: str) -> str:
        if parent not in self.tasks:
            raise KeyError(parent)
        gid = self._gid()
        self.tasks[gid] = {
            "gid": gid,
            "name": name,
            "completed": False,
            "parent": parent,
            "memberships": [],
        }
        self.children.setdefault(parent, {})[gid] = None
        return gid

    def add_to_project(self, task: str, project: str, section: str | None = None) -> None:
        """Multi-home a task (or put a subtask into a project too)."""
        if section is not None and self.sections[section]["project"] != project:
            raise ValueError("section belongs to another project")
        memberships = self.tasks[task]["memberships"]
        memberships[:] = [m for m in memberships if m["project"] != project]
        memberships.append({"project": project, "section": section})
        self.project_tasks[project][task] = None

    def move_task(self, task: str, section: str) -> None:
        self.add_to_project(task, self.sections[section]["project"], section)

    def rename(self, gid: str, name: str) -> None:
        for table in (self.workspaces, self.projects, self.sections, self.tasks, self.users):
            if gid in table:
                table[gid]["name"] = name
                return
        raise KeyError(gid)

    def complete_task(self, task: str, completed: bool = True) -> None:
        self.tasks[task]["completed"] = completed

    def archive_project(self, project: str, archived: bool = True) -> None:
        self.projects[project]["archived"] = archived

    def delete(self, gid: str) -> None:
        """Deleted items simply stop appearing (with everything under them)."""
        if gid in self.tasks:
            self._drop_task(gid)
        elif gid in self.sections:
            project = self.sections.pop(gid)["project"]
            for task in self.project_tasks[project]:
                for m in self.tasks[task]["memberships"]:
                    if m["section"] == gid:
                        m["section"] = None
        elif gid in self.projects:
            for task in self.project_tasks.pop(gid):
                t = self.tasks[task]
                t["memberships"] = [m for m in t["memberships"] if m["project"] != gid]
                if not t["memberships"] and not t["parent"]:
                    self._drop_task(task)
            for section in [s for s, v in self.sections.items() if v["project"] == gid]:
                del self.sections[section]
            del self.projects[gid]
        else:
            raise KeyError(gid)

    def _drop_task(self, gid: str) -> None:
        for child in list(self.children.pop(gid, {})):
            self._drop_task(child)
        task = self.tasks.pop(gid)
        for m in task["memberships"]:
            self.project_tasks.get(m["project"], {}).pop(gid, None)
        if task["parent"]:
            self.children.get(task["parent"], {}).pop(gid, None)

    def set_truncate_after(self, items: int | None) -> None:
        self.truncate_after = items

    def set_rotate_refresh(self, rotate: bool) -> None:
        """Whether a refresh answer carries a new refresh token (real Asana: no)."""
        self.rotate_refresh = rotate

    def generate(
        self,
        workspaces: int = 1,
        projects: int = 20,
        sections_per_project: int = 3,
        tasks: int = 5_000,
        subtask_every: int = 0,
        completed_every: int = 0,
    ) -> dict[str, int]:
        """``tasks`` spread over ``projects`` per workspace; every ``subtask_every``-th task
        gets one subtask."""
        if self.authorizing_user is None:
            self.add_user("owner@example.com", "Owner")
        homes: list[tuple[str, str | None]] = []
        for w in range(workspaces):
            ws = self.add_workspace(f"Workspace {w + 1}")
            for p in range(projects):
                project = self.add_project(ws, f"Project {w + 1}.{p + 1}")
                sections: list[str | None] = [
                    self.add_section(project, f"Section {s + 1}")
                    for s in range(sections_per_project)
                ]
                homes.extend((project, s) for s in (sections or [None]))
        subtasks = 0
        per_workspace = tasks
        for i in range(per_workspace * workspaces):
            project, section = homes[i % len(homes)]
            task = self.add_task(project, f"Task {i + 1}", section)
            if completed_every and i % completed_every == 0:
                self.tasks[task]["completed"] = True
            if subtask_every and i % subtask_every == 0:
                self.add_subtask(task, f"Subtask of {i + 1}")
                subtasks += 1
        return {
            "workspaces": workspaces,
            "projects": workspaces * projects,
            "tasks": per_workspace * workspaces,
            "subtasks": subtasks,
        }

    # -- full records, as the API would show with every field requested --------------------
    def user_record(self, gid: str) -> dict[str, Any]:
        return dict(self.users[gid])

    def project_record(self, gid: str) -> dict[str, Any]:
        p = self.projects[gid]
        return {
            "gid": gid,
            "resource_type": "project",
            "name": p["name"],
            "archived": p["archived"],
            "completed": p["completed"],
            "workspace": self.workspaces[p["workspace"]],
            "members": [self.user_record(u) for u in p["members"]],
            "permalink_url": f"https://app.asana.com/0/{gid}/{gid}",
        }

    def section_record(self, gid: str) -> dict[str, Any]:
        s = self.sections[gid]
        return {
            "gid": gid,
            "resource_type": "section",
            "name": s["name"],
            "project": {
                "gid": s["project"],
                "resource_type": "project",
                "name": self.projects[s["project"]]["name"],
            },
        }

    def task_record(self, gid: str) -> dict[str, Any]:
        t = self.tasks[gid]
        memberships = [
            {
                "project": {
                    "gid": m["project"],
                    "resource_type": "project",
                    "name": self.projects[m["project"]]["name"],
                },
                "section": {
                    "gid": m["section"],
                    "resource_type": "section",
                    "name": self.sections[m["section"]]["name"],
                }
                if m["section"]
                else None,
            }
            for m in t["memberships"]
        ]
        home = t["memberships"][0]["project"] if t["memberships"] else "0"
        return {
            "gid": gid,
            "resource_type": "task",
            "name": t["name"],
            "completed": t["completed"],
            "parent": {
                "gid": t["parent"],
                "resource_type": "task",
                "name": self.tasks[t["parent"]]["name"],
            }
            if t["parent"]
            else None,
            "num_subtasks": len(self.children.get(gid, {})),
            "memberships": memberships,
            "permalink_url": f"https://app.asana.com/0/{home}/{gid}",
        }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"errors": [{"message": message}]}, status=status)


STATE_KEY: web.AppKey[AsanaState] = web.AppKey("asana_state", AsanaState)


def create_app(state: AsanaState | None = None) -> web.Application:
    state = state or AsanaState()

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API) and state.tokens.bearer_subject(request) is None:
            return _error(401, "Not Authorized")
        return await handler(request)

    app = web.Application(middlewares=[state.faults.middleware, require_token])
    app[STATE_KEY] = state

    # -- OAuth -------------------------------------------------------------------------------
    async def authorize(request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("client_id") != state.client_id:
            return _error(400, "invalid client_id")
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri:
            return _error(400, "redirect_uri is required")
        if q.get("response_type") != "code":
            return _error(400, "response_type must be code")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return _error(400, "PKCE S256 code_challenge is required")
        if state.authorizing_user is None:
            return _error(400, "no user to authorize as")
        code = secrets.token_urlsafe(24)
        state.codes[code] = {
            "client_id": state.client_id,
            "redirect_uri": redirect_uri,
            "challenge": q["code_challenge"],
            "user": state.authorizing_user,
            "expires": time.monotonic() + CODE_LIFETIME_S,
        }
        params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(f"{redirect_uri}{sep}{urlencode(params)}")

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if (
            form.get("client_id") != state.client_id
            or form.get("client_secret") != state.client_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            # Codes are single use, whatever the outcome.
            code = state.codes.pop(str(form.get("code", "")), None)
            if code is None or code["expires"] < time.monotonic():
                return web.json_response({"error": "invalid_grant"}, status=400)
            if form.get("redirect_uri") != code["redirect_uri"]:
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "redirect_uri"}, status=400
                )
            verifier = str(form.get("code_verifier", ""))
            if not verifier or not compare_s256_code_challenge(verifier, code["challenge"]):
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "code_verifier"}, status=400
                )
            answer = state.tokens.issue(code["user"])
            user = code["user"]
        elif grant == "refresh_token":
            subject = state.tokens.use_refresh(
                str(form.get("refresh_token", "")), consume=state.rotate_refresh
            )
            if subject is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            answer = state.tokens.issue(subject, with_refresh=state.rotate_refresh)
            user = subject
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        u = state.users[user]
        answer["data"] = {"gid": u["gid"], "name": u["name"], "email": u["email"]}
        return web.json_response(answer)

    # -- API ---------------------------------------------------------------------------------
    def listing(request: web.Request, records: list[Any], build: Any) -> web.Response:
        """Page ``records`` (keys) by limit/offset and render them with ``build``."""
        q = request.query
        tree = _field_tree(q.get("opt_fields"))
        start = 0
        if "offset" in q:
            try:
                start = int(q["offset"].removeprefix("o"), 16)
            except ValueError:
                return _error(400, "offset: Your pagination token is invalid")
            if state.truncate_after is not None and start >= state.truncate_after:
                return _error(400, "offset: Your pagination token has expired")
        if "limit" not in q:
            return web.json_response({"data": [_select(build(r), tree) for r in records[start:]]})
        try:
            limit = int(q["limit"])
        except ValueError:
            return _error(400, "limit: Not a number")
        if not 1 <= limit <= 100:
            return _error(400, "limit: Must be between 1 and 100")
        end = min(len(records), start + limit)
        next_page = None
        if end < len(records):
            offset = f"o{end:x}"
            path = f"{request.path}?{urlencode({**q, 'offset': offset})}"
            next_page = {"offset": offset, "path": path, "uri": f"{request.url.origin()}{path}"}
        data = [_select(build(r), tree) for r in records[start:end]]
        return web.json_response({"data": data, "next_page": next_page})

    async def users_me(request: web.Request) -> web.Response:
        user = state.tokens.bearer_subject(request)
        assert user is not None  # require_token let the request through
        tree = _field_tree(request.query.get("opt_fields")) or {"email": {}, "name": {}}
        return web.json_response({"data": _select(state.user_record(user), tree)})

    async def workspaces(request: web.Request) -> web.Response:
        return listing(request, list(state.workspaces), lambda g: state.workspaces[g])

    async def users(request: web.Request) -> web.Response:
        workspace = request.query.get("workspace")
        if workspace is not None and workspace not in state.workspaces:
            return _error(404, "workspace: Unknown object")
        return listing(request, list(state.users), state.user_record)

    async def projects(request: web.Request) -> web.Response:
        q = request.query
        workspace = q.get("workspace")
        if workspace not in state.workspaces:
            return _error(400, "workspace: Missing input")
        chosen = [
            g
            for g, p in state.projects.items()
            if p["workspace"] == workspace
            and ("archived" not in q or p["archived"] == (q["archived"] == "true"))
        ]
        return listing(request, chosen, state.project_record)

    async def sections(request: web.Request) -> web.Response:
        project = request.match_info["gid"]
        if project not in state.projects:
            return _error(404, "project: Unknown object")
        chosen = [g for g, s in state.sections.items() if s["project"] == project]
        return listing(request, chosen, state.section_record)

    async def tasks(request: web.Request) -> web.Response:
        q = request.query
        if "project" in q:
            if q["project"] not in state.projects:
                return _error(404, "project: Unknown object")
            return listing(request, list(state.project_tasks[q["project"]]), state.task_record)
        if "section" in q:
            return await section_tasks_of(request, q["section"])
        return _error(
            400,
            "Must specify exactly one of project, tag, section, user task list, or assignee"
            " + workspace",
        )

    async def section_tasks_of(request: web.Request, section: str) -> web.Response:
        if section not in state.sections:
            return _error(404, "section: Unknown object")
        project = state.sections[section]["project"]
        chosen = [
            t
            for t in state.project_tasks[project]
            if any(
                m["project"] == project and m["section"] == section
                for m in state.tasks[t]["memberships"]
            )
        ]
        return listing(request, chosen, state.task_record)

    async def section_tasks(request: web.Request) -> web.Response:
        return await section_tasks_of(request, request.match_info["gid"])

    async def subtasks(request: web.Request) -> web.Response:
        task = request.match_info["gid"]
        if task not in state.tasks:
            return _error(404, "task: Unknown object")
        return listing(request, list(state.children.get(task, {})), state.task_record)

    app.router.add_get(f"{OAUTH}/oauth_authorize", authorize)
    app.router.add_post(f"{OAUTH}/oauth_token", token)
    app.router.add_get(f"{API}/users/me", users_me)
    app.router.add_get(f"{API}/workspaces", workspaces)
    app.router.add_get(f"{API}/users", users)
    app.router.add_get(f"{API}/projects", projects)
    app.router.add_get(f"{API}/projects/{{gid}}/sections", sections)
    app.router.add_get(f"{API}/tasks", tasks)
    app.router.add_get(f"{API}/sections/{{gid}}/tasks", section_tasks)
    app.router.add_get(f"{API}/tasks/{{gid}}/subtasks", subtasks)
    add_control_routes(app, state)
    return app


def _build(args: argparse.Namespace) -> tuple[web.Application, str, list[str]]:
    state = AsanaState()
    state.add_user("owner@example.com", "Owner")
    counts = state.generate(projects=args.projects, tasks=args.tasks)
    notes = [
        f"OAuth base: <url>{OAUTH}",
        f"client_id={state.client_id} client_secret={state.client_secret}",
        f"data: {counts}",
    ]
    return create_app(state), API, notes


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--projects", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=100)


if __name__ == "__main__":
    run_main("asana", _build, _configure)
