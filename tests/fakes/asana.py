"""Fake Asana: OAuth 2 with PKCE under ``/-``, the API under ``/api/1.0``.

Python control: :class:`AsanaState` (``add_user``, ``add_workspace``, ``add_project``,
``add_member``, ``add_section``, ``add_task``, ``add_subtask``, ``add_to_project``,
``move_task``, ``rename``, ``complete_task``, ``archive_project``, ``delete``,
``set_authorizing_user``, ``set_truncate_after``, ``set_offset_expiry``, ``forbid``,
``set_premium``, ``set_search_lag``, ``set_registration``, ``expire_tokens``,
``set_token_lifetime``, ``generate`` …); the same over HTTP as ``POST /_control/<method>``.

Like Asana: payloads wrapped as ``{"data": ...}``, ``limit`` 1..100 (more is a 400),
``next_page: {offset, path, uri}``, ``opt_fields`` selects fields (dotted paths work), access
tokens expire, a refresh answer carries no new refresh token. Also modelled:

* App registration: *full permissions* (default) refuses any ``scope`` at the authorize
  page (redirect with ``error=forbidden_scopes``); *granular* must name its scopes
  (``error=invalid_scope`` otherwise) and its tokens may only call what the scopes cover
  (403 otherwise; task ``memberships`` need ``projects:read`` and
  ``project_sections:read``).
* Page offsets that expire after some seconds or after some other requests (400).
* 403 on one project (or task) the user may not read.
* ``modified_at`` on tasks and projects; ``GET /tasks?project=&modified_since=``;
  the search API ``GET /workspaces/<gid>/tasks/search`` for premium workspaces only (402
  otherwise) with an index that lags writes by a configurable delay.
* ``GET /projects/<gid>``.

Offsets and the search log are O(1)/O(log n) per request, so a generated 100,000-task
organisation is served as fast as the JSON can be written.

``python -m tests.fakes.asana --port 8103 [--tasks 5000 --projects 20]``.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import secrets
import time
from datetime import UTC, datetime
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
# Granular scopes each API route needs (full-permission tokens may call everything).
ROUTE_SCOPES = {
    "workspaces": "workspaces:read",
    "users": "users:read",
    "projects": "projects:read",
    "sections": "project_sections:read",
    "tasks": "tasks:read",
}
MEMBERSHIP_SCOPES = ("projects:read", "project_sections:read")


def iso_at(ts: float) -> str:
    when = datetime.fromtimestamp(ts, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


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
        "set_offset_expiry",
        "forbid",
        "set_premium",
        "set_search_lag",
        "set_registration",
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
        # Offsets expire this many seconds after they were issued, or once this many other
        # API requests were answered meanwhile (None: never).
        self.offset_ttl_s: float | None = None
        self.offset_ttl_requests: int | None = None
        self.offsets_refused = 0
        self.forbidden: set[str] = set()
        self.premium: set[str] = set()
        self.search_lag_s = 0.0
        # (time, gid) of every task modification, in time order: the search index.
        self.mod_log: list[tuple[float, str]] = []
        # "full": full permissions, asking for any scope is refused; "granular": the app
        # was registered with ``app_scopes`` and must ask for (some of) them.
        self.registration = "full"
        self.app_scopes: frozenset[str] = frozenset()
        self.token_scopes: dict[str, frozenset[str] | None] = {}
        self.refresh_scopes: dict[str, frozenset[str] | None] = {}
        self.clock = time.time
        # Bumped whenever a project's task list changes: listings page a cached copy, so a
        # 100,000-task project costs one copy per change, not one per page.
        self.version = 0
        self._listings: dict[str, tuple[int, list[str]]] = {}

    def _gid(self) -> str:
        return str(next(self._gids))

    def _touch(self, gid: str, at: float | None = None) -> None:
        """Mark a task or project as modified now (or at ``at``)."""
        when = self.clock() if at is None else at
        if gid in self.tasks:
            self.tasks[gid]["modified"] = when
            if self.mod_log and self.mod_log[-1][0] > when:
                bisect.insort(self.mod_log, (when, gid))
            else:
                self.mod_log.append((when, gid))
        elif gid in self.projects:
            self.projects[gid]["modified"] = when

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
            "modified": self.clock(),
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

    def add_task(
        self, project: str, name: str, section: str | None = None, at: float | None = None
    ) -> str:
        if project not in self.projects:
            raise KeyError(project)
        gid = self._gid()
        self.tasks[gid] = {
            "gid": gid,
            "name": name,
            "completed": False,
            "parent": None,
            "memberships": [],
            "workspace": self.projects[project]["workspace"],
            "modified": 0.0,
        }
        self.add_to_project(gid, project, section, at=at)
        return gid

    def add_subtask(self, parent: str, name: str, at: float | None = None) -> str:
        """A subtask; its parent counts as modified too (its ``num_subtasks`` changed)."""
        if parent not in self.tasks:
            raise KeyError(parent)
        gid = self._gid()
        self.tasks[gid] = {
            "gid": gid,
            "name": name,
            "completed": False,
            "parent": parent,
            "memberships": [],
            "workspace": self.tasks[parent]["workspace"],
            "modified": 0.0,
        }
        self.children.setdefault(parent, {})[gid] = None
        self._touch(gid, at)
        self._touch(parent, at)
        return gid

    def add_to_project(
        self, task: str, project: str, section: str | None = None, at: float | None = None
    ) -> None:
        """Multi-home a task (or put a subtask into a project too)."""
        if section is not None and self.sections[section]["project"] != project:
            raise ValueError("section belongs to another project")
        memberships = self.tasks[task]["memberships"]
        memberships[:] = [m for m in memberships if m["project"] != project]
        memberships.append({"project": project, "section": section})
        self.project_tasks[project][task] = None
        self.version += 1
        self._touch(task, at)

    def move_task(self, task: str, section: str) -> None:
        self.add_to_project(task, self.sections[section]["project"], section)

    def rename(self, gid: str, name: str) -> None:
        for table in (self.workspaces, self.projects, self.sections, self.tasks, self.users):
            if gid in table:
                table[gid]["name"] = name
                self._touch(gid)
                return
        raise KeyError(gid)

    def complete_task(self, task: str, completed: bool = True) -> None:
        self.tasks[task]["completed"] = completed
        self._touch(task)

    def archive_project(self, project: str, archived: bool = True) -> None:
        self.projects[project]["archived"] = archived
        self._touch(project)

    def set_offset_expiry(self, seconds: float | None = None, requests: int | None = None) -> None:
        """Offsets expire ``seconds`` after they were issued, or after ``requests`` other API
        requests were answered since (as Asana's "after some time")."""
        self.offset_ttl_s = seconds
        self.offset_ttl_requests = requests

    def forbid(self, gid: str, forbidden: bool = True) -> None:
        """The user may see this project (or task) in listings but not read inside it."""
        if gid not in self.projects and gid not in self.tasks:
            raise KeyError(gid)
        (self.forbidden.add if forbidden else self.forbidden.discard)(gid)

    def set_premium(self, workspace: str, premium: bool = True) -> None:
        """Premium workspaces have the search API; others answer it with 402."""
        if workspace not in self.workspaces:
            raise KeyError(workspace)
        (self.premium.add if premium else self.premium.discard)(workspace)

    def set_search_lag(self, seconds: float) -> None:
        """The search index shows a modification only this long after it happened."""
        self.search_lag_s = seconds

    def set_registration(self, kind: str, scopes: list[str] | None = None) -> None:
        """``full`` (full permissions) or ``granular`` with the app's ``scopes``."""
        if kind not in ("full", "granular"):
            raise ValueError(kind)
        self.registration = kind
        self.app_scopes = frozenset(scopes or ())

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

    def project_listing(self, project: str) -> list[str]:
        cached = self._listings.get(project)
        if cached is None or cached[0] != self.version:
            cached = (self.version, list(self.project_tasks[project]))
            self._listings[project] = cached
        return cached[1]

    def _drop_task(self, gid: str) -> None:
        self.version += 1
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
        multi_home_every: int = 0,
        multi_home_subtask_every: int = 0,
        premium: bool = False,
        age_s: float = 86_400.0,
    ) -> dict[str, int]:
        """``tasks`` spread over ``projects`` per workspace; every ``subtask_every``-th task
        gets one subtask; every ``multi_home_every``-th task is also in the next project;
        every ``multi_home_subtask_every``-th subtask is also in its parent's project.
        Everything generated was last modified ``age_s`` ago (an organisation that
        exists already), so incremental checks see only what changes afterwards.
        Linear in the size: 100,000 tasks take about a second."""
        if self.authorizing_user is None:
            self.add_user("owner@example.com", "Owner")
        at = self.clock() - age_s
        homes: list[tuple[str, str | None]] = []
        all_projects: list[str] = []
        position: dict[str, int] = {}
        for w in range(workspaces):
            ws = self.add_workspace(f"Workspace {w + 1}")
            if premium:
                self.premium.add(ws)
            for p in range(projects):
                project = self.add_project(ws, f"Project {w + 1}.{p + 1}")
                self.projects[project]["modified"] = at
                position[project] = len(all_projects)
                all_projects.append(project)
                sections: list[str | None] = [
                    self.add_section(project, f"Section {s + 1}")
                    for s in range(sections_per_project)
                ]
                homes.extend((project, s) for s in (sections or [None]))
        subtasks = multi_homed = multi_homed_subtasks = 0
        per_workspace = tasks
        for i in range(per_workspace * workspaces):
            project, section = homes[i % len(homes)]
            task = self.add_task(project, f"Task {i + 1}", section, at=at)
            if completed_every and i % completed_every == 0:
                self.tasks[task]["completed"] = True
            if multi_home_every and i % multi_home_every == 1:
                other = all_projects[(position[project] + 1) % len(all_projects)]
                if other != project and (
                    self.projects[other]["workspace"] == self.projects[project]["workspace"]
                ):
                    self.add_to_project(task, other, at=at)
                    multi_homed += 1
            if subtask_every and i % subtask_every == 0:
                sub = self.add_subtask(task, f"Subtask of {i + 1}", at=at)
                subtasks += 1
                if multi_home_subtask_every and subtasks % multi_home_subtask_every == 0:
                    self.add_to_project(sub, project, at=at)
                    multi_homed_subtasks += 1
        return {
            "workspaces": workspaces,
            "projects": workspaces * projects,
            "tasks": per_workspace * workspaces,
            "subtasks": subtasks,
            "multi_homed": multi_homed,
            "multi_homed_subtasks": multi_homed_subtasks,
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
            "modified_at": iso_at(p["modified"]),
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
            "modified_at": iso_at(t["modified"]),
        }

    def readable_task(self, gid: str) -> bool:
        """Whether the user may read a task: not itself forbidden, and not only in
        forbidden projects (a subtask: its parent readable)."""
        t = self.tasks[gid]
        if gid in self.forbidden:
            return False
        if t["memberships"]:
            return any(m["project"] not in self.forbidden for m in t["memberships"])
        return t["parent"] is None or self.readable_task(t["parent"])


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"errors": [{"message": message}]}, status=status)


