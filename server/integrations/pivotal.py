"""Pivotal Tracker (API v5) connector: project → story state group → story.

Pivotal has no lists; the board's panels are story state groups, so each project gets four
synthetic list nodes (``<project_id>:icebox|backlog|current|done``) that stories hang under.
Stories are paged strictly by the ``X-Tracker-Pagination-*`` headers the server returns:
compatible servers may return fewer stories than asked, and a page that ends before the
announced total makes the snapshot incomplete rather than short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from .base import Credentials, ProviderAuthError, ProviderError, Service, SnapshotNode
from .http import Params, ProviderHTTP, ProviderResponse, paginate

STORY_PAGE_SIZE = 500
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


async def pivotal_verify(http: ProviderHTTP, base_url: str, api_token: str) -> Credentials:
    """Check an API token with ``GET /me``; a refused token raises ProviderAuthError."""
    resp = await http.get(f"{base_url.rstrip('/')}/me", headers=_auth(api_token))
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

    def __init__(self, http: ProviderHTTP, base_url: str, credentials: Credentials) -> None:
        token = credentials.get("api_token")
        if not isinstance(token, str) or not token:
            raise ProviderAuthError("Pivotal Tracker: no API token stored; reconnect")
        self._http = http
        self._base = base_url.rstrip("/")
        self._headers = _auth(token)

    async def _get(self, path: str, params: Params | None = None) -> ProviderResponse:
        return await self._http.get(f"{self._base}{path}", params=params, headers=self._headers)

    async def _member_emails(self, project_id: str) -> tuple[str, ...]:
        resp = await self._get(f"/projects/{project_id}/memberships")
        emails: list[str] = []
        for membership in _list_of_dicts(resp.data, "memberships"):
            person = membership.get("person")
            email = person.get("email") if isinstance(person, dict) else None
            if isinstance(email, str) and email.strip():
                emails.append(email.strip())
        return tuple(emails)

    async def snapshot(self) -> AsyncIterator[SnapshotNode]:
        projects = _list_of_dicts((await self._get("/projects")).data, "projects")
        for project in projects:
            if project.get("id") is None:
                raise ProviderError("Pivotal Tracker projects: a project without an id")
            project_id = str(project["id"])
            # Project and story ids are both plain numbers in Tracker; a prefix keeps them
            # apart in one id space (stories stay bare: pages and URLs show those).
            yield SnapshotNode(
                external_id=project_external_id(project_id),
                parent_external_id=None,
                kind="project",
                name=str(project.get("name") or ""),
                member_emails=await self._member_emails(project_id),
                url=f"{WEB_URL}/n/projects/{project_id}",
            )
            for key, name, _ in STATE_GROUPS:
                yield SnapshotNode(
                    external_id=f"{project_id}:{key}",
                    parent_external_id=project_external_id(project_id),
                    kind="list",
                    name=name,
                )
            async for node in self._stories(project_id):
                yield node

    async def _stories(self, project_id: str) -> AsyncIterator[SnapshotNode]:
        path = f"/projects/{project_id}/stories"
        pages = paginate(
            lambda params: self._get(path, params),
            {"limit": str(STORY_PAGE_SIZE), "offset": "0", "fields": STORY_FIELDS},
            _next_story_page,
        )
        async for page in pages:
            for story in _list_of_dicts(page.data, "stories"):
                if story.get("id") is None:
                    raise ProviderError("Pivotal Tracker stories: a story without an id")
                story_id = str(story["id"])
                state = str(story.get("current_state") or "")
                yield SnapshotNode(
                    external_id=story_id,
                    parent_external_id=list_external_id(project_id, state),
                    kind="story",
                    name=str(story.get("name") or ""),
                    state="completed" if state == "accepted" else "active",
                    url=story_url(story_id),
                )
