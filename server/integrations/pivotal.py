"""Pivotal Tracker (API v5) connector: project → story state group → story.

Pivotal has no lists; the board's panels are story state groups, so each project gets four
synthetic list nodes (``<project_id>:icebox|backlog|current|done``) that stories hang under.
Stories are paged strictly by the ``X-Tracker-Pagination-*`` headers the server returns:
compatible servers may return fewer stories than asked, and a page that ends before the
announced total makes the snapshot incomplete rather than short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

from .base import (
    ChangeState,
    Credentials,
    ProviderAuthError,
    ProviderError,
    ProviderForbidden,
    Service,
    SnapshotNode,
)
from .changes import EPOCH, advance, new_mark, pick_round, query_after, server_now
from .http import Params, ProviderHTTP, ProviderResponse, RequestMeter, paginate

STORY_PAGE_SIZE = 500
# A stories listing whose total changed while it was paged is read again, this often.
RELIST_ATTEMPTS = 3
# Incremental checks ask for stories updated this long before the last one seen: stories
# updated within the same second as that one are not missed.
OVERLAP_S = 2.0
STORY_FIELDS = "id,name,story_type,current_state,updated_at,url"
WEB_URL = "https://www.pivotaltracker.com"

# (list key, list name, the story states it holds), in board order.
STATE_GROUPS: tuple[tuple[str, str, frozenset[str]], ...] = (
    ("icebox", "Icebox", frozenset({"unscheduled"})),
    ("backlog", "Backlog", frozenset({"unstarted", "planned"})),
    ("current", "Current", frozenset({"started", "finished", "delivered", "rejected"})),
    ("done", "Done", frozenset({"accepted"})),
)
_GROUP_OF = {state: key for key, _, states in STATE_GROUPS for state in states}


def story_url(story_id: str) -> str:
    return f"{WEB_URL}/story/show/{story_id}"


def project_external_id(project_id: str) -> str:
    return f"project:{project_id}"


def list_external_id(project_id: str, state: str) -> str:
    """The synthetic list a story in ``state`` belongs to. Unknown states (a newer server)
    are shown in the backlog rather than dropped."""
    return f"{project_id}:{_GROUP_OF.get(state, 'backlog')}"


def _auth(api_token: str) -> dict[str, str]:
    return {"X-TrackerToken": api_token}


async def _tracker_get(
    http: ProviderHTTP,
    url: str,
    headers: Mapping[str, str],
    params: Params | None = None,
    meter: RequestMeter | None = None,
) -> ProviderResponse:
    """Tracker answers a refused token with 403 ``invalid_authentication`` (not 401): that
    one is an auth failure; any other 403 forbids one object only (a project)."""
    try:
        return await http.get(url, params=params, headers=headers, meter=meter)
    except ProviderForbidden as exc:
        if exc.provider_code == "invalid_authentication":
            raise ProviderAuthError(
                "Pivotal Tracker refused the API token (403 invalid_authentication)",
                status=403,
                provider_code=exc.provider_code,
            ) from None
        raise


async def pivotal_verify(http: ProviderHTTP, base_url: str, api_token: str) -> Credentials:
    """Check an API token with ``GET /me``; a refused token raises ProviderAuthError."""
    resp = await _tracker_get(http, f"{base_url.rstrip('/')}/me", _auth(api_token))
    me = resp.data
    if not isinstance(me, dict) or me.get("id") is None:
        raise ProviderError("Pivotal Tracker /me: unexpected response shape")
    return {
        "api_token": api_token,
        "user": {"id": str(me["id"]), "name": me.get("name"), "email": me.get("email")},
    }


def _list_of_dicts(data: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
        raise ProviderError(f"Pivotal Tracker {what}: expected a JSON array of objects")
    return data


def _header_int(headers: Mapping[str, str], name: str) -> int:
    value = headers.get(f"X-Tracker-Pagination-{name}")
    try:
        return int(value or "")
    except ValueError:
        raise ProviderError(
            f"Pivotal Tracker stories: missing or invalid X-Tracker-Pagination-{name} header"
        ) from None


def _next_story_page(page: ProviderResponse, params: Params) -> Params | None:
    total = _header_int(page.headers, "Total")
    offset = _header_int(page.headers, "Offset")
    returned = _header_int(page.headers, "Returned")
    if returned != len(_list_of_dicts(page.data, "stories")):
        raise ProviderError("Pivotal Tracker stories: page size differs from its headers")
    following = offset + returned
    if following >= total:
        return None
    if returned == 0:
        raise ProviderError(
            f"Pivotal Tracker stories: pagination ended at {offset} of {total} stories"
        )
    return {**params, "offset": str(following)}


class PivotalConnector:
    service: Service = "pivotaltracker"

    def __init__(
        self,
        http: ProviderHTTP,
        base_url: str,
        credentials: Credentials,
        *,
        meter: RequestMeter | None = None,
    ) -> None:
        token = credentials.get("api_token")
        if not isinstance(token, str) or not token:
            raise ProviderAuthError("Pivotal Tracker: no API token stored; reconnect")
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = _auth(token)
        self._meter = meter or RequestMeter()

    @property
    def requests(self) -> int:
        return self._meter.count

    async def _get(self, path: str, params: Params | None = None) -> ProviderResponse:
        return await _tracker_get(
            self._http, f"{self._base}{path}", self._headers, params, self._meter
        )

    async def _member_emails(self, project_id: str) -> tuple[str, ...]:
        resp = await self._get(f"/projects/{project_id}/memberships")
        emails: list[str] = []
        for membership in _list_of_dicts(resp.data, "memberships"):
            person = membership.get("person")
            email = person.get("email") if isinstance(person, dict) else None
            if isinstance(email, str) and email.strip():
                emails.append(email.strip())
        return tuple(emails)

    async def _projects(self) -> tuple[list[dict[str, Any]], ProviderResponse]:
        resp = await self._get("/projects")
        projects = _list_of_dicts(resp.data, "projects")
        for project in projects:
            if project.get("id") is None:
                raise ProviderError("Pivotal Tracker projects: a project without an id")
        return projects, resp

    async def _project_nodes(self, project: Mapping[str, Any]) -> list[SnapshotNode]:
        project_id = str(project["id"])
        # Project and story ids are both plain numbers in Tracker; a prefix keeps them
        # apart in one id space (stories stay bare: pages and URLs show those).
        nodes = [
            SnapshotNode(
                external_id=project_external_id(project_id),
                parent_external_id=None,
                kind="project",
                name=str(project.get("name") or ""),
                member_emails=await self._member_emails(project_id),
                url=f"{WEB_URL}/n/projects/{project_id}",
            )
        ]
        nodes.extend(
            SnapshotNode(
                external_id=f"{project_id}:{key}",
                parent_external_id=project_external_id(project_id),
                kind="list",
                name=name,
            )
            for key, name, _ in STATE_GROUPS
        )
        return nodes

    async def snapshot(self) -> AsyncIterator[SnapshotNode]:
        """Projects, each with its four lists and its stories. A project whose stories
        are refused (403 other than a refused token) is yielded ``partial``: the sync
        keeps what it has of it and completes the rest."""
        projects, _ = await self._projects()
        for project in projects:
            nodes = await self._project_nodes(project)
            try:
                stories = await self._stories(str(project["id"]))
            except ProviderForbidden:
                yield replace(nodes[0], partial=True)
                continue
            for node in nodes:
                yield node
            for story in stories:
                yield _story_node(str(project["id"]), story)

    async def _stories(self, project_id: str, **filters: str) -> list[dict[str, Any]]:
        """Every story of a project (or those matching ``filters``), read page by page as
        the returned headers say. Offsets shift when stories are added or removed while we
        page: a total that changed between pages means the listing is read again from
        the start, so no story is skipped or repeated."""
        path = f"/projects/{project_id}/stories"
        first = {"limit": str(STORY_PAGE_SIZE), "offset": "0", "fields": STORY_FIELDS, **filters}
        for _ in range(RELIST_ATTEMPTS):
            stories: list[dict[str, Any]] = []
            total: int | None = None
            moved = False
            pages = paginate(lambda params: self._get(path, params), first, _next_story_page)
            async for page in pages:
                page_total = _header_int(page.headers, "Total")
                if total is not None and page_total != total:
                    moved = True
                    break
                total = page_total
                for story in _list_of_dicts(page.data, "stories"):
                    if story.get("id") is None:
                        raise ProviderError("Pivotal Tracker stories: a story without an id")
                    stories.append(story)
            if not moved:
                return stories
        raise ProviderError(
            f"Pivotal Tracker stories of project {project_id}: the listing kept changing "
            f"while it was read ({RELIST_ATTEMPTS} attempts)"
        )

    async def changes(
        self, state: Mapping[str, Any] | None, *, budget: int
    ) -> tuple[list[SnapshotNode], ChangeState]:
        """Stories changed since the last check: one ``updated_after`` request per project,
        the most recently active projects first and the others in rotation, as many
        projects as ``budget`` allows after the one ``/projects`` request that also finds
        new projects. A listing once started is read to its end (the pages of items that
        really changed), so a check with changes may spend a few requests more."""
        start = self.requests

        def left() -> int:
            return budget - (self.requests - start)

        projects, resp = await self._projects()
        now = server_now(resp.headers)
        known: dict[str, Any] = dict((state or {}).get("projects") or {})
        if state is None:
            return [], {
                "projects": {str(p["id"]): new_mark(now) for p in projects},
                "cursor": 0,
            }
        nodes: list[SnapshotNode] = []
        current = [str(p["id"]) for p in projects]
        for project in projects:
            project_id = str(project["id"])
            if project_id not in known:
                # A new project: its nodes now, its stories through the normal path below.
                if left() <= 0:
                    continue
                nodes.extend(await self._project_nodes(project))
                known[project_id] = new_mark(EPOCH)
        known = {pid: known[pid] for pid in current if pid in known}
        ids = list(known)
        activity = {pid: str(mark["at"]) for pid, mark in known.items()}
        chosen, cursor, _ = pick_round(ids, activity, int(state.get("cursor") or 0), left())
        for project_id in chosen:
            if left() <= 0:
                break
            mark = known[project_id]
            try:
                stories = await self._stories(
                    project_id, updated_after=query_after(mark, OVERLAP_S)
                )
            except ProviderForbidden:
                continue  # unreadable now: the full sync marks the project partial
            pairs = [(str(s["id"]), str(s.get("updated_at") or now)) for s in stories]
            fresh, known[project_id] = advance(mark, pairs, OVERLAP_S)
            # Accepted stories are left to the full reconcile (acceptance removes them).
            nodes.extend(
                _story_node(project_id, s)
                for s in stories
                if str(s["id"]) in fresh and s.get("current_state") != "accepted"
            )
        return nodes, {"projects": known, "cursor": cursor}


def _story_node(project_id: str, story: Mapping[str, Any]) -> SnapshotNode:
    story_id = str(story["id"])
    state = str(story.get("current_state") or "")
    return SnapshotNode(
        external_id=story_id,
        parent_external_id=list_external_id(project_id, state),
        kind="story",
        name=str(story.get("name") or ""),
        state="completed" if state == "accepted" else "active",
        url=story_url(story_id),
    )
