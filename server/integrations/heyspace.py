"""HeySpace (TimeCamp Planner) connector: workspace → space → list → card.

HeySpace's API reference is not public. Everything this module assumes about it is listed
here, in one place, so it can be corrected in one place when the real API disagrees:

* Base URL ``TT_HEYSPACE_API_URL`` (``https://app.hey.space/api``); every API answer is
  wrapped as ``{"code": ..., "response": {...}}``.
* ``POST /oauth/token`` (form) with ``grant_type=password, username, password,
  scope=heyspace`` or ``grant_type=refresh_token, refresh_token, scope=heyspace`` answers a
  plain RFC 6749 token (``access_token, refresh_token, expires_in``); a wrapped answer is
  accepted too. A wrong password is a 400 (``invalid_grant``) or a 401.
* API calls carry ``Authorization: Bearer <access_token>``; 401 means "refresh the token".
* ``GET /users/self/organizations`` → ``response.organizations[{id, name}]``
  (API organisation = UI workspace).
* ``GET /organizations/<id>/projects`` → ``response.projects[{id, name, organizationId,
  isArchived}]`` (API project = UI space).
* ``GET /projects/<id>/lists`` → ``response.lists[{id, name, isArchived?}]``.
* ``GET /projects/<id>/tasks?page=<1..>&limit=<n>`` → ``response.tasks[{id, name, taskListId,
  isArchived, isCompleted, isDeleted}]`` and ``response.hasMore`` (API task = UI card). This
  endpoint and its paging are our own guess, mirrored by ``tests/fakes/heyspace.py``.
* Card URL ``https://app.hey.space/projects/<projectId>/kanban?taskId=<taskId>``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from .base import (
    ChangeState,
    Credentials,
    CredentialsSaver,
    ProviderAuthError,
    ProviderError,
    Service,
    SnapshotNode,
    UpstreamState,
)
from .http import (
    BearerTokens,
    Params,
    ProviderHTTP,
    ProviderResponse,
    RequestMeter,
    expires_at_from,
    paginate,
    token_grant,
)

SCOPE = "heyspace"
CARD_PAGE_SIZE = 100
WEB_URL = "https://app.hey.space"


def card_url(project_id: str, task_id: str) -> str:
    return f"{WEB_URL}/projects/{project_id}/kanban?taskId={task_id}"


def _unwrap(data: Any, what: str) -> dict[str, Any]:
    """The ``response`` object of a wrapped answer (or the answer itself when unwrapped)."""
    if isinstance(data, dict):
        code = data.get("code")
        # The wrapper repeats the status; an error code inside a 2xx answer is still an error.
        if isinstance(code, int) and code >= 400:
            raise ProviderError(f"HeySpace {what}: error code {code}", status=code)
        inner = data.get("response", data)
        if isinstance(inner, dict):
            return inner
    raise ProviderError(f"HeySpace {what}: unexpected response shape")


def _items(data: Any, key: str, what: str) -> list[dict[str, Any]]:
    items = _unwrap(data, what).get(key)
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and i.get("id") is not None for i in items
    ):
        raise ProviderError(f"HeySpace {what}: '{key}' missing or malformed")
    return items


def _credentials_from(token_answer: Any, previous: Mapping[str, Any]) -> Credentials:
    token = _unwrap(token_answer, "token")
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderAuthError("HeySpace token answer carries no access token")
    creds: Credentials = {
        "access_token": access,
        "refresh_token": token.get("refresh_token") or previous.get("refresh_token"),
        "expires_at": expires_at_from(token),
    }
    if previous.get("email"):
        creds["email"] = previous["email"]
    return creds


def _token_url(base_url: str) -> str:
    return f"{base_url}/oauth/token"


async def heyspace_login(
    http: ProviderHTTP, base_url: str, email: str, password: str
) -> Credentials:
    """Exchange the admin's e-mail and password for tokens; the password is not kept."""
    base_url = base_url.rstrip("/")
    answer = await token_grant(
        http,
        _token_url(base_url),
        {"grant_type": "password", "username": email, "password": password, "scope": SCOPE},
        provider="HeySpace",
    )
    return _credentials_from(answer, {"email": email})


