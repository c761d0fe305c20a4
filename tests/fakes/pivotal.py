"""Fake Pivotal Tracker API v5 (``/services/v5``).

Python control: :class:`PivotalState` (``add_user`` → API token, ``add_project``,
``add_member``, ``add_story``, ``rename_project``, ``rename_story``, ``set_story_state``,
``delete_story``, ``delete_project``, ``set_page_cap``, ``set_truncate_after``,
``generate`` …); the same over HTTP as ``POST /_control/<method>``.

Paging follows the real API: ``limit``/``offset`` in, ``X-Tracker-Pagination-Total/-Limit/
-Offset/-Returned`` out. ``page_cap`` makes the server return fewer stories than asked for,
as real servers may; ``set_churn`` adds or deletes a story at the front of a project right
after a page of it was served, so offsets shift under a reader (the total changes).
``updated_at`` is the time of the last change and ``updated_after`` filters by it;
``forbid`` answers a project's stories with 403 ``unauthorized_operation``.

``python -m tests.fakes.pivotal --port 8102 [--stories 5000]`` prints the API token to use.
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web

from .common import FakeState, add_control_routes, paged_window, run_main

API = "/services/v5"
STORY_STATES = (
    "unscheduled",
    "unstarted",
    "planned",
    "started",
    "finished",
    "delivered",
    "rejected",
    "accepted",
)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class PivotalState(FakeState):
    CONTROL_METHODS: ClassVar[frozenset[str]] = FakeState.CONTROL_METHODS | {
        "add_user",
        "add_project",
        "add_member",
        "add_story",
        "rename_project",
        "rename_story",
        "set_story_state",
        "delete_story",
        "delete_project",
        "set_page_cap",
        "set_truncate_after",
        "set_churn",
        "forbid",
    }

    def __init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1000)
        self._story_ids = itertools.count(100_000)
        self.tokens_to_users: dict[str, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.projects: dict[int, dict[str, Any]] = {}
        self.memberships: dict[int, dict[int, str]] = {}  # project → person → role
        self.stories: dict[int, dict[int, dict[str, Any]]] = {}  # project → story id → story
        self.story_project: dict[int, int] = {}
        self.page_cap = 500
        # Paging lies after this many stories: empty pages while the total says more follow.
        self.truncate_after: int | None = None
        # project → (kind, times left): what happens after each page of it is served.
        self.churn: dict[int, tuple[str, int]] = {}
        self.forbidden: set[int] = set()
        self.clock = time.time

    def add_user(self, email: str, name: str = "", token: str | None = None) -> str:
        user_id = next(self._ids)
        self.users[user_id] = {"id": user_id, "name": name or email, "email": email}
        api_token = token or secrets.token_hex(16)
        self.tokens_to_users[api_token] = self.users[user_id]
        return api_token

    def _user_id(self, email: str) -> int:
        for user in self.users.values():
            if user["email"].lower() == email.lower():
                return int(user["id"])
        raise KeyError(email)

    def add_project(self, name: str, member_emails: list[str] | None = None) -> int:
        """A project; its members default to every user known so far (as owners)."""
        project_id = next(self._ids)
        self.projects[project_id] = {"id": project_id, "name": name, "kind": "project"}
        self.stories[project_id] = {}
        self.memberships[project_id] = {}
        emails = (
            member_emails
            if member_emails is not None
            else [u["email"] for u in self.users.values()]
        )
        for email in emails:
            self.add_member(project_id, email)
        return project_id

    def add_member(self, project_id: int, email: str, role: str = "owner") -> None:
        if project_id not in self.projects:
            raise KeyError(project_id)
        self.memberships[project_id][self._user_id(email)] = role

    def add_story(
        self,
        project_id: int,
        name: str,
        state: str = "unstarted",
        story_type: str = "feature",
        at: float | None = None,
        front: bool = False,
    ) -> int:
        if state not in STORY_STATES:
            raise ValueError(state)
        story_id = next(self._story_ids)
        story = {
            "kind": "story",
            "id": story_id,
            "project_id": project_id,
            "name": name,
            "story_type": story_type,
            "current_state": state,
            "accepted_at": "2025-01-01T00:00:00Z" if state == "accepted" else None,
            "updated_at": _iso(self.clock() if at is None else at),
            "url": f"https://www.pivotaltracker.com/story/show/{story_id}",
            "labels": [],
        }
        if front:
            self.stories[project_id] = {story_id: story, **self.stories[project_id]}
        else:
            self.stories[project_id][story_id] = story
        self.story_project[story_id] = project_id
        return story_id

    def _story(self, story_id: int) -> dict[str, Any]:
        return self.stories[self.story_project[story_id]][story_id]

    def rename_project(self, project_id: int, name: str) -> None:
        self.projects[project_id]["name"] = name

    def rename_story(self, story_id: int, name: str) -> None:
        self._story(story_id)["name"] = name
        self._story(story_id)["updated_at"] = _iso(self.clock())

    def set_story_state(self, story_id: int, state: str) -> None:
        if state not in STORY_STATES:
            raise ValueError(state)
        self._story(story_id)["current_state"] = state
        self._story(story_id)["updated_at"] = _iso(self.clock())

    def set_churn(self, project_id: int, kind: str = "add", times: int = 1) -> None:
        """After each of the next ``times`` pages of this project: ``add`` a story at the
        front, or ``delete`` the first one (offsets shift; the total changes)."""
        if kind not in ("add", "delete"):
            raise ValueError(kind)
        self.churn[project_id] = (kind, times)

    def forbid(self, project_id: int, forbidden: bool = True) -> None:
        (self.forbidden.add if forbidden else self.forbidden.discard)(project_id)

    def _after_page(self, project_id: int) -> None:
        kind, times = self.churn.get(project_id, ("", 0))
        if times <= 0:
            return
        self.churn[project_id] = (kind, times - 1)
        if kind == "add":
            self.add_story(project_id, "Added while paging", front=True)
        elif self.stories[project_id]:
            self.delete_story(next(iter(self.stories[project_id])))

    def delete_story(self, story_id: int) -> None:
        del self.stories[self.story_project.pop(story_id)][story_id]

    def delete_project(self, project_id: int) -> None:
        del self.projects[project_id]
        for story_id in self.stories.pop(project_id):
            del self.story_project[story_id]
        del self.memberships[project_id]

    def set_page_cap(self, cap: int) -> None:
        self.page_cap = cap

    def set_truncate_after(self, stories: int | None) -> None:
        self.truncate_after = stories

    def generate(
        self, projects: int = 1, stories: int = 5_000, age_s: float = 86_400.0
    ) -> dict[str, int]:
        """``stories`` per project, cycling through every story state, last updated
        ``age_s`` ago."""
        at = self.clock() - age_s
        for p in range(projects):
            project_id = self.add_project(f"Project {p + 1}")
            for i in range(stories):
                self.add_story(
                    project_id, f"Story {i + 1}", STORY_STATES[i % len(STORY_STATES)], at=at
                )
        return {"projects": projects, "stories": projects * stories}


STATE_KEY: web.AppKey[PivotalState] = web.AppKey("pivotal_state", PivotalState)


def create_app(state: PivotalState | None = None) -> web.Application:
    state = state or PivotalState()
    app = web.Application(middlewares=[state.faults.middleware])
    app[STATE_KEY] = state

    def error(status: int, code: str, message: str) -> web.Response:
        return web.json_response({"code": code, "kind": "error", "error": message}, status=status)

    def user_of(request: web.Request) -> dict[str, Any] | None:
        return state.tokens_to_users.get(request.headers.get("X-TrackerToken", ""))

    def unauthenticated() -> web.Response:
        return error(
            403, "invalid_authentication", "Invalid authentication credentials were presented."
        )

    def visible(user: dict[str, Any], project_id: int) -> bool:
        return user["id"] in state.memberships.get(project_id, {})

    async def me(request: web.Request) -> web.Response:
        user = user_of(request)
        if user is None:
            return unauthenticated()
        projects = [
            {
                "project_id": pid,
                "project_name": p["name"],
                "role": state.memberships[pid][user["id"]],
            }
            for pid, p in state.projects.items()
            if visible(user, pid)
        ]
        return web.json_response({**user, "kind": "me", "projects": projects})

    async def projects(request: web.Request) -> web.Response:
        user = user_of(request)
        if user is None:
            return unauthenticated()
        return web.json_response([p for pid, p in state.projects.items() if visible(user, pid)])

    def project_of(request: web.Request) -> int | web.Response:
        user = user_of(request)
        if user is None:
            return unauthenticated()
        try:
            project_id = int(request.match_info["project_id"])
        except ValueError:
            return error(
                404, "unfound_resource", "The object you tried to access could not be found."
            )
        if project_id not in state.projects or not visible(user, project_id):
            return error(
                404, "unfound_resource", "The object you tried to access could not be found."
            )
        return project_id

    async def memberships(request: web.Request) -> web.Response:
        project_id = project_of(request)
        if isinstance(project_id, web.Response):
            return project_id
        return web.json_response(
            [
                {"kind": "project_membership", "role": role, "person": state.users[person_id]}
                for person_id, role in state.memberships[project_id].items()
            ]
        )

    async def stories(request: web.Request) -> web.Response:
        project_id = project_of(request)
        if isinstance(project_id, web.Response):
            return project_id
        try:
            limit = int(request.query.get("limit", "100"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return error(400, "invalid_parameter", "limit and offset must be integers")
        if limit < 1 or offset < 0:
            return error(400, "invalid_parameter", "limit must be positive, offset not negative")
        if project_id in state.forbidden:
            return error(403, "unauthorized_operation", "Authorization failure for this project.")
        limit = min(limit, state.page_cap)
        rows: Any = state.stories[project_id].values()
        if "updated_after" in request.query:
            try:
                after = _parse(request.query["updated_after"])
            except ValueError:
                return error(400, "invalid_parameter", "updated_after must be a date-time")
            rows = [r for r in rows if _parse(r["updated_at"]) > after]
        rows = list(rows)
        total = len(rows)
        start, end = paged_window(total, offset, limit)
        if state.truncate_after is not None and end > state.truncate_after:
            start = end = min(start, total)
        window = rows[start:end]
        headers = {
            "X-Tracker-Pagination-Total": str(total),
            "X-Tracker-Pagination-Limit": str(limit),
            "X-Tracker-Pagination-Offset": str(offset),
            "X-Tracker-Pagination-Returned": str(len(window)),
        }
        response = web.json_response(window, headers=headers)
        state._after_page(project_id)
        return response

    app.router.add_get(f"{API}/me", me)
    app.router.add_get(f"{API}/projects", projects)
    app.router.add_get(f"{API}/projects/{{project_id}}/memberships", memberships)
    app.router.add_get(f"{API}/projects/{{project_id}}/stories", stories)
    add_control_routes(app, state)
    return app


def _build(args: argparse.Namespace) -> tuple[web.Application, str, list[str]]:
    state = PivotalState()
    token = state.add_user("admin@example.com", "Admin", token=args.token)
    counts = state.generate(projects=args.projects, stories=args.stories)
    return create_app(state), API, [f"X-TrackerToken: {token}", f"data: {counts}"]


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--projects", type=int, default=1)
    parser.add_argument("--stories", type=int, default=100)
    parser.add_argument("--token", default="fake-pivotal-token")


if __name__ == "__main__":
    run_main("pivotal", _build, _configure)
