"""Fake HeySpace API (``/api``), shaped as described in ``server/integrations/heyspace.py``.

Python control: build a :class:`HeySpaceState`, call its methods (``add_user``,
``add_workspace``, ``add_space``, ``add_list``, ``add_card``, ``rename``, ``move_card``,
``complete_card``, ``archive``, ``delete_card``, ``purge``, ``expire_tokens``,
``generate`` …), serve ``create_app(state)``. The same methods are callable over HTTP as
``POST /_control/<method>`` (see ``tests.fakes.common``).

``python -m tests.fakes.heyspace --port 8101 [--cards 10000]`` serves one with a login
``admin@example.com`` / ``secret``.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any, ClassVar

from aiohttp import web

from .common import FakeState, add_control_routes, paged_window, run_main

API = "/api"
DEFAULT_EMAIL = "admin@example.com"
DEFAULT_PASSWORD = "secret"


def _new_id() -> str:
    return str(uuid.uuid4())


class HeySpaceState(FakeState):
    CONTROL_METHODS: ClassVar[frozenset[str]] = FakeState.CONTROL_METHODS | {
        "add_user",
        "add_workspace",
        "add_space",
        "add_list",
        "add_card",
        "rename",
        "move_card",
        "complete_card",
        "archive",
        "delete_card",
        "purge",
        "set_truncate_after",
        "set_max_limit",
        "forbid",
    }

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[str, dict[str, Any]] = {}
        self.orgs: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, dict[str, Any]] = {}
        # project id → {task id → task}: keeps a space's cards in a stable order for paging.
        self.tasks: dict[str, dict[str, dict[str, Any]]] = {}
        self.task_project: dict[str, str] = {}
        self.max_limit = 100
        # Paging lies after this many cards of a space: empty pages that claim more follow.
        self.truncate_after: int | None = None
        # Spaces listed but not readable (403 on their lists and cards).
        self.forbidden: set[str] = set()

    # -- control ---------------------------------------------------------------------------
    def add_user(self, email: str, password: str, name: str = "") -> str:
        user_id = _new_id()
        self.users[email.lower()] = {
            "id": user_id,
            "email": email,
            "password": password,
            "name": name or email,
        }
        return user_id

    def add_workspace(self, name: str, id: str | None = None) -> str:
        org_id = id or _new_id()
        self.orgs[org_id] = {"id": org_id, "name": name}
        return org_id

    def add_space(self, workspace_id: str, name: str, id: str | None = None) -> str:
        if workspace_id not in self.orgs:
            raise KeyError(workspace_id)
        project_id = id or _new_id()
        self.projects[project_id] = {
            "id": project_id,
            "name": name,
            "organizationId": workspace_id,
            "isArchived": False,
        }
        self.tasks[project_id] = {}
        return project_id

    def add_list(self, space_id: str, name: str, id: str | None = None) -> str:
        if space_id not in self.projects:
            raise KeyError(space_id)
        list_id = id or _new_id()
        self.lists[list_id] = {
            "id": list_id,
            "name": name,
            "projectId": space_id,
            "isArchived": False,
        }
        return list_id

    def add_card(self, list_id: str, name: str, id: str | None = None) -> str:
        project_id = self.lists[list_id]["projectId"]
        task_id = id or _new_id()
        self.tasks[project_id][task_id] = {
            "id": task_id,
            "name": name,
            "taskListId": list_id,
            "projectId": project_id,
            "isArchived": False,
            "isCompleted": False,
            "isDeleted": False,
        }
        self.task_project[task_id] = project_id
        return task_id

    def _card(self, card_id: str) -> dict[str, Any]:
        return self.tasks[self.task_project[card_id]][card_id]

    def _any(self, item_id: str) -> dict[str, Any]:
        for table in (self.orgs, self.projects, self.lists):
            if item_id in table:
                return table[item_id]
        return self._card(item_id)

    def rename(self, id: str, name: str) -> None:
        self._any(id)["name"] = name

    def move_card(self, card_id: str, list_id: str) -> None:
        card = self.tasks[self.task_project[card_id]].pop(card_id)
        project_id = self.lists[list_id]["projectId"]
        card.update(taskListId=list_id, projectId=project_id)
        self.tasks[project_id][card_id] = card
        self.task_project[card_id] = project_id

    def complete_card(self, card_id: str, completed: bool = True) -> None:
        self._card(card_id)["isCompleted"] = completed

    def archive(self, id: str, archived: bool = True) -> None:
        """Archive (or restore) a space, a list or a card."""
        self._any(id)["isArchived"] = archived

    def delete_card(self, card_id: str, deleted: bool = True) -> None:
        """Soft delete: the card stays listed with ``isDeleted`` (as HeySpace reports it)."""
        self._card(card_id)["isDeleted"] = deleted

    def purge(self, id: str) -> None:
        """Make any item vanish from the API, with everything under it."""
        if id in self.task_project:
            del self.tasks[self.task_project.pop(id)][id]
        elif id in self.lists:
            del self.lists[id]
        elif id in self.projects:
            del self.projects[id]
            for task_id in self.tasks.pop(id):
                del self.task_project[task_id]
            for list_id in [k for k, v in self.lists.items() if v["projectId"] == id]:
                del self.lists[list_id]
        else:
            del self.orgs[id]
            for project_id in [k for k, v in self.projects.items() if v["organizationId"] == id]:
                self.purge(project_id)

    def set_truncate_after(self, cards: int | None) -> None:
        self.truncate_after = cards

    def set_max_limit(self, limit: int) -> None:
        self.max_limit = limit

    def forbid(self, space_id: str, forbidden: bool = True) -> None:
        if space_id not in self.projects:
            raise KeyError(space_id)
        (self.forbidden.add if forbidden else self.forbidden.discard)(space_id)

    def generate(
        self,
        workspaces: int = 1,
        spaces: int = 10,
        lists_per_space: int = 4,
        cards: int = 10_000,
        completed_every: int = 0,
        archived_every: int = 0,
    ) -> dict[str, int]:
        """Build a large tree quickly: ``cards`` spread evenly over all lists."""
        list_ids: list[str] = []
        for w in range(workspaces):
            org_id = self.add_workspace(f"Workspace {w + 1}")
            for s in range(spaces):
                space_id = self.add_space(org_id, f"Space {w + 1}.{s + 1}")
                for n in range(lists_per_space):
                    list_ids.append(self.add_list(space_id, f"List {n + 1}"))
        for i in range(cards):
            card_id = self.add_card(list_ids[i % len(list_ids)], f"Card {i + 1}")
            card = self._card(card_id)
            if completed_every and i % completed_every == 0:
                card["isCompleted"] = True
            if archived_every and i % archived_every == 1:
                card["isArchived"] = True
        return {
            "workspaces": workspaces,
            "spaces": workspaces * spaces,
            "lists": len(list_ids),
            "cards": cards,
        }


def _wrap(response: dict[str, Any], code: int = 200) -> web.Response:
    return web.json_response({"code": code, "response": response}, status=code)


STATE_KEY: web.AppKey[HeySpaceState] = web.AppKey("heyspace_state", HeySpaceState)


def create_app(state: HeySpaceState | None = None) -> web.Application:
    state = state or HeySpaceState()
    app = web.Application(middlewares=[state.faults.middleware])
    app[STATE_KEY] = state

    def authorised(request: web.Request) -> str:
        subject = state.tokens.bearer_subject(request)
        if subject is None:
            raise web.HTTPUnauthorized(
                text='{"code": 401, "response": {"message": "Unauthorized"}}',
                content_type="application/json",
            )
        return subject

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("scope") != "heyspace":
            return web.json_response({"error": "invalid_scope"}, status=400)
        grant = form.get("grant_type")
        subject: str | None = None
        if grant == "password":
            user = state.users.get(str(form.get("username", "")).lower())
            if user is not None and user["password"] == form.get("password"):
                subject = user["email"]
        elif grant == "refresh_token":
            # Refresh tokens rotate: the used one is consumed.
            subject = state.tokens.use_refresh(str(form.get("refresh_token", "")), consume=True)
        else:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if subject is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response(state.tokens.issue(subject))

    async def organizations(request: web.Request) -> web.Response:
        authorised(request)
        return _wrap({"organizations": list(state.orgs.values())})

    async def projects(request: web.Request) -> web.Response:
        authorised(request)
        org_id = request.match_info["org_id"]
        if org_id not in state.orgs:
            return _wrap({"message": "Not found"}, 404)
        found = [p for p in state.projects.values() if p["organizationId"] == org_id]
        return _wrap({"projects": found})

    async def lists(request: web.Request) -> web.Response:
        authorised(request)
        project_id = request.match_info["project_id"]
        if project_id not in state.projects:
            return _wrap({"message": "Not found"}, 404)
        if project_id in state.forbidden:
            return _wrap({"message": "Forbidden"}, 403)
        found = [
            {"id": x["id"], "name": x["name"], "isArchived": x["isArchived"]}
            for x in state.lists.values()
            if x["projectId"] == project_id
        ]
        return _wrap({"lists": found})

    async def tasks(request: web.Request) -> web.Response:
        authorised(request)
        project_id = request.match_info["project_id"]
        if project_id not in state.projects:
            return _wrap({"message": "Not found"}, 404)
        if project_id in state.forbidden:
            return _wrap({"message": "Forbidden"}, 403)
        try:
            page = int(request.query.get("page", "1"))
            limit = min(int(request.query.get("limit", "50")), state.max_limit)
        except ValueError:
            return _wrap({"message": "page and limit must be integers"}, 400)
        if page < 1 or limit < 1:
            return _wrap({"message": "page and limit must be positive"}, 400)
        cards = state.tasks[project_id]
        total = len(cards)
        start, end = paged_window(total, (page - 1) * limit, limit)
        if state.truncate_after is not None and end > state.truncate_after:
            return _wrap({"tasks": [], "hasMore": True})
        window = list(cards.values())[start:end]
        return _wrap({"tasks": window, "hasMore": end < total})

    app.router.add_post(f"{API}/oauth/token", token)
    app.router.add_get(f"{API}/users/self/organizations", organizations)
    app.router.add_get(f"{API}/organizations/{{org_id}}/projects", projects)
    app.router.add_get(f"{API}/projects/{{project_id}}/lists", lists)
    app.router.add_get(f"{API}/projects/{{project_id}}/tasks", tasks)
    add_control_routes(app, state)
    return app


def _build(args: argparse.Namespace) -> tuple[web.Application, str, list[str]]:
    state = HeySpaceState()
    state.add_user(DEFAULT_EMAIL, DEFAULT_PASSWORD)
    counts = state.generate(cards=args.cards, spaces=args.spaces)
    return (
        create_app(state),
        API,
        [f"login: {DEFAULT_EMAIL} / {DEFAULT_PASSWORD}", f"data: {counts}"],
    )


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cards", type=int, default=100)
    parser.add_argument("--spaces", type=int, default=3)


if __name__ == "__main__":
    run_main("heyspace", _build, _configure)