def _state(item: Mapping[str, Any]) -> UpstreamState:
    if item.get("isDeleted"):
        return "deleted"
    if item.get("isArchived"):
        return "archived"
    if item.get("isCompleted"):
        return "completed"
    return "active"


class HeySpaceConnector:
    service: Service = "heyspace"

    def __init__(
        self,
        http: ProviderHTTP,
        base_url: str,
        credentials: Credentials,
        saver: CredentialsSaver,
        *,
        meter: RequestMeter | None = None,
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._tokens = BearerTokens(credentials, self._refresh, saver, provider="HeySpace")
        self._meter = meter or RequestMeter()

    @property
    def requests(self) -> int:
        return self._meter.count

    @property
    def credentials(self) -> Credentials:
        return self._tokens.credentials

    async def _refresh(self, current: Credentials) -> Credentials:
        answer = await token_grant(
            self._http,
            _token_url(self._base),
            {
                "grant_type": "refresh_token",
                "refresh_token": str(current["refresh_token"]),
                "scope": SCOPE,
            },
            provider="HeySpace",
        )
        return _credentials_from(answer, current)

    async def _get(self, path: str, params: Params | None = None) -> ProviderResponse:
        url = f"{self._base}{path}"
        return await self._tokens.call(
            lambda auth: self._http.get(url, params=params, headers=auth, meter=self._meter)
        )

    async def changes(
        self, state: Mapping[str, Any] | None, *, budget: int
    ) -> tuple[list[SnapshotNode], ChangeState]:
        # Interim: the incremental check of this tool lands in the next commit.
        raise ProviderError("incremental check not implemented yet")

    async def snapshot(self) -> AsyncIterator[SnapshotNode]:
        orgs = _items((await self._get("/users/self/organizations")).data, "organizations", "orgs")
        for org in orgs:
            org_id = str(org["id"])
            yield SnapshotNode(
                external_id=org_id,
                parent_external_id=None,
                kind="workspace",
                name=str(org.get("name") or ""),
                workspace_id=org_id,
            )
            resp = await self._get(f"/organizations/{org_id}/projects")
            for project in _items(resp.data, "projects", "spaces"):
                async for node in self._space(org_id, project):
                    yield node

    async def _space(self, org_id: str, project: Mapping[str, Any]) -> AsyncIterator[SnapshotNode]:
        project_id = str(project["id"])
        yield SnapshotNode(
            external_id=project_id,
            parent_external_id=org_id,
            kind="space",
            name=str(project.get("name") or ""),
            state=_state(project),
            workspace_id=org_id,
        )
        list_ids: set[str] = set()
        resp = await self._get(f"/projects/{project_id}/lists")
        for lst in _items(resp.data, "lists", "lists"):
            list_id = str(lst["id"])
            list_ids.add(list_id)
            yield SnapshotNode(
                external_id=list_id,
                parent_external_id=project_id,
                kind="list",
                name=str(lst.get("name") or ""),
                state=_state(lst),
                workspace_id=org_id,
            )

        def next_page(page: ProviderResponse, params: Params) -> Params | None:
            body = _unwrap(page.data, "cards")
            if not body.get("hasMore"):
                return None
            if not body.get("tasks"):
                raise ProviderError("HeySpace cards: an empty page claims more pages follow")
            return {**params, "page": str(int(params["page"]) + 1)}

        pages = paginate(
            lambda p: self._get(f"/projects/{project_id}/tasks", p),
            {"page": "1", "limit": str(CARD_PAGE_SIZE)},
            next_page,
        )
        async for page in pages:
            for task in _items(page.data, "tasks", "cards"):
                task_id = str(task["id"])
                list_id = str(task.get("taskListId") or "")
                yield SnapshotNode(
                    external_id=task_id,
                    # A card whose list we did not see (none, or one removed meanwhile) still
                    # belongs to its space; hanging it there keeps parents-before-children.
                    parent_external_id=list_id if list_id in list_ids else project_id,
                    kind="card",
                    name=str(task.get("name") or ""),
                    state=_state(task),
                    workspace_id=org_id,
                    url=card_url(project_id, task_id),
                )
