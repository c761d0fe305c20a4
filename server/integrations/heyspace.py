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

import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

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
from .changes import EPOCH, iso_ts, pick_round
from .http import (
    BearerTokens,
    Params,
    ProviderHTTP,
    ProviderResponse,
    RequestMeter,
    expires_at_from,
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
        # The baseline this connector's changes(None) returned: a snapshot run afterwards
        # fills in the page digests and lists it read (see changes()).
        self._baseline: dict[str, Any] | None = None

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

    async def _orgs(self) -> list[dict[str, Any]]:
        return _items((await self._get("/users/self/organizations")).data, "organizations", "orgs")

    async def _spaces(self, org_id: str) -> list[dict[str, Any]]:
        resp = await self._get(f"/organizations/{org_id}/projects")
        return _items(resp.data, "projects", "spaces")

    async def _lists(self, project_id: str) -> list[dict[str, Any]]:
        resp = await self._get(f"/projects/{project_id}/lists")
        return _items(resp.data, "lists", "lists")

    async def _card_page(self, project_id: str, page: int) -> tuple[list[dict[str, Any]], bool]:
        resp = await self._get(
            f"/projects/{project_id}/tasks", {"page": str(page), "limit": str(CARD_PAGE_SIZE)}
        )
        body = _unwrap(resp.data, "cards")
        cards = _items(resp.data, "tasks", "cards")
        more = bool(body.get("hasMore"))
        if more and not cards:
            raise ProviderError("HeySpace cards: an empty page claims more pages follow")
        return cards, more

    async def snapshot(self) -> AsyncIterator[SnapshotNode]:
        for org in await self._orgs():
            org_id = str(org["id"])
            yield _org_node(org)
            for project in await self._spaces(org_id):
                async for node in self._space(org_id, project):
                    yield node

    async def _space(self, org_id: str, project: Mapping[str, Any]) -> AsyncIterator[SnapshotNode]:
        """A space with its lists and cards, all read before any is yielded: a space that
        answers 403 is yielded ``partial`` and the sync keeps what it has of it."""
        project_id = str(project["id"])
        space = _space_node(org_id, project)
        try:
            lists = await self._lists(project_id)
            cards: list[dict[str, Any]] = []
            digests: list[str] = []
            page, more = 1, True
            while more:
                found, more = await self._card_page(project_id, page)
                cards.extend(found)
                digests.append(_digest(found, more))
                page += 1
        except ProviderForbidden:
            yield replace(space, partial=True)
            return
        baseline = (self._baseline or {}).get("spaces", {}).get(project_id)
        if baseline is not None:
            baseline.update(pages=digests, lists=[str(lst["id"]) for lst in lists])
        yield space
        list_ids = {str(lst["id"]) for lst in lists}
        for lst in lists:
            yield _list_node(org_id, project_id, lst)
        for task in cards:
            yield _card_node(org_id, project_id, task, list_ids)

    # -- incremental checks ----------------------------------------------------------------

    async def changes(
        self, state: Mapping[str, Any] | None, *, budget: int
    ) -> tuple[list[SnapshotNode], ChangeState]:
        """New and changed cards, by re-reading card pages in rotation.

        The signal: HeySpace's public API shows no modification time, change feed or
        search, so the cheapest *reliable* signal is the card listing this connector reads
        anyway. Each check reads ``budget`` pages (100 cards each), compares each page with
        a short digest of what it held last time and reports the cards of pages that
        differ. Half the pages read are the most recently changed spaces' last pages (new
        cards are appended), half rotate through every page of every space; once per
        rotation the spaces are listed again to find new ones. The state holds one 12-hex
        digest per page (about 2 KB per 10,000 cards).

        Only active and completed cards are reported; archiving stays the full reconcile's
        decision.

        A baseline taken before a full snapshot by the same connector is completed by that
        snapshot with the digests of the pages it imported (the service stores the
        baseline once the snapshot has been applied), so the checks after a full sync
        report only what changed since; without it, the first round reports each card
        once."""
        start = self.requests

        def left() -> int:
            return budget - (self.requests - start)

        if state is None:
            spaces: dict[str, Any] = {}
            for org in await self._orgs():
                for project in await self._spaces(str(org["id"])):
                    if not project.get("isArchived"):
                        spaces[str(project["id"])] = _space_state(str(org["id"]))
            self._baseline = {"spaces": spaces, "cursor": 0, "relist": False}
            return [], self._baseline
        spaces = {k: dict(v) for k, v in (state.get("spaces") or {}).items()}
        cursor = int(state.get("cursor") or 0)
        nodes: dict[str, SnapshotNode] = {}
        if state.get("relist", True) and left() > 0:
            await self._new_spaces(spaces, nodes, left)
        for space_id, space in spaces.items():
            if space.get("lists") is None and left() > 0:
                with contextlib.suppress(ProviderForbidden):  # the full sync marks it partial
                    await self._read_lists(space_id, space, nodes)
        units = [f"{sid}|{n}" for sid, sp in spaces.items() for n in range(len(sp["pages"]) or 1)]
        activity = {
            f"{sid}|{max(len(sp['pages']) - 1, 0)}": str(sp.get("active") or EPOCH)
            for sid, sp in spaces.items()
        }
        chosen, cursor, wrapped = pick_round(units, activity, cursor, left())
        for unit in chosen:
            if left() <= 0:
                break
            space_id, _, number = unit.partition("|")
            with contextlib.suppress(ProviderForbidden):
                await self._check_page(space_id, int(number), spaces[space_id], nodes, left)
        return list(nodes.values()), {"spaces": spaces, "cursor": cursor, "relist": wrapped}

    async def _new_spaces(
        self, spaces: dict[str, Any], nodes: dict[str, SnapshotNode], left: Callable[[], int]
    ) -> None:
        listed: set[str] = set()
        for org in await self._orgs():
            org_id = str(org["id"])
            if left() <= 0:
                return  # not every organisation listed: forget none
            for project in await self._spaces(org_id):
                project_id = str(project["id"])
                listed.add(project_id)
                if project_id in spaces or project.get("isArchived"):
                    continue
                nodes.setdefault(org_id, _org_node(org))
                nodes[project_id] = _space_node(org_id, project)
                spaces[project_id] = _space_state(org_id)
        for gone in set(spaces) - listed:
            del spaces[gone]

    async def _read_lists(
        self, space_id: str, space: dict[str, Any], nodes: dict[str, SnapshotNode]
    ) -> None:
        known: list[str] = []
        for lst in await self._lists(space_id):
            known.append(str(lst["id"]))
            if _state(lst) == "active":
                nodes[str(lst["id"])] = _list_node(str(space["org"]), space_id, lst)
        space["lists"] = known

    async def _check_page(
        self,
        space_id: str,
        number: int,
        space: dict[str, Any],
        nodes: dict[str, SnapshotNode],
        left: Callable[[], int],
    ) -> None:
        pages: list[str] = list(space["pages"])
        cards, more = await self._card_page(space_id, number + 1)
        digest = _digest(cards, more)
        if number < len(pages) and pages[number] == digest:
            return
        org_id = str(space["org"])
        if space.get("lists") is None:
            return  # its lists could not be read yet: this page waits for its next turn
        known_lists = set(space.get("lists") or [])
        if any(str(c.get("taskListId") or "") not in known_lists for c in cards):
            # A list we have not seen: the next check reads the space's lists first, and
            # this page again in its turn (its digest is not recorded).
            space["lists"] = None
            space["active"] = iso_ts(datetime.now(UTC))
            return
        for card in cards:
            node = _card_node(org_id, space_id, card, known_lists)
            if node.state in ("active", "completed"):
                nodes[node.external_id] = node
        if number < len(pages):
            pages[number] = digest
        else:
            pages.append(digest)
        if not more:
            del pages[number + 1 :]
        elif number + 1 == len(pages):
            pages.append("")  # a page beyond the last one known: read it in its turn
        space["pages"] = pages
        space["active"] = iso_ts(datetime.now(UTC))


def _space_state(org_id: str) -> dict[str, Any]:
    """A space as a check remembers it: a digest per card page, its list ids (None: to be
    read before its pages), and when a change was last seen in it."""
    return {"org": org_id, "pages": [], "lists": None, "active": EPOCH}


def _digest(cards: list[dict[str, Any]], more: bool) -> str:
    """What a page shows of its cards (and whether more follow), in 12 hex digits."""
    h = hashlib.blake2b(digest_size=6)
    h.update(b"more" if more else b"last")
    for c in cards:
        h.update(
            repr(
                (
                    c.get("id"),
                    c.get("name"),
                    c.get("taskListId"),
                    bool(c.get("isArchived")),
                    bool(c.get("isCompleted")),
                    bool(c.get("isDeleted")),
                )
            ).encode()
        )
    return h.hexdigest()


def _org_node(org: Mapping[str, Any]) -> SnapshotNode:
    org_id = str(org["id"])
    return SnapshotNode(
        external_id=org_id,
        parent_external_id=None,
        kind="workspace",
        name=str(org.get("name") or ""),
        workspace_id=org_id,
    )


def _space_node(org_id: str, project: Mapping[str, Any]) -> SnapshotNode:
    return SnapshotNode(
        external_id=str(project["id"]),
        parent_external_id=org_id,
        kind="space",
        name=str(project.get("name") or ""),
        state=_state(project),
        workspace_id=org_id,
    )


def _list_node(org_id: str, project_id: str, lst: Mapping[str, Any]) -> SnapshotNode:
    return SnapshotNode(
        external_id=str(lst["id"]),
        parent_external_id=project_id,
        kind="list",
        name=str(lst.get("name") or ""),
        state=_state(lst),
        workspace_id=org_id,
    )


def _card_node(
    org_id: str, project_id: str, task: Mapping[str, Any], list_ids: set[str]
) -> SnapshotNode:
    task_id = str(task["id"])
    list_id = str(task.get("taskListId") or "")
    return SnapshotNode(
        external_id=task_id,
        # A card whose list we did not see (none, or one removed meanwhile) still belongs
        # to its space; hanging it there keeps parents-before-children.
        parent_external_id=list_id if list_id in list_ids else project_id,
        kind="card",
        name=str(task.get("name") or ""),
        state=_state(task),
        workspace_id=org_id,
        url=card_url(project_id, task_id),
    )
