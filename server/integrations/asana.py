"""Asana connector: project → section → task → subtask, for the selected workspaces.

OAuth 2 authorization code with PKCE (S256). Authlib supplies the protocol pieces (grant
URI, token request body, S256 challenge, random tokens); the requests themselves go through
the shared ``ProviderHTTP`` client because Authlib has no aiohttp integration.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .base import (
    ChangeState,
    Credentials,
    CredentialsSaver,
    ProviderAuthError,
    ProviderError,
    ProviderForbidden,
    Service,
    SnapshotNode,
    UpstreamState,
)
from .changes import EPOCH, advance, new_mark, pick_round, query_after, server_now
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

T = TypeVar("T")

# What an app registered with granular scopes needs (task memberships need the two
# project scopes); TT_ASANA_SCOPES says what is actually sent.
GRANULAR_SCOPES = "workspaces:read projects:read project_sections:read tasks:read users:read"
PAGE_SIZE = 100  # Asana's maximum; a larger limit is a 400.
# Refresh this long before the access token's announced expiry, so a token never dies in the
# middle of a paged listing.
REFRESH_LEEWAY_S = 120.0
WEB_URL = "https://app.asana.com"

# Listings restart at most this often when Asana refuses an expired page offset.
OFFSET_RESTARTS = 3
# Fields kept to what the tree needs (each one costs Asana time and us bytes).
PROJECT_FIELDS = "name,archived,completed,permalink_url,members.email,modified_at"
TASK_FIELDS = (
    "name,completed,parent.gid,num_subtasks,memberships.project.gid,"
    "memberships.section.gid,memberships.section.name"
)
SUBTASK_FIELDS = "name,completed,num_subtasks"
CHANGE_FIELDS = f"{TASK_FIELDS},modified_at"
# The search index lags writes by up to about a minute: search again that far back.
SEARCH_OVERLAP_S = 60.0
# modified_since is exact; a little overlap catches writes in the same instant.
MODIFIED_OVERLAP_S = 2.0
# Changed tasks whose subtasks are still to be read, carried to the next check.
MAX_PENDING = 500


def task_url(project_gid: str, task_gid: str) -> str:
    """A task's page; ``0`` as the project opens a task in no particular project (used
    for subtasks, whose project a check may not know: the same URL from every path)."""
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
    scope: str = "",
) -> str:
    """The authorize page URL. ``scope`` empty sends none (an app registered with full
    permissions is refused with ``forbidden_scopes`` if it asks for any); an app with
    granular scopes must send them, space separated."""
    return str(
        prepare_grant_uri(
            f"{oauth_base.rstrip('/')}/oauth_authorize",
            client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(scope.split()) or None,
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


class _OffsetRefused(ProviderError):
    """Asana refused a page offset (expired): the listing must start again."""


class _NotFound(ProviderError):
    pass


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
        try:
            return await self._tokens.call(
                lambda auth: self._http.get(url, params=params, headers=auth, meter=self._meter)
            )
        except ProviderForbidden:
            raise
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            if exc.status == 400 and "offset" in params:
                raise _OffsetRefused(str(exc), status=400) from None
            if exc.status == 404:
                raise _NotFound(str(exc), status=404) from None
            raise

    async def _each(self, path: str, params: Params, what: str) -> AsyncIterator[dict[str, Any]]:
        pages = paginate(
            lambda p: self._get(path, p), {**params, "limit": str(PAGE_SIZE)}, _next_page
        )
        async for page in pages:
            for item in _data_list(page, what):
                yield item

    async def list_workspaces(self) -> list[dict[str, str]]:
        found = await self._all("/workspaces", {"opt_fields": "name"}, "workspaces")
        return [{"id": ws["gid"], "name": str(ws.get("name") or "")} for ws in found]

    async def list_users(self, workspace_ids: Iterable[str]) -> list[dict[str, str]]:
        """Users of the given workspaces with an e-mail address, once per address."""
        users: dict[str, dict[str, str]] = {}
        for workspace_id in workspace_ids:
            params = {"workspace": workspace_id, "opt_fields": "email,name"}
            for user in await self._all("/users", params, "users"):
                email = user.get("email")
                if isinstance(email, str) and email.strip():
                    key = email.strip().lower()
                    users.setdefault(
                        key, {"email": email.strip(), "name": str(user.get("name") or "")}
                    )
        return list(users.values())

    async def _all(self, path: str, params: Params, what: str) -> list[dict[str, Any]]:
        """A whole listing, every page read before the caller descends into it: Asana's
        page offsets expire, so none is held open across nested requests. An offset
        refused meanwhile (400; e.g. after long 429 pauses) restarts the listing."""
        return await self._all_kept(path, params, what, lambda item: item)

    async def _all_kept(
        self, path: str, params: Params, what: str, keep: Callable[[dict[str, Any]], T]
    ) -> list[T]:
        """``_all`` keeping only ``keep(item)`` of each item while the pages arrive (a
        project's whole task listing is held at once: kept small)."""
        for attempt in range(1, OFFSET_RESTARTS + 2):
            items: list[T] = []
            try:
                async for item in self._each(path, params, what):
                    items.append(keep(item))
            except _OffsetRefused:
                if attempt > OFFSET_RESTARTS:
                    raise
                continue
            return items
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def snapshot(self) -> AsyncIterator[SnapshotNode]:
        """Workspaces → projects (all their pages first) → per project its tasks (all
        pages), the sections they are in, then each task's subtasks (read only where
        ``num_subtasks`` > 0, each listing complete before descending further).

        One place per item: a task in several projects is filed under the first; a
        subtask also added to a project (listed there with a ``parent``) is filed under
        its parent task — or, if that parent is nowhere readable, in that project.

        A 403 on one project (or one task's subtasks) does not stop the sync. DECISION:
        the node is yielded with ``partial=True`` and the sync keeps its stored subtree as
        it is while completing the rest; what could not be read is never archived.
        Empty sections are not imported: sections come from the tasks' memberships (one
        ``/sections`` request per project saved)."""
        placed: set[int | str] = set()
        for workspace in await self.list_workspaces():
            workspace_id = workspace["id"]
            if self._selected is not None and workspace_id not in self._selected:
                continue
            projects: list[dict[str, Any]] = []
            for archived in ("false", "true"):
                params = {
                    "workspace": workspace_id,
                    "archived": archived,
                    "opt_fields": PROJECT_FIELDS,
                }
                projects.extend(await self._all("/projects", params, "projects"))
            # Multi-homed subtasks waiting for their parent: gid -> (project, home, task).
            deferred: dict[str, tuple[str, str, dict[str, Any]]] = {}
            for project in projects:
                async for node in self._project(workspace_id, project, placed, deferred):
                    yield node
            for gid, (project_id, home, task) in deferred.items():
                if _key(gid) in placed:
                    continue
                placed.add(_key(gid))
                async for node in self._task_tree(
                    workspace_id, project_id, home, task, "subtask", placed
                ):
                    yield node

    async def _project(
        self,
        workspace_id: str,
        project: Mapping[str, Any],
        placed: set[int | str],
        deferred: dict[str, tuple[str, str, dict[str, Any]]],
    ) -> AsyncIterator[SnapshotNode]:
        project_id = str(project["gid"])
        node = _project_node(workspace_id, project)
        params = {"project": project_id, "opt_fields": TASK_FIELDS}

        def keep(task: dict[str, Any]) -> tuple[dict[str, Any], str | None, tuple[str, str] | None]:
            return _compact(task), _gid(task.get("parent")), _section_in(task, project_id)

        try:
            tasks = await self._all_kept("/tasks", params, "tasks", keep)
        except ProviderForbidden:
            yield replace(node, partial=True)
            return
        yield node
        sections: dict[str, str] = {}
        rows: list[tuple[dict[str, Any], str]] = []
        for task, parent, section in tasks:
            gid = task["gid"]
            if _key(gid) in placed:
                continue  # multi-homed: filed under an earlier project
            if section is not None:
                sections.setdefault(section[0], section[1])
            home = section[0] if section is not None else project_id
            if parent is not None:
                deferred.setdefault(gid, (project_id, home, task))
                continue
            rows.append((task, home))
        del tasks
        for section_id, name in sections.items():
            yield _section_node(workspace_id, project_id, section_id, name)
        for task, home in rows:
            placed.add(_key(task["gid"]))
            async for sub in self._task_tree(workspace_id, project_id, home, task, "task", placed):
                yield sub

    async def _task_tree(
        self,
        workspace_id: str,
        project_id: str,
        parent_id: str,
        task: Mapping[str, Any],
        kind: str,
        placed: set[int | str],
    ) -> AsyncIterator[SnapshotNode]:
        task_id = str(task["gid"])
        subs: list[dict[str, Any]] = []
        partial = False
        # num_subtasks spares one request per task for the (common) tasks without subtasks.
        if task.get("num_subtasks"):
            path = f"/tasks/{task_id}/subtasks"
            try:
                subs = await self._all_kept(
                    path, {"opt_fields": SUBTASK_FIELDS}, "subtasks", _compact
                )
            except ProviderForbidden:
                partial = True
        yield _task_node(workspace_id, project_id, parent_id, task, kind, partial=partial)
        for sub in subs:
            if _key(sub["gid"]) in placed:
                continue
            placed.add(_key(sub["gid"]))
            async for node in self._task_tree(
                workspace_id, project_id, task_id, sub, "subtask", placed
            ):
                yield node

    # -- incremental checks ----------------------------------------------------------------

    async def changes(
        self, state: Mapping[str, Any] | None, *, budget: int
    ) -> tuple[list[SnapshotNode], ChangeState]:
        """New and changed active items since the last check (see ``Connector.changes``).

        Premium workspaces: the search API, ``modified_at.after`` the newest modification
        seen minus a minute (its index lags writes), one request per workspace when nothing
        changed. Others answer the search with 402; there each check asks
        ``GET /tasks?project=&modified_since=`` of as many projects as the budget allows,
        half the most recently active ones and half in rotation through all of them, and
        re-reads the project list once per rotation to find new projects.

        Why ``modified_since`` and not ``/events`` sync tokens: an events token must first
        be obtained per project (one request each, 200 for 200 projects, more than the
        baseline may cost), it expires after 24 hours (a rotation may take longer than that
        on a small budget) and it reports deletions we must not act on anyway;
        ``modified_since`` needs nothing per project but a timestamp of Asana's clock.
        Assumption (Asana documents no more): adding a subtask changes its parent's
        ``modified_at``; changed tasks with subtasks get their subtasks read.
        Completed or archived items are left to the full reconcile, which alone
        archives."""
        check = _Check(self, budget)
        if state is None:
            return [], await check.baseline()
        return await check.run(state)


class _Check:
    """One incremental check of one Asana connector."""

    def __init__(self, connector: AsanaConnector, budget: int) -> None:
        self.c = connector
        self.budget = budget
        self.start = connector.requests
        self.nodes: dict[str, SnapshotNode] = {}

    def spent(self) -> int:
        return self.c.requests - self.start

    def left(self) -> int:
        return self.budget - self.spent()

    def workspaces_of(self, found: list[dict[str, str]]) -> list[str]:
        selected = self.c._selected
        return [w["id"] for w in found if selected is None or w["id"] in selected]

    async def probe(self, workspace_id: str) -> tuple[bool, str]:
        """Whether the workspace has the search API, and Asana's clock now."""
        try:
            resp = await self.c._get(
                f"/workspaces/{workspace_id}/tasks/search",
                {"sort_by": "modified_at", "limit": "1", "opt_fields": "modified_at"},
            )
        except ProviderError as exc:
            if exc.status == 402:
                return False, await self.clock()
            raise
        return True, server_now(resp.headers)

    async def clock(self) -> str:
        resp = await self.c._get("/users/me", {"opt_fields": "name"})
        return server_now(resp.headers)

    async def project_list(self, workspace_id: str) -> list[dict[str, Any]]:
        params = {"workspace": workspace_id, "archived": "false", "opt_fields": PROJECT_FIELDS}
        return await self.c._all("/projects", params, "projects")

    async def baseline(self) -> ChangeState:
        workspaces: dict[str, Any] = {}
        projects: dict[str, Any] = {}
        for workspace_id in self.workspaces_of(await self.c.list_workspaces()):
            premium, now = await self.probe(workspace_id)
            workspaces[workspace_id] = {"premium": premium, "mark": new_mark(now)}
            for project in await self.project_list(workspace_id):
                projects[project["gid"]] = {
                    "ws": workspace_id,
                    "mark": new_mark(now),
                    "active": str(project.get("modified_at") or EPOCH),
                }
        return {
            "workspaces": workspaces,
            "projects": projects,
            "cursor": 0,
            "relist": False,
            "pending": [],
        }

    async def run(self, state: Mapping[str, Any]) -> tuple[list[SnapshotNode], ChangeState]:
        state = copy.deepcopy(dict(state))  # the caller's state is left as it was
        workspaces: dict[str, Any] = dict(state.get("workspaces") or {})
        self.projects: dict[str, Any] = dict(state.get("projects") or {})
        # [task gid, workspace gid] of changed tasks whose subtasks are still to be read.
        pending: list[list[str]] = [list(p) for p in state.get("pending") or []]
        selected = self.c._selected
        for workspace_id in list(workspaces):
            if selected is not None and workspace_id not in selected:
                del workspaces[workspace_id]
        if selected is not None:
            for workspace_id in sorted(selected - set(workspaces)):
                # Newly selected: the full sync imports it; checks start from now.
                try:
                    premium, now = await self.probe(workspace_id)
                except _NotFound:
                    continue  # selected once, gone since
                workspaces[workspace_id] = {"premium": premium, "mark": new_mark(now)}
                for project in await self.project_list(workspace_id):
                    self.projects[project["gid"]] = {
                        "ws": workspace_id,
                        "mark": new_mark(now),
                        "active": str(project.get("modified_at") or EPOCH),
                    }
        self.projects = {g: p for g, p in self.projects.items() if p["ws"] in workspaces}
        for workspace_id, ws in workspaces.items():
            if ws["premium"] and self.left() > 0:
                workspaces[workspace_id] = await self.search(workspace_id, ws)
        cursor = int(state.get("cursor") or 0)
        relist = bool(state.get("relist", True))
        plain = [w for w, ws in workspaces.items() if not ws["premium"]]
        if plain:
            cursor, relist = await self.rotate(plain, cursor, relist, pending)
        while pending and self.left() > 0:
            await self.subtasks_of(*pending.pop(0))
        return _ordered(self.nodes), {
            "workspaces": workspaces,
            "projects": self.projects,
            "cursor": cursor,
            "relist": relist,
            "pending": pending[:MAX_PENDING],
        }

    async def search(self, workspace_id: str, ws: Mapping[str, Any]) -> dict[str, Any]:
        mark: dict[str, Any] = dict(ws["mark"])
        after = query_after(mark, SEARCH_OVERLAP_S)
        while True:
            params = {
                "modified_at.after": after,
                "sort_by": "modified_at",
                "sort_ascending": "true",
                "limit": str(PAGE_SIZE),
                "opt_fields": CHANGE_FIELDS,
            }
            try:
                resp = await self.c._get(f"/workspaces/{workspace_id}/tasks/search", params)
            except ProviderForbidden:
                return dict(ws)  # not readable now: try again next time, from the same mark
            except ProviderError as exc:
                if exc.status != 402:
                    raise
                # No longer premium: per-project checks from the same mark on.
                for project in self.projects.values():
                    if project["ws"] == workspace_id:
                        project["mark"] = dict(mark)
                return {"premium": False, "mark": mark}
            found = _data_list(resp, "search")
            pairs = [(t["gid"], str(t.get("modified_at") or EPOCH)) for t in found]
            fresh, mark = advance(mark, pairs, SEARCH_OVERLAP_S)
            for task in found:
                if task["gid"] in fresh:
                    await self.add_task(workspace_id, task, None)
            # The search has no pages: a full answer continues after its last item.
            if len(found) < PAGE_SIZE or self.left() <= 0:
                return {"premium": True, "mark": mark}
            after = pairs[-1][1]

    async def rotate(
        self, plain: list[str], cursor: int, relist: bool, pending: list[list[str]]
    ) -> tuple[int, bool]:
        if relist:
            # Once per rotation: new projects (a project's modified_at does not change
            # when tasks are added, so only the list tells).
            for workspace_id in plain:
                if self.left() <= 0:
                    break
                listed = await self.project_list(workspace_id)
                gone = {g for g, p in self.projects.items() if p["ws"] == workspace_id}
                for project in listed:
                    gone.discard(project["gid"])
                    if project["gid"] not in self.projects:
                        self.add_project(workspace_id, project)
                for gid in gone:
                    del self.projects[gid]
        ids = [g for g, p in self.projects.items() if p["ws"] in plain]
        activity = {
            g: max(str(p["mark"]["at"]), str(p.get("active") or EPOCH))
            for g, p in self.projects.items()
        }
        chosen, cursor, wrapped = pick_round(ids, activity, cursor, self.left())
        for gid in chosen:
            if self.left() <= 0:
                break
            project = self.projects[gid]
            params = {
                "project": gid,
                "modified_since": query_after(project["mark"], MODIFIED_OVERLAP_S),
                "opt_fields": CHANGE_FIELDS,
            }
            try:
                found = await self.c._all("/tasks", params, "tasks")
            except ProviderForbidden:
                continue  # unreadable now; the full sync marks it partial
            pairs = [(t["gid"], str(t.get("modified_at") or EPOCH)) for t in found]
            fresh, project["mark"] = advance(project["mark"], pairs, MODIFIED_OVERLAP_S)
            for task in found:
                if task["gid"] in fresh:
                    await self.add_task(project["ws"], task, gid)
                    entry = [task["gid"], project["ws"]]
                    if task.get("num_subtasks") and entry not in pending:
                        pending.append(entry)
        return cursor, wrapped

    def add_project(self, workspace_id: str, project: Mapping[str, Any]) -> None:
        node = _project_node(workspace_id, project)
        self.projects[str(project["gid"])] = {
            "ws": workspace_id,
            "mark": new_mark(EPOCH),
            "active": str(project.get("modified_at") or EPOCH),
        }
        if node.state == "active":
            self.nodes[node.external_id] = node

    async def add_task(
        self, workspace_id: str, task: Mapping[str, Any], in_project: str | None
    ) -> None:
        """The node of a changed task, with the project or section it needs if new."""
        if task.get("completed"):
            return  # completion archives: that is the full reconcile's decision
        parent = _gid(task.get("parent"))
        homes = [
            _gid(m.get("project")) for m in task.get("memberships") or () if isinstance(m, dict)
        ]
        # A task in several projects goes where the full snapshot files it: under the
        # first of its projects in Asana's listing order (the order of self.projects).
        known = [h for h in homes if h is not None and h in self.projects]
        project_id: str | None
        if len(known) > 1:
            order = {gid: i for i, gid in enumerate(self.projects)}
            project_id = min(known, key=order.__getitem__)
        elif known:
            project_id = known[0]
        else:
            project_id = in_project
        if project_id is None and parent is None:
            new = next((h for h in homes if h is not None), None)
            if new is None:
                return  # in no project (someone's My Tasks only): not imported
            try:
                resp = await self.c._get(f"/projects/{new}", {"opt_fields": PROJECT_FIELDS})
            except ProviderForbidden:
                return
            record = resp.data.get("data") if isinstance(resp.data, dict) else None
            if not isinstance(record, dict) or record.get("archived"):
                return
            record.setdefault("gid", new)
            self.add_project(workspace_id, record)
            project_id = new
        if parent is not None:
            home = parent
            kind = "subtask"
        else:
            assert project_id is not None
            section = _section_in(task, project_id)
            home = project_id
            kind = "task"
            if section is not None:
                home = section[0]
                if section[0] not in self.nodes:
                    self.nodes[section[0]] = _section_node(
                        workspace_id, project_id, section[0], section[1]
                    )
        url_project = project_id or "0"
        self.nodes[task["gid"]] = _task_node(workspace_id, url_project, home, task, kind)

    async def subtasks_of(self, task_id: str, workspace_id: str) -> None:
        try:
            subs = await self.c._all(
                f"/tasks/{task_id}/subtasks", {"opt_fields": SUBTASK_FIELDS}, "subtasks"
            )
        except (ProviderForbidden, _NotFound):
            return
        for sub in subs:
            if not sub.get("completed") and sub["gid"] not in self.nodes:
                self.nodes[sub["gid"]] = _task_node(workspace_id, "0", task_id, sub, "subtask")


def _ordered(nodes: Mapping[str, SnapshotNode]) -> list[SnapshotNode]:
    """Parents before children among the nodes of one check."""
    out: list[SnapshotNode] = []
    done: set[str] = set()

    def visit(node: SnapshotNode, depth: int = 0) -> None:
        if node.external_id in done:
            return
        parent = node.parent_external_id
        if parent is not None and parent in nodes and parent not in done and depth < 50:
            visit(nodes[parent], depth + 1)
        done.add(node.external_id)
        out.append(node)

    for node in nodes.values():
        visit(node)
    return out


def _compact(task: Mapping[str, Any]) -> dict[str, Any]:
    """What the tree needs of a task, without its memberships and nested objects."""
    return {
        "gid": task["gid"],
        "name": task.get("name"),
        "completed": bool(task.get("completed")),
        "num_subtasks": task.get("num_subtasks") or 0,
    }


def _key(gid: str) -> int | str:
    """Asana gids are decimal strings; as ints they take half the memory in a set."""
    return int(gid) if gid.isdigit() else gid


def _section_in(task: Mapping[str, Any], project_id: str) -> tuple[str, str] | None:
    """The task's section in this project: (gid, name)."""
    for membership in task.get("memberships") or ():
        if isinstance(membership, dict) and _gid(membership.get("project")) == project_id:
            section = membership.get("section")
            section_id = _gid(section)
            if section_id is not None and isinstance(section, dict):
                return section_id, str(section.get("name") or "")
            return None
    return None


def _project_node(workspace_id: str, project: Mapping[str, Any]) -> SnapshotNode:
    project_id = str(project["gid"])
    members = project.get("members")
    emails = tuple(
        str(m["email"]).strip()
        for m in (members if isinstance(members, list) else [])
        if isinstance(m, dict) and isinstance(m.get("email"), str) and m["email"].strip()
    )
    return SnapshotNode(
        external_id=project_id,
        parent_external_id=None,
        kind="project",
        name=str(project.get("name") or ""),
        state=_project_state(project),
        member_emails=emails,
        workspace_id=workspace_id,
        url=project.get("permalink_url") or f"{WEB_URL}/0/{project_id}/list",
    )


def _section_node(workspace_id: str, project_id: str, section_id: str, name: str) -> SnapshotNode:
    return SnapshotNode(
        external_id=section_id,
        parent_external_id=project_id,
        kind="section",
        name=name,
        workspace_id=workspace_id,
    )


def _task_node(
    workspace_id: str | None,
    project_id: str,
    parent_id: str,
    task: Mapping[str, Any],
    kind: str,
    *,
    partial: bool = False,
) -> SnapshotNode:
    task_id = str(task["gid"])
    return SnapshotNode(
        external_id=task_id,
        parent_external_id=parent_id,
        kind=kind,
        name=str(task.get("name") or ""),
        state="completed" if task.get("completed") else "active",
        workspace_id=workspace_id,
        url=task_url(project_id if kind == "task" else "0", task_id),
        partial=partial,
    )