STATE_KEY: web.AppKey[AsanaState] = web.AppKey("asana_state", AsanaState)


def create_app(state: AsanaState | None = None) -> web.Application:
    state = state or AsanaState()

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API):
            if state.tokens.bearer_subject(request) is None:
                return _error(401, "Not Authorized")
            missing = _missing_scopes(request)
            if missing:
                return _error(
                    403, f"Your token does not have the required scopes: {' '.join(missing)}"
                )
        return await handler(request)

    def _missing_scopes(request: web.Request) -> list[str]:
        token = request.headers.get("Authorization", "").partition(" ")[2].strip()
        granted = state.token_scopes.get(token)
        if granted is None:  # full permissions
            return []
        parts = request.path.removeprefix(API).strip("/").split("/")
        needed: list[str] = []
        if parts[0] == "users" and parts[1:] == ["me"]:
            needed = []
        elif parts[0] == "workspaces" and len(parts) > 2:
            needed = [ROUTE_SCOPES["tasks"]]
        elif len(parts) > 2 and parts[2] == "sections":
            needed = [ROUTE_SCOPES["sections"]]
        elif parts[0] in ("sections", "tasks") or (len(parts) > 2 and parts[2] == "subtasks"):
            needed = [ROUTE_SCOPES["tasks"]]
        elif parts[0] in ROUTE_SCOPES:
            needed = [ROUTE_SCOPES[parts[0]]]
        if "memberships" in request.query.get("opt_fields", ""):
            needed.extend(MEMBERSHIP_SCOPES)
        return sorted({n for n in needed if n not in granted})

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
        asked = frozenset(q.get("scope", "").split())
        refusal: tuple[str, str] | None = None
        if state.registration == "full" and asked:
            refusal = (
                "forbidden_scopes",
                "This app is registered with full permissions and may not request scopes.",
            )
        elif state.registration == "granular" and not asked:
            refusal = ("invalid_scope", "This app must request the scopes it needs.")
        elif state.registration == "granular" and not asked <= state.app_scopes:
            refusal = (
                "invalid_scope",
                f"Scopes not registered for this app: {' '.join(sorted(asked - state.app_scopes))}",
            )
        if refusal is not None:
            # Like any OAuth 2 server: the refusal goes back to the client's redirect_uri.
            params = {"error": refusal[0], "error_description": refusal[1]}
            if "state" in q:
                params["state"] = q["state"]
            sep = "&" if "?" in redirect_uri else "?"
            raise web.HTTPFound(f"{redirect_uri}{sep}{urlencode(params)}")
        code = secrets.token_urlsafe(24)
        state.codes[code] = {
            "client_id": state.client_id,
            "redirect_uri": redirect_uri,
            "challenge": q["code_challenge"],
            "user": state.authorizing_user,
            "expires": time.monotonic() + CODE_LIFETIME_S,
            "scopes": asked if state.registration == "granular" else None,
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
            scopes = code["scopes"]
        elif grant == "refresh_token":
            subject = state.tokens.use_refresh(
                str(form.get("refresh_token", "")), consume=state.rotate_refresh
            )
            if subject is None:
                return web.json_response({"error": "invalid_grant"}, status=400)
            answer = state.tokens.issue(subject, with_refresh=state.rotate_refresh)
            user = subject
            scopes = state.refresh_scopes.get(str(form.get("refresh_token", "")))
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        state.token_scopes[answer["access_token"]] = scopes
        if "refresh_token" in answer:
            state.refresh_scopes[answer["refresh_token"]] = scopes
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
                start_x, issued_req_x, issued_ms_x = q["offset"].removeprefix("o").split("-")
                start = int(start_x, 16)
                issued_req, issued_ms = int(issued_req_x, 16), int(issued_ms_x, 16)
            except ValueError:
                return _error(400, "offset: Your pagination token is invalid")
            # The request counter counts this request too.
            others = state.faults.requests - issued_req - 1
            expired = (
                (state.truncate_after is not None and start >= state.truncate_after)
                or (
                    state.offset_ttl_s is not None
                    and time.time() * 1000 - issued_ms > state.offset_ttl_s * 1000
                )
                or (state.offset_ttl_requests is not None and others > state.offset_ttl_requests)
            )
            if expired:
                state.offsets_refused += 1
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
            offset = f"o{end:x}-{state.faults.requests:x}-{int(time.time() * 1000):x}"
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

    def refused(project: str) -> web.Response | None:
        """Asana's answer for a project that does not exist or may not be read."""
        if project not in state.projects:
            return _error(404, "project: Unknown object")
        if project in state.forbidden:
            return _error(403, "project: Forbidden")
        return None

    async def project(request: web.Request) -> web.Response:
        gid = request.match_info["gid"]
        if (refusal := refused(gid)) is not None:
            return refusal
        tree = _field_tree(request.query.get("opt_fields"))
        return web.json_response({"data": _select(state.project_record(gid), tree)})

    async def sections(request: web.Request) -> web.Response:
        project = request.match_info["gid"]
        if (refusal := refused(project)) is not None:
            return refusal
        chosen = [g for g, s in state.sections.items() if s["project"] == project]
        return listing(request, chosen, state.section_record)

    async def tasks(request: web.Request) -> web.Response:
        q = request.query
        if "project" in q:
            project = q["project"]
            if (refusal := refused(project)) is not None:
                return refusal
            chosen = state.project_listing(project)
            if "modified_since" in q:
                try:
                    since = parse_iso(q["modified_since"])
                except ValueError:
                    return _error(400, "modified_since: Not a date-time")
                chosen = [t for t in chosen if state.tasks[t]["modified"] >= since]
            return listing(request, chosen, state.task_record)
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
        if not state.readable_task(task):
            return _error(403, "task: Forbidden")
        return listing(request, list(state.children.get(task, {})), state.task_record)

    async def search(request: web.Request) -> web.Response:
        """Premium only; no paging (at most ``limit`` results, sorted): callers move
        ``modified_at.after`` forward instead, as with the real search API."""
        workspace = request.match_info["gid"]
        if workspace not in state.workspaces:
            return _error(404, "workspace: Unknown object")
        if workspace not in state.premium:
            return _error(402, "Search is only available to premium workspaces.")
        q = request.query
        if q.get("sort_by", "modified_at") != "modified_at":
            return _error(400, "sort_by: only modified_at is modelled")
        try:
            after = parse_iso(q["modified_at.after"]) if "modified_at.after" in q else 0.0
            limit = int(q.get("limit", "100"))
        except ValueError:
            return _error(400, "modified_at.after or limit: invalid")
        if not 1 <= limit <= 100:
            return _error(400, "limit: Must be between 1 and 100")
        visible_until = state.clock() - state.search_lag_s
        start = bisect.bisect_right(state.mod_log, (after, "~"))
        found: list[str] = []
        taken: set[str] = set()
        for when, gid in state.mod_log[start:]:
            if when > visible_until:
                break
            t = state.tasks.get(gid)
            if (
                t is None
                or t["modified"] != when
                or gid in taken
                or t["workspace"] != workspace
                or not state.readable_task(gid)
            ):
                continue
            taken.add(gid)
            found.append(gid)
            if len(found) >= limit and q.get("sort_ascending") == "true":
                break
        if q.get("sort_ascending", "false") != "true":
            found.reverse()
        tree = _field_tree(q.get("opt_fields"))
        return web.json_response(
            {"data": [_select(state.task_record(g), tree) for g in found[:limit]]}
        )

    app.router.add_get(f"{OAUTH}/oauth_authorize", authorize)
    app.router.add_post(f"{OAUTH}/oauth_token", token)
    app.router.add_get(f"{API}/users/me", users_me)
    app.router.add_get(f"{API}/workspaces", workspaces)
    app.router.add_get(f"{API}/users", users)
    app.router.add_get(f"{API}/projects", projects)
    app.router.add_get(f"{API}/projects/{{gid}}", project)
    app.router.add_get(f"{API}/projects/{{gid}}/sections", sections)
    app.router.add_get(f"{API}/workspaces/{{gid}}/tasks/search", search)
    app.router.add_get(f"{API}/tasks", tasks)
    app.router.add_get(f"{API}/sections/{{gid}}/tasks", section_tasks)
    app.router.add_get(f"{API}/tasks/{{gid}}/subtasks", subtasks)
    add_control_routes(app, state)
    return app


def _build(args: argparse.Namespace) -> tuple[web.Application, str, list[str]]:
    state = AsanaState()
    state.add_user("owner@example.com", "Owner")
    counts = state.generate(
        projects=args.projects,
        tasks=args.tasks,
        subtask_every=args.subtask_every,
        multi_home_every=args.multi_home_every,
        multi_home_subtask_every=args.multi_home_subtask_every,
        premium=args.premium,
    )
    notes = [
        f"OAuth base: <url>{OAUTH}",
        f"client_id={state.client_id} client_secret={state.client_secret}",
        f"data: {counts}",
    ]
    return create_app(state), API, notes


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--projects", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--subtask-every", type=int, default=0)
    parser.add_argument("--multi-home-every", type=int, default=0)
    parser.add_argument("--multi-home-subtask-every", type=int, default=0)
    parser.add_argument("--premium", action="store_true", help="workspaces have the search API")


if __name__ == "__main__":
    run_main("asana", _build, _configure)
