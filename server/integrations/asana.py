"""Asana connector: project → section → task → subtask, for the selected workspaces.

OAuth 2 authorization code with PKCE (S256). Authlib supplies the protocol pieces (grant
URI, token request body, S256 challenge, random tokens); the requests themselves go through
the shared ``ProviderHTTP`` client because Authlib has no aiohttp integration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

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

SCOPE = "workspaces:read projects:read tasks:read users:read"
PAGE_SIZE = 100  # Asana's maximum; a larger limit is a 400.
# Refresh this long before the access token's announced expiry, so a token never dies in the
# middle of a paged listing.
REFRESH_LEEWAY_S = 120.0
WEB_URL = "https://app.asana.com"

PROJECT_FIELDS = "name,archived,completed,permalink_url,members.email"
TASK_FIELDS = (
    "name,completed,parent.gid,num_subtasks,memberships.project.gid,memberships.section.gid"
)
SUBTASK_FIELDS = "name,completed,num_subtasks"


def task_url(project_gid: str, task_gid: str) -> str:
    return f"{WEB_URL}/0/{project_gid}/{task_gid}"


def new_code_verifier() -> str:
    """A PKCE code verifier: 64 characters from the unreserved set (RFC 7636 allows 43-128)."""
    return str(generate_token(64))


def new_state() -> str:
    return str(generate_token(32))


def asana_authorize_url(
    oauth_base: str,
    client_id: str,
    redirect_uri: str,
    state: str,
    code_verifier: str,
    *,
    scope: str = SCOPE,
) -> str:
    return str(
        prepare_grant_uri(
            f"{oauth_base.rstrip('/')}/oauth_authorize",
            client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=scope,
            state=state,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
    )


async def _token_request(http: ProviderHTTP, oauth_base: str, body: str) -> dict[str, Any]:
    token = await token_grant(http, f"{oauth_base.rstrip('/')}/oauth_token", body, provider="Asana")
    if not isinstance(token.get("access_token"), str):
        raise ProviderAuthError("Asana token answer carries no access token")
    return token


def _credentials_from(token: Mapping[str, Any], previous: Mapping[str, Any]) -> Credentials:
    user = token.get("data") if isinstance(token.get("data"), dict) else previous.get("user")
    creds: Credentials = {
        "access_token": token["access_token"],
        # Asana's refresh answer usually omits refresh_token: the old one stays valid.
        "refresh_token": token.get("refresh_token") or previous.get("refresh_token"),
        "expires_at": expires_at_from(token),
        "user": {
            "gid": str(user.get("gid") or ""),
            "name": user.get("name"),
            "email": user.get("email"),
        }
        if isinstance(user, Mapping)
        else None,
    }
    if previous.get("redirect_uri"):
        creds["redirect_uri"] = previous["redirect_uri"]
    return creds


async def asana_exchange_code(
    http: ProviderHTTP,
    oauth_base: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    code: str,
    code_verifier: str,
) -> Credentials:
    body = prepare_token_request(
        "authorization_code",
        redirect_uri=redirect_uri,
        code=code,
        client_id=client_id,
        client_secret=client_secret,
        code_verifier=code_verifier,
    )
    token = await _token_request(http, oauth_base, str(body))
    return _credentials_from(token, {"redirect_uri": redirect_uri})


def _data_list(resp: ProviderResponse, what: str) -> list[dict[str, Any]]:
    data = resp.data.get("data") if isinstance(resp.data, dict) else None
    if not isinstance(data, list) or not all(
        isinstance(i, dict) and isinstance(i.get("gid"), str) for i in data
    ):
        raise ProviderError(f"Asana {what}: expected data: [{{gid, ...}}]")
    return data


def _next_page(page: ProviderResponse, params: Params) -> Params | None:
    following = page.data.get("next_page") if isinstance(page.data, dict) else None
    if not following:
        return None
    offset = following.get("offset") if isinstance(following, dict) else None
    if not isinstance(offset, str) or not offset:
        raise ProviderError("Asana: next_page without an offset")
    return {**params, "offset": offset}


def _project_state(project: Mapping[str, Any]) -> UpstreamState:
    if project.get("archived"):
        return "archived"
    return "completed" if project.get("completed") else "active"


def _gid(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("gid"), str):
        return str(value["gid"])
    return None


class AsanaConnector:
    service: Service = "asana"

    def __init__(
        self,
        http: ProviderHTTP,
        api_base: str,
        oauth_base: str,
        client_id: str,
        client_secret: str,
        credentials: Credentials,
        saver: CredentialsSaver,
        selected_workspace_ids: set[str] | None = None,
        *,
        meter: RequestMeter | None = None,
    ) -> None:
        self._http = http
        self._meter = meter or RequestMeter()
        self._api = api_base.rstrip("/")
        self._oauth = oauth_base.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._selected = selected_workspace_ids
        self._tokens = BearerTokens(
            credentials, self._refresh, saver, provider="Asana", leeway=REFRESH_LEEWAY_S
        )

    @property
    def credentials(self) -> Credentials:
        return self._tokens.credentials

    @property
    def requests(self) -> int:
        return self._meter.count

    async def _refresh(self, current: Credentials) -> Credentials:
        body = prepare_token_request(
            "refresh_token",
            redirect_uri=current.get("redirect_uri"),
            refresh_token=current["refresh_token"],
            client_id=self._client_id,
            client_secret=self._client_secret,
        )
        token = await _token_request(self._http, self._oauth, str(body))
        return _credentials_from(token, current)

    async def _get(self, path: str, params: Params) -> ProviderResponse:
        url = f"{self._api}{path}"
        return await self._tokens.call(
            lambda auth: self._http.get(url, params=params, headers=auth, meter=self._meter)
        )

    async def _each(self, path: str, params: Params, what: str) -> AsyncIterator[dict[str, Any]]:
        pages = paginate(
            lambda p: self._get(path, p), {**params, "limit": str(PAGE_SIZE)}, _next_page
        )
        async for page in pages:
            for item in _data_list(page, what):
                yield item

    async def list_workspaces(self) -> list[dict[str, str]]:
        return [
            {"id": ws["gid"], "name": str(ws.get("name") or "")}
            async for ws in self._each("/workspaces", {"opt_fields": "name"}, "workspaces")
        ]

    async def list_users(self, workspace_ids: Iterable[str]) -> list[dict[str, str]]:
        """Users of the given workspaces with an e-mail address, once per address."""
        users: dict[str, dict[str, str]] = {}
        for workspace_id in workspace_ids:
            params = {"workspace": workspace_id, "opt_fields": "email,name"}
            async for user in self._each("/users", params, "users"):
                email = user.get("email")
                if isinstance(email, str) and email.strip():
                    key = email.strip().lower()
                    users.setdefault(
                        key, {"email": email.strip(), "name": str(user.get("name") or "")}
                    )
        return list(users.values())

    async def changes(
        self, state: Mapping[str, Any] | None, *, budget: int
    ) -> tuple[list[SnapshotNode], ChangeState]:
        # Interim: the incremental check of this tool lands in the next commit.
        raise ProviderError("incremental check not implemented yet")

    async def snapshot(self) -> AsyncIterator[SnapshotNode]:
        # A task can live in several projects (multi-homing) and a subtask can be in a
        # project too; the tree needs one place per item, so the first one seen wins.
        seen: set[str] = set()
        for workspace in await self.list_workspaces():
            workspace_id = workspace["id"]
            if self._selected is not None and workspace_id not in self._selected:
                continue
            for archived in ("false", "true"):
                params = {
                    "workspace": workspace_id,
                    "archived": archived,
                    "opt_fields": PROJECT_FIELDS,
                }
                async for project in self._each("/projects", params, "projects"):
                    async for node in self._project(workspace_id, project, seen):
                        yield node

    async def _project(
        self, workspace_id: str, project: Mapping[str, Any], seen: set[str]
    ) -> AsyncIterator[SnapshotNode]:
        project_id = str(project["gid"])
        members = project.get("members")
        emails = tuple(
            str(m["email"]).strip()
            for m in (members if isinstance(members, list) else [])
            if isinstance(m, dict) and isinstance(m.get("email"), str) and m["email"].strip()
        )
        yield SnapshotNode(
            external_id=project_id,
            parent_external_id=None,
            kind="project",
            name=str(project.get("name") or ""),
            state=_project_state(project),
            member_emails=emails,
            workspace_id=workspace_id,
            url=project.get("permalink_url") or f"{WEB_URL}/0/{project_id}/list",
        )
        sections: set[str] = set()
        path = f"/projects/{project_id}/sections"
        async for section in self._each(path, {"opt_fields": "name"}, "sections"):
            sections.add(section["gid"])
            yield SnapshotNode(
                external_id=section["gid"],
                parent_external_id=project_id,
                kind="section",
                name=str(section.get("name") or ""),
                workspace_id=workspace_id,
            )
        params = {"project": project_id, "opt_fields": TASK_FIELDS}
        async for task in self._each("/tasks", params, "tasks"):
            if task["gid"] in seen:
                continue
            seen.add(task["gid"])
            parent = project_id
            for membership in task.get("memberships") or ():
                if isinstance(membership, dict) and _gid(membership.get("project")) == project_id:
                    section_id = _gid(membership.get("section"))
                    if section_id in sections:
                        parent = str(section_id)
                    break
            async for node in self._task(workspace_id, project_id, parent, task, "task", seen):
                yield node

    async def _task(
        self,
        workspace_id: str,
        project_id: str,
        parent_id: str,
        task: Mapping[str, Any],
        kind: str,
        seen: set[str],
    ) -> AsyncIterator[SnapshotNode]:
        task_id = str(task["gid"])
        yield SnapshotNode(
            external_id=task_id,
            parent_external_id=parent_id,
            kind=kind,
            name=str(task.get("name") or ""),
            state="completed" if task.get("completed") else "active",
            workspace_id=workspace_id,
            url=task_url(project_id, task_id),
        )
        # num_subtasks spares one request per task for the (common) tasks without subtasks.
        if not task.get("num_subtasks"):
            return
        path = f"/tasks/{task_id}/subtasks"
        async for sub in self._each(path, {"opt_fields": SUBTASK_FIELDS}, "subtasks"):
            if sub["gid"] in seen:
                continue
            seen.add(sub["gid"])
            async for node in self._task(workspace_id, project_id, task_id, sub, "subtask", seen):
                yield node
