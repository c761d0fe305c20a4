"""The tasks page: the tree the user may see (first level here, deeper levels on demand),
search, and for the selected task its members (admins and managers) and, for manual tasks,
create / rename / move / archive. Imported tasks are read-only in structure: their tool
decides. Every action is a plain form; the page's script makes expanding, searching and
role changes quicker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from ..domain.errors import DomainError, Forbidden, NotFound, ValidationFailed
from ..services.principal import Principal
from .core import page, render, services

routes = web.RouteTableDef()
ROLE_CHOICES = ("manager", "regular", "guest")
SEARCH_LIMIT = 50
SERVICE_NAMES = {"heyspace": "HeySpace", "asana": "Asana", "pivotaltracker": "Pivotal Tracker"}
NOTICES = {
    "created": "Task created.",
    "renamed": "Task renamed.",
    "moved": "Task moved.",
    "archived": "Task archived.",
    "unarchived": "Task restored.",
    "role": "Role saved.",
    "removed": "Member removed from this task.",
    "added": "Member added.",
}


def kind_label(task: dict[str, Any]) -> str:
    source = task.get("source")
    if not source:
        return ""
    tool = SERVICE_NAMES.get(source["service"], source["service"])
    kind = (source.get("kind") or "").replace("_", " ")
    return f"{tool} {kind}".strip()


def _flags(query: Mapping[str, str]) -> dict[str, str]:
    """The view options a page keeps across links (archived tasks shown)."""
    out: dict[str, str] = {}
    if query.get("include-archived"):
        out["include-archived"] = "1"
    return out


def _back(task_id: str | None, done: str, include_archived: bool) -> web.HTTPSeeOther:
    query: dict[str, str] = {}
    if task_id:
        query["task"] = task_id
    if include_archived:
        query["include-archived"] = "1"
    query["done"] = done
    return web.HTTPSeeOther(f"/tasks?{urlencode(query)}")


async def _branch(
    request: web.Request, user: Principal, selected: dict[str, Any], include_archived: bool
) -> list[dict[str, Any]]:
    """The first level with the branch opened down to the selected task and its children."""
    tasks = services(request).tasks
    level = await tasks.top_level(user, include_archived=include_archived)
    nodes: list[dict[str, Any]] = [{"task": t, "children": None} for t in level]
    chain = [*_ancestor_ids(selected), selected["id"]]
    current: list[dict[str, Any]] = nodes
    for task_id in chain:
        node = next((n for n in current if n["task"]["id"] == task_id), None)
        if node is None:
            break
        kids = await tasks.list_tasks(
            user, q=None, parent_id=task_id, include_archived=include_archived, trackable=None
        )
        children: list[dict[str, Any]] = [{"task": t, "children": None} for t in kids]
        node["children"] = children
        current = children
    return nodes


def _ancestor_ids(task: dict[str, Any]) -> list[str]:
    return list(task.get("_ancestors") or [])


async def _with_ancestors(request: web.Request, user: Principal, task_id: str) -> dict[str, Any]:
    tasks = services(request).tasks
    task = await tasks.get(user, task_id)
    ancestors: list[str] = []
    parent = task["parent_id"]
    while parent is not None:
        try:
            up = await tasks.get(user, parent)
        except NotFound:
            break
        ancestors.insert(0, up["id"])
        parent = up["parent_id"]
    task["_ancestors"] = ancestors
    return task


async def tasks_view(
    request: web.Request,
    user: Principal,
    *,
    alerts: list[str] | None = None,
    status: int = 200,
    query: Mapping[str, str] | None = None,
) -> web.Response:
    """The page for ``query`` (default: the request's own query string)."""
    svc = services(request)
    query = request.query if query is None else query
    include_archived = bool(query.get("include-archived"))
    search = (query.get("task-search") or "").strip()[:300]
    alerts = list(alerts or [])
    notice = NOTICES.get(query.get("done", ""), "")

    selected: dict[str, Any] | None = None
    if query.get("task"):
        try:
            selected = await _with_ancestors(request, user, query["task"])
        except NotFound:
            alerts.append("That task does not exist or is not visible to you.")
            status = 404
    results: list[dict[str, Any]] | None = None
    more_results = False
    if search:
        # Only the page shown is presented, however many tasks the user sees.
        results, more_results = await svc.tasks.list_page(
            user,
            q=search,
            parent_id=None,
            include_archived=include_archived,
            trackable=None,
            limit=SEARCH_LIMIT,
        )
    if selected is not None:
        tree = await _branch(request, user, selected, include_archived)
    else:
        level = await svc.tasks.top_level(user, include_archived=include_archived)
        tree = [{"task": t, "children": None} for t in level]

    members: list[dict[str, Any]] | None = None
    candidates: list[dict[str, Any]] = []
    can_manage = False
    inherited_names: dict[str, str] = {}
    if selected is not None:
        can_manage = user.is_admin or selected["my_role"] == "manager"
        if can_manage:
            try:
                raw = await svc.tasks.members(user, selected["id"])
            except Forbidden:
                raw = None
            if raw is not None:
                people = {u["_id"]: u for u in await svc.accounts.all_users(user.account_id)}
                members = []
                for m in raw:
                    person = people.get(m["user_id"], {})
                    origin = m["inherited_from"]
                    if origin and origin not in inherited_names:
                        try:
                            inherited_names[origin] = " \u203a ".join(
                                (await svc.tasks.get(user, origin))["path"]
                            )
                        except NotFound:
                            inherited_names[origin] = ""
                    members.append(
                        {
                            **m,
                            "email": person.get("email", ""),
                            "name": person.get("name") or person.get("email", ""),
                            "active": person.get("active", True),
                            "inherited_name": inherited_names.get(origin, "") if origin else "",
                        }
                    )
                members.sort(key=lambda m: (m["name"].casefold(), m["email"]))
                listed = {m["user_id"] for m in members}
                candidates = sorted(
                    (
                        {"id": uid, "label": f"{u.get('name') or u['email']} ({u['email']})"}
                        for uid, u in people.items()
                        if uid not in listed and u.get("active", True)
                    ),
                    key=lambda c: c["label"].casefold(),
                )
    flags = _flags(query)
    move_results: list[dict[str, Any]] | None = None
    move_query = (query.get("move-search") or "").strip()[:300]
    if selected is not None and move_query:
        found, _ = await svc.tasks.list_page(
            user, q=move_query, parent_id=None, include_archived=False, trackable=None, limit=21
        )
        # Moving under its own subtree is refused by the service with a clear message.
        move_results = [t for t in found if t["id"] != selected["id"]][:20]
    return render(
        request,
        "tasks.html",
        {
            "title": "Tasks",
            "alerts": alerts,
            "notice": notice,
            "tree": tree,
            "selected": selected,
            "selected_kind": kind_label(selected) if selected else "",
            "imported": bool(selected and selected["source"]),
            "can_manage": can_manage,
            "can_create": (selected is None and user.is_admin)
            or (selected is not None and can_manage),
            "members": members,
            "candidates": candidates,
            "roles": ROLE_CHOICES,
            "search": search,
            "results": results,
            "more_results": more_results,
            "include_archived": include_archived,
            "move_query": move_query,
            "move_results": move_results,
            "kind_label": kind_label,
            "selected_tool": SERVICE_NAMES.get(selected["source"]["service"], "")
            if selected and selected["source"]
            else "",
            "task_link": lambda task_id: "/tasks?" + urlencode({"task": task_id, **flags}),
        },
        user=user,
        status=status,
    )


@routes.get("/tasks")
@page()
async def tasks_page(request: web.Request, user: Principal) -> web.StreamResponse:
    return await tasks_view(request, user)


async def _form(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: str(v) for k, v in form.items() if isinstance(v, str)}


Action = Callable[[dict[str, str]], Awaitable[str | None]]


async def _act(
    request: web.Request, user: Principal, task_id: str | None, done: str, action: Action
) -> web.StreamResponse:
    form = await _form(request)
    include_archived = bool(form.get("include-archived"))
    try:
        result = await action(form)
    except DomainError as exc:
        message = exc.detail
        if exc.code == "imported_item_read_only":
            message = "Imported tasks follow their tool: rename, move or archive them there."
        elif exc.code == "validation_error":
            message = "Give the task a name (up to 300 characters)."
        elif exc.code == "tree_cycle":
            message = "A task cannot move under itself or its own subtasks."
        view = {"task": task_id} if task_id else {}
        if include_archived:
            view["include-archived"] = "1"
        return await tasks_view(request, user, alerts=[message], status=exc.status, query=view)
    target = result if isinstance(result, str) else task_id
    raise _back(target, done, include_archived)


def _name(form: dict[str, str]) -> str:
    name = form.get("name", "").strip()
    if not name or len(name) > 300:
        raise ValidationFailed(
            "invalid name", [{"field": "name", "message": "1 to 300 characters"}]
        )
    return name


@routes.post("/tasks/new")
@page()
async def new_task(request: web.Request, user: Principal) -> web.StreamResponse:
    async def create(form: dict[str, str]) -> str:
        parent = form.get("parent_id") or None
        task = await services(request).tasks.create(user, _name(form), parent)
        return str(task["id"])

    form = await _form(request)
    return await _act(request, user, form.get("parent_id") or None, "created", create)


@routes.post("/tasks/{id}/rename")
@page()
async def rename(request: web.Request, user: Principal) -> web.StreamResponse:
    task_id = request.match_info["id"]

    async def change(form: dict[str, str]) -> None:
        await services(request).tasks.update(user, task_id, {"name": _name(form)})

    return await _act(request, user, task_id, "renamed", change)


@routes.post("/tasks/{id}/move")
@page()
async def move(request: web.Request, user: Principal) -> web.StreamResponse:
    task_id = request.match_info["id"]

    async def change(form: dict[str, str]) -> None:
        parent = form.get("parent_id") or None
        await services(request).tasks.update(user, task_id, {"parent_id": parent})

    return await _act(request, user, task_id, "moved", change)


@routes.post("/tasks/{id}/archive")
@page()
async def archive(request: web.Request, user: Principal) -> web.StreamResponse:
    task_id = request.match_info["id"]
    form = await _form(request)
    archived = "unarchive" not in form

    async def change(_: dict[str, str]) -> None:
        await services(request).tasks.update(user, task_id, {"archived": archived})

    return await _act(request, user, task_id, "archived" if archived else "unarchived", change)


@routes.post("/tasks/{id}/members")
@page()
async def add_member(request: web.Request, user: Principal) -> web.StreamResponse:
    task_id = request.match_info["id"]

    async def add(form: dict[str, str]) -> None:
        await services(request).tasks.set_member(
            user, task_id, form.get("user_id", ""), form.get("role", "")
        )

    return await _act(request, user, task_id, "added", add)


@routes.post("/tasks/{id}/members/{user_id}")
@page()
async def set_role(request: web.Request, user: Principal) -> web.StreamResponse:
    task_id, member = request.match_info["id"], request.match_info["user_id"]
    form = await _form(request)
    role = form.get("role", "")

    async def change(_: dict[str, str]) -> None:
        if role == "none":
            await services(request).tasks.remove_member(user, task_id, member)
        else:
            await services(request).tasks.set_member(user, task_id, member, role)

    return await _act(request, user, task_id, "removed" if role == "none" else "role", change)
